"""Opaque access tokens through RFC 7662 introspection, against the project's OpenID provider issuing reference
tokens for /mcp (IDP_OPAQUE_RESOURCES) and answering at its introspection endpoint. The server asks with its own
client credentials (SHEEPCRM_OAUTH_INTROSPECTION_CLIENT_ID/_SECRET). One test per rule: active, inactive
(revoked), expired, another audience; and an answer is reused for the token's lifetime, never longer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.auth import Introspector
from tests.helpers import CANARY_KEY, hosted_session, post_initialize, running_idp, serve_hosted, sign_in

TTL = 8  # the provider's access token lifetime here, seconds
SERVICE = {"oauth_introspection_client_id": "sheepcrm-service",
           "oauth_introspection_client_secret": "sheepcrm-service-secret-for-tests-only"}


@pytest.fixture(scope="module")
def opaque_idp() -> Iterator[str]:
    with running_idp(IDP_OPAQUE_RESOURCES="http://127.0.0.1:*", IDP_AT_TTL=str(TTL)) as issuer:
        yield issuer


@pytest.fixture(scope="module")
def introspected_site(opaque_idp: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("introspection")
    with SandboxServer(key=CANARY_KEY) as sb, serve_hosted(sb, tmp, opaque_idp, **SERVICE) as url:
        yield url


async def test_an_active_opaque_token_is_accepted(introspected_site: str, opaque_idp: str) -> None:
    token = sign_in(opaque_idp, "staff", introspected_site + "/mcp")
    assert token.count(".") != 2  # a reference, not a JWT
    async with hosted_session(introspected_site, token) as client:
        found = await client.call_tool("search_contacts", {"query": "austen"})
    assert not found.is_error


def test_an_inactive_opaque_token_is_refused(introspected_site: str, opaque_idp: str) -> None:
    token = sign_in(opaque_idp, "staff", introspected_site + "/mcp")
    meta = httpx.get(opaque_idp + "/.well-known/openid-configuration").json()
    revoked = httpx.post(meta["revocation_endpoint"], data={"token": token, "client_id": "sheepcrm-test"})
    assert revoked.status_code == 200
    response = post_initialize(introspected_site, token)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.slow
def test_an_expired_opaque_token_is_refused(introspected_site: str, opaque_idp: str) -> None:
    token = sign_in(opaque_idp, "staff", introspected_site + "/mcp")
    # accepted, and its answer is kept until it expires
    assert post_initialize(introspected_site, token).status_code == 200
    time.sleep(TTL + 1)
    assert post_initialize(introspected_site, token).status_code == 401


def test_an_opaque_token_for_another_audience_is_refused(introspected_site: str, opaque_idp: str) -> None:
    token = sign_in(opaque_idp, "staff", introspected_site + "/other-app")
    assert post_initialize(introspected_site, token).status_code == 401


def test_without_the_servers_own_credentials_nothing_is_accepted(opaque_idp: str, tmp_path: Path) -> None:
    wrong = {**SERVICE, "oauth_introspection_client_secret": "not-the-secret-" + "x" * 20}
    with SandboxServer(key=CANARY_KEY) as sb, serve_hosted(sb, tmp_path, opaque_idp, **wrong) as url:
        assert post_initialize(url, sign_in(opaque_idp, "staff", url + "/mcp")).status_code == 401


async def test_an_answer_is_reused_for_the_tokens_lifetime_and_never_longer() -> None:
    asked: list[str] = []
    exp = int(time.time()) + 2

    def provider(request: httpx.Request) -> httpx.Response:  # says "active" every time, even after exp
        asked.append(request.headers["authorization"])
        return httpx.Response(200, json={"active": True, "exp": exp, "aud": "https://mcp.example.test/mcp",
                                         "iss": "https://idp.example.test", "sub": "u-1", "scope": "sheepcrm"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(provider))
    check = Introspector(issuer="https://idp.example.test", audiences=("https://mcp.example.test/mcp",),
                         client_id="rs", client_secret="s3cret", http=http, endpoint="https://idp.example.test/i")
    first: Any = await check.verify("opaque-1")
    again = await check.verify("opaque-1")
    assert first is not None and again is first and len(asked) == 1 and asked[0].startswith("Basic ")
    while time.time() <= exp:
        time.sleep(0.2)
    assert await check.verify("opaque-1") is None and len(asked) == 2  # asked again, and expired whatever it says


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"token_type": "refresh_token"}, "a refresh token the provider describes with our audience"),
        ({"nbf": 600}, "not before a time still ten minutes away (RFC 7662 nbf)"),
        ({"iat": 600}, "issued ten minutes in the future"),
    ],
)
async def test_an_answer_that_is_not_a_usable_access_token_now_is_refused(extra: dict[str, Any], why: str) -> None:
    now = int(time.time())
    answer = {"active": True, "exp": now + 120, "aud": "https://mcp.example.test/mcp",
              "iss": "https://idp.example.test", "sub": "u-1", "scope": "sheepcrm"}
    answer |= {k: (now + v if isinstance(v, int) else v) for k, v in extra.items()}
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answer)))
    check = Introspector(issuer="https://idp.example.test", audiences=("https://mcp.example.test/mcp",),
                         client_id="rs", client_secret="s3cret", http=http, endpoint="https://idp.example.test/i")
    assert await check.verify("opaque-2") is None, why
    plain = {k: v for k, v in answer.items() if k not in extra}
    http2 = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=plain)))
    ok = Introspector(issuer="https://idp.example.test", audiences=("https://mcp.example.test/mcp",),
                      client_id="rs", client_secret="s3cret", http=http2, endpoint="https://idp.example.test/i")
    assert await ok.verify("opaque-2") is not None  # the same answer without the claim is accepted
