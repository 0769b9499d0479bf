"""The token verifier and hosted-mode refusals with tokens signed by a local key (served as the issuer's JWKS
through httpx's mock transport): expired, wrong issuer, wrong audience, bad signature, alg none, ID token,
missing scope. Each is a 401/403 with a WWW-Authenticate header, never a tool answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.auth import JWKSCache, JWTVerifier, profile_for, roles_of
from tests.helpers import (
    ACCEPT,
    ISSUER,
    OTHER_KEY,
    RESOURCE,
    approve,
    hosted_session,
    initialize,
    jwks_transport,
    serve_hosted,
    settings_for,
    token,
)


def verifier(fetches: list[int] | None = None, resource: str = RESOURCE) -> JWTVerifier:
    http = httpx.AsyncClient(transport=jwks_transport(fetches))
    return JWTVerifier(issuer=ISSUER, resource=resource, jwks=JWKSCache(f"{ISSUER}/jwks", http))


async def test_a_good_token_is_accepted_and_the_keys_are_fetched_once() -> None:
    fetches: list[int] = []
    v = verifier(fetches)
    first = await v.verify_token(token())
    second = await v.verify_token(token(sub="u-2"))
    assert first is not None and first.subject == "u-1" and first.scopes == ["sheepcrm"] and first.resource == RESOURCE
    assert second is not None and second.subject == "u-2"
    assert len(fetches) == 1


def tampered(aud: str) -> str:
    head, _, sig = token(aud=aud).split(".")
    claims = jwt.decode(token(aud=aud), options={"verify_signature": False}) | {"roles": ["staff", "admin"]}
    return f"{head}.{jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()}.{sig}"


def unsigned(aud: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": aud, "sub": "u", "exp": now + 60, "iat": now, "scope": "sheepcrm"}
    return jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"})


BAD = {  # each builds a token for audience `aud` that must be refused
    "expired": lambda aud: token(aud=aud, exp=int(time.time()) - 120, iat=int(time.time()) - 600),
    "wrong issuer": lambda aud: token(aud=aud, iss="https://evil.example.test"),
    "wrong audience": lambda aud: token(aud="https://other.example.test/mcp"),
    "bad signature": lambda aud: token(aud=aud, key=OTHER_KEY),
    "unknown key": lambda aud: token(aud=aud, kid="nope"),
    "tampered": tampered,
    "alg none": unsigned,
    "an id token": lambda aud: token(aud=aud, typ="JWT"),
    "no sub": lambda aud: token(aud=aud, sub=None),
    "garbage": lambda aud: "not-a-jwt",
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_tokens_are_refused(case: str) -> None:
    assert await verifier().verify_token(BAD[case](RESOURCE)) is None


def test_roles_map_to_the_most_powerful_profile(tmp_path: Path, shared_sandbox: SandboxServer) -> None:
    s = settings_for(shared_sandbox, tmp_path, oauth_helpdesk_roles="agents,helpdesk")
    assert profile_for(roles_of({"roles": ["member", "staff"]}, "roles"), s) == "staff"
    assert profile_for(roles_of({"groups": "agents"}, "groups"), s) == "helpdesk"
    assert profile_for(roles_of({"realm_access": {"roles": ["member"]}}, "realm_access.roles"), s) == "member"
    assert profile_for(roles_of({"roles": ["visitor"]}, "roles"), s) is None


@pytest.fixture(scope="module")
def local_site(tmp_path_factory: pytest.TempPathFactory, shared_sandbox: SandboxServer) -> Iterator[str]:
    http = httpx.AsyncClient(transport=jwks_transport())
    with serve_hosted(shared_sandbox, tmp_path_factory.mktemp("local"), ISSUER, http=http) as url:
        yield url


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [*((c, 401, "invalid_token") for c in sorted(BAD)), ("missing scope", 403, "insufficient_scope"),
     ("unverified email", 403, "insufficient_scope"), ("no role", 403, "insufficient_scope")],
)
def test_hosted_refusals(local_site: str, case: str, status: int, error: str) -> None:
    resource = local_site + "/mcp"
    if case in BAD:
        raw = BAD[case](resource)
    else:
        raw = token(aud=resource, **{
            "missing scope": {"scope": "other"},
            "unverified email": {"roles": ["member"], "email_verified": False},
            "no role": {"roles": ["visitor"]},
        }[case])
    response = httpx.post(resource, json=initialize(), headers={"accept": ACCEPT, "authorization": f"Bearer {raw}"})
    assert response.status_code == status, response.text
    header = response.headers["www-authenticate"]
    assert f'error="{error}"' in header and "resource_metadata=" in header
    if case in BAD or case == "missing scope":  # a new token can mend these: the challenge names the scopes
        assert 'scope="sheepcrm"' in header
    assert "result" not in response.text and "serverInfo" not in response.text


def test_a_good_local_token_gets_the_server(local_site: str) -> None:
    response = httpx.post(local_site + "/mcp", json=initialize(),
                          headers={"accept": ACCEPT, "authorization": f"Bearer {token(aud=local_site + '/mcp')}"})
    assert response.status_code == 200 and "serverInfo" in response.text


# ---- the approval page's sign-in: the ID token ------------------------------------------------------

PAGE_CLIENT = "sheepcrm-approvals"


def id_token(started: float, **over: Any) -> str:
    """An ID token as the provider would send it after a sign-in that began at `started`."""
    claims = {"iss": ISSUER, "aud": PAGE_CLIENT, "sub": "u-1", "nonce": "n-1", "auth_time": int(started) + 5}
    return token(typ="JWT", scope=None, client_id=None, **{**claims, **over})


ID_BAD = {  # each must be refused: a sign-in this page did not ask for, or one without a fresh login
    "single sign-on only (auth_time before the sign-in began)": {"auth_time": 1_000},
    "no auth_time": {"auth_time": None},
    "another sign-in's nonce": {"nonce": "n-2"},
    "made for another client (aud)": {"aud": "some-other-app"},
    "another client's (azp)": {"azp": "some-other-app"},
    "another issuer": {"iss": "https://evil.example.test"},
    "expired": {"exp": 1_000, "iat": 900},
    "another key": {"key": OTHER_KEY},
}


@pytest.mark.parametrize("case", list(ID_BAD))
async def test_the_page_refuses_an_id_token_that_is_not_a_fresh_sign_in_for_it(case: str) -> None:
    from sheepcrm_mcp.server.auth import SignInRefused, verify_id_token

    started = time.time() - 10
    jwks = JWKSCache(f"{ISSUER}/jwks", httpx.AsyncClient(transport=jwks_transport()))
    good = await verify_id_token(id_token(started), jwks=jwks, issuer=ISSUER, client_id=PAGE_CLIENT, nonce="n-1",
                                 started=started)
    assert good["sub"] == "u-1"  # the same call accepts the good token: each case differs by one thing
    with pytest.raises(SignInRefused):
        await verify_id_token(id_token(started, **ID_BAD[case]), jwks=jwks, issuer=ISSUER, client_id=PAGE_CLIENT,
                              nonce="n-1", started=started)


async def test_a_configured_subject_claim_names_the_caller(tmp_path: Path) -> None:
    """With SHEEPCRM_OAUTH_SUBJECT_CLAIM=oid (Entra), audit lines and approvals name people by `oid`, not `sub`."""

    with SandboxServer() as sb:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        http = httpx.AsyncClient(transport=jwks_transport())
        with serve_hosted(sb, tmp_path, ISSUER, http=http, oauth_subject_claim="oid") as url:
            raw = token(aud=url + "/mcp", sub="pairwise-for-this-app", oid="oid-123")
            async with hosted_session(url, raw, elicitation_callback=approve) as client:
                done = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
            without = token(aud=url + "/mcp", sub="pairwise-for-this-app")  # no oid: never matched by sub instead
            refused = httpx.post(url + "/mcp", json=initialize(),
                                 headers={"accept": ACCEPT, "authorization": f"Bearer {without}"})
    assert done.structured_content["status"] == "applied"
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {x["caller"]["sub"] for x in lines} == {"oid-123"}
    assert refused.status_code == 403 and "no oid claim" in refused.text
