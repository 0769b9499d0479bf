"""Hosted mode with SHEEPCRM_OAUTH_PROFILE=entra against the project's OpenID provider issuing tokens shaped like
Microsoft Entra ID's (IDP_ENTRA_TENANT): `typ: JWT`, the v2 issuer with the tenant in its path (v1 form for one
client), `aud` = the API's client id, `scp`, `oid`, `tid`, `xms_edov`, a `sub` that differs per application, and
no pushed authorization requests. Accepted when right; refused for another tenant, v1 when only v2 is configured,
another application; the approval page's sign-in without PAR, and the attack on it without prompt=login."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import (
    CANARY_KEY,
    PAGE,
    approve,
    as_person,
    ask_to_complete,
    audit_of,
    browse,
    clean_env,
    decide,
    delta,
    fresh_task,
    hosted_session,
    link_in,
    own_lines,
    post_initialize,
    running_idp,
    scrape,
    serve_hosted,
    sign_in,
    task_status,
)

TENANT = "7a1e5c3d-1111-4222-8333-444455556666"
APP_ID = "9f0e2b7a-aaaa-4bbb-8ccc-dddddddddddd"


@pytest.fixture(scope="module")
def entra_idp() -> Iterator[str]:
    """The provider in Entra shape; yields its v2 issuer, <origin>/<tenant>/v2.0."""
    with running_idp(IDP_ENTRA_TENANT=TENANT, IDP_ENTRA_APP_ID=APP_ID, IDP_ENTRA_APP_URIS="http://127.0.0.1:*/mcp",
                     IDP_RESOURCES="http://127.0.0.1:*") as issuer:
        yield issuer


def origin(issuer: str) -> str:
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}"


def entra_settings(issuer: str, **over: Any) -> dict[str, Any]:
    return {"oauth_profile": "entra", "oauth_tenant": TENANT, "oauth_audiences": (APP_ID,), "metrics": True, **PAGE,
            **over}


@pytest.fixture(scope="module")
def entra_site(entra_idp: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SandboxServer, Path]]:
    tmp = tmp_path_factory.mktemp("entra")
    with SandboxServer(key=CANARY_KEY) as sb, serve_hosted(sb, tmp, entra_idp, **entra_settings(entra_idp)) as url:
        yield url, sb, tmp


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


async def test_an_entra_shaped_token_is_accepted_and_names_the_person_by_oid(
    entra_site: tuple[str, SandboxServer, Path], entra_idp: str
) -> None:
    url, sb, tmp = entra_site
    token = sign_in(entra_idp, "staff", url + "/mcp")
    header, claims = claims_of(token)
    # What the provider issued is Entra's shape, not RFC 9068's.
    assert header["typ"] == "JWT" and claims["iss"] == entra_idp and claims["aud"] == APP_ID
    assert claims["scp"] == "sheepcrm" and "scope" not in claims and claims["tid"] == TENANT
    assert "email_verified" not in claims and claims["oid"] != claims["sub"]
    uid = fresh_task(sb)
    async with hosted_session(url, token, elicitation_callback=approve) as client:
        found = await client.call_tool("search_contacts", {"query": "austen"})
        done = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert not found.is_error and done.structured_content["status"] == "applied"
    lines = [x for x in audit_of(tmp) if x["arguments"].get("uid") == uid]
    assert lines and {x["caller"]["sub"] for x in lines} == {claims["oid"]}


async def test_a_member_with_a_verified_email_domain_gets_self_service(
    entra_site: tuple[str, SandboxServer, Path], entra_idp: str
) -> None:
    url = entra_site[0]
    token = sign_in(entra_idp, "member", url + "/mcp")
    assert claims_of(token)[1]["xms_edov"] is True
    async with hosted_session(url, token) as client:
        mine = await client.call_tool("my_membership", {})
    assert not mine.is_error and "Austen" in json.dumps(mine.structured_content)


def test_a_member_whose_email_entra_does_not_vouch_for_is_refused(
    entra_site: tuple[str, SandboxServer, Path], entra_idp: str
) -> None:
    url = entra_site[0]
    token = sign_in(entra_idp, "unverified", url + "/mcp")
    assert claims_of(token)[1]["xms_edov"] is False
    response = post_initialize(url, token)
    assert response.status_code == 403 and "verified email" in response.headers["www-authenticate"]


def test_another_tenant_is_refused(entra_site: tuple[str, SandboxServer, Path], entra_idp: str) -> None:
    url = entra_site[0]
    token = sign_in(entra_idp, "outsider", url + "/mcp")  # the same keys and a member's email, another tenant
    assert claims_of(token)[1]["tid"] != TENANT
    response = post_initialize(url, token)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_v1_token_is_refused_when_only_v2_is_configured(entra_site: tuple[str, SandboxServer, Path],
                                                          entra_idp: str) -> None:
    url = entra_site[0]
    token = sign_in(entra_idp, "staff", url + "/mcp", client="sheepcrm-test-v1")
    claims = claims_of(token)[1]
    assert claims["ver"] == "1.0" and claims["iss"] == f"{origin(entra_idp)}/sts/{TENANT}/"
    assert post_initialize(url, token).status_code == 401


def test_a_v1_token_is_accepted_when_the_v1_issuer_is_configured(entra_idp: str, tmp_path: Path) -> None:
    v1 = f"{origin(entra_idp)}/sts/{TENANT}/"
    with SandboxServer(key=CANARY_KEY) as sb, serve_hosted(sb, tmp_path, entra_idp,
                                                           **entra_settings(entra_idp, oauth_v1_issuer=v1)) as url:
        token = sign_in(entra_idp, "staff", url + "/mcp", client="sheepcrm-test-v1")
        assert claims_of(token)[1]["aud"] == url + "/mcp"  # v1: the Application ID URI
        assert post_initialize(url, token).status_code == 200
        assert post_initialize(url, sign_in(entra_idp, "staff", url + "/mcp")).status_code == 200  # v2 still


def test_a_token_for_another_app_is_refused(entra_site: tuple[str, SandboxServer, Path], entra_idp: str) -> None:
    url = entra_site[0]
    other = f"{origin(url)}/other-app"
    token = sign_in(entra_idp, "staff", other)
    assert claims_of(token)[1]["aud"] == other
    assert post_initialize(url, token).status_code == 401


async def test_the_page_signs_in_without_par_and_the_approval_names_oid(
    entra_site: tuple[str, SandboxServer, Path], entra_idp: str
) -> None:
    url, sb, tmp = entra_site
    uid = fresh_task(sb)
    token = sign_in(entra_idp, "helpdesk", url + "/mcp")
    before = scrape(url)
    link = link_in(await ask_to_complete(url, token, uid), url)
    with httpx.Client(timeout=10) as person:
        first = person.get(link)
        params = parse_qs(urlsplit(first.headers["location"]).query)
        assert "request_uri" not in params and params["prompt"] == ["login"] and params["max_age"] == ["600"]
        page = browse(person, first, "helpdesk")
        assert page.status_code == 200 and "Asked for by <strong>you</strong>" in page.text
        assert decide(person, page, url).status_code == 200
    assert task_status(sb, uid) == "open"
    assert (await ask_to_complete(url, token, uid))["status"] == "applied" and task_status(sb, uid) == "done"
    applied = [x for x in audit_of(tmp) if x["arguments"].get("uid") == uid and x["outcome"] == "succeeded"]
    oid = claims_of(token)[1]["oid"]
    assert applied[-1]["caller"]["sub"] == oid and applied[-1]["approved_by"]["sub"] == oid
    after = scrape(url)
    for name, labels, count in [
        ("sheepcrm_mcp_sign_ins_total", {"event": "started"}, 1),
        ("sheepcrm_mcp_sign_ins_total", {"event": "completed"}, 1),
        ("sheepcrm_mcp_approvals_total", {"event": "asked"}, 1),
        ("sheepcrm_mcp_approvals_total", {"event": "approved"}, 1),
        ("sheepcrm_mcp_tool_calls_total", {"tool": "update_task", "profile": "helpdesk", "outcome": "ok"}, 2),
    ]:
        assert delta(before, after, name, **labels) == count, (name, labels)
    assert oid not in httpx.get(url + "/metrics").text


@pytest.mark.parametrize("dropped", [("prompt",), ("prompt", "max_age")])
async def test_a_model_in_the_persons_browser_cannot_skip_the_fresh_sign_in(
    entra_site: tuple[str, SandboxServer, Path],
    entra_idp: str,
    monkeypatch: pytest.MonkeyPatch,
    dropped: tuple[str, ...],
) -> None:
    """Without PAR the sign-in request travels through the browser. A model driving the person's browser, which
    holds a single sign-on session at the provider, removes prompt=login (and max_age) so that no password is
    asked. The provider then hands back a code at once, but the ID token's auth_time shows the earlier login,
    before this sign-in began: the page refuses it and nothing is approved."""
    from sheepcrm_mcp.server.approvals import signin

    monkeypatch.setattr(signin, "FRESH_LEEWAY", 1)  # the clock leeway, so that the test waits 3 s, not 12
    url, sb, _ = entra_site
    uid = fresh_task(sb)
    token = sign_in(entra_idp, "helpdesk", url + "/mcp")
    before = scrape(url)
    link = link_in(await ask_to_complete(url, token, uid), url)
    with httpx.Client(timeout=10) as person:
        browse(person, sign_in_url(entra_idp), "helpdesk", until="127.0.0.1/callback")  # signed in at the provider
        time.sleep(3)
        start = person.get(link)
        to = urlsplit(start.headers["location"])
        params = {k: v[0] for k, v in parse_qs(to.query).items() if k not in dropped}
        ridden = person.get(f"{to.scheme}://{to.netloc}{to.path}?{urlencode(params)}", follow_redirects=True)
        assert 'id="login-form"' not in ridden.text  # the provider did ride the session: no password asked
        assert ridden.status_code == 403 and "sign in again" in ridden.text, ridden.text
        assert "sheepcrm_approver" not in person.cookies
        assert delta(before, scrape(url), "sheepcrm_mcp_sign_ins_total", event="refused") == 1
        refused = person.post(link, data={"csrf": "x", "action": "approve"}, headers={"origin": url})
        assert refused.status_code == 401
    assert task_status(sb, uid) == "open"
    assert (await ask_to_complete(url, token, uid))["status"] == "approval_required"


def sign_in_url(issuer: str) -> str:
    """A plain sign-in at the provider with the test client (the person's earlier, unrelated login)."""
    return f"{issuer}/auth?" + urlencode({
        "client_id": "sheepcrm-test", "response_type": "code", "redirect_uri": "http://127.0.0.1/callback",
        "scope": "openid", "code_challenge": "E9Melhoe2OwvFrEMTJguCp4lj6zwJh-C8G2OegB1HFk",
        "code_challenge_method": "S256"})


@pytest.mark.slow
@pytest.mark.parametrize("audiences", [APP_ID, "not a uri"])
def test_doctor_checks_an_entra_configuration(entra_idp: str, audiences: str, tmp_path: Path) -> None:
    env = clean_env(SHEEPCRM_AUTH="oauth", SHEEPCRM_OAUTH_PROFILE="entra", SHEEPCRM_OAUTH_TENANT=TENANT,
                    SHEEPCRM_OAUTH_ISSUER=entra_idp, SHEEPCRM_OAUTH_RESOURCE="http://127.0.0.1:8765/mcp",
                    SHEEPCRM_OAUTH_AUDIENCES=audiences, SHEEPCRM_OAUTH_CLIENT_ID="sheepcrm-approvals")
    command, person = as_person(own_lines(env), tmp_path / "person")  # hosted settings: the person's own file
    done = subprocess.run([*command, "doctor", "--sandbox"], env={**env, **person}, capture_output=True, text=True,
                          timeout=60)
    out = done.stdout
    assert f"ok   issuer {entra_idp} reachable" in out and "ok   JWKS fetched: 1 signing key(s)" in out, out
    assert f"ok   Entra tenant {TENANT}: a directory id" in out
    assert "WARNING the provider has no pushed authorization requests" in out
    assert "ok   approval page without pushed requests: a fresh sign-in is proven by the ID token's auth_time" in out
    if audiences == APP_ID:
        assert "ok   audiences accepted: http://127.0.0.1:8765/mcp (Application ID URI" in out
        assert f"{APP_ID} (client id: v2 tokens)" in out and done.returncode == 0
    else:
        assert "FAIL audience not a uri is neither an Application ID URI nor a client id" in out
        assert done.returncode != 0
