"""The Entra ID profile's token rules (SHEEPCRM_OAUTH_PROFILE=entra), one test per rule, with tokens signed by a
local key served as the tenant's JWKS: what Entra issues is accepted, and each single difference is refused."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.auth import JWKSCache, JWTVerifier, TokenRules, email_verified, require_oauth_settings
from sheepcrm_mcp.server.settings import ConfigError
from tests.helpers import KEY, OTHER_KEY, jwks_transport, settings_for, token

TENANT = "7a1e5c3d-1111-4222-8333-444455556666"
OTHER_TENANT = "0b0b0b0b-0000-4000-8000-0000000000ff"
V2 = f"https://login.microsoftonline.com/{TENANT}/v2.0"
V1 = f"https://sts.windows.net/{TENANT}/"
APP_URI = "https://mcp.example.test/mcp"  # the Application ID URI = the resource
APP_ID = "9f0e2b7a-aaaa-4bbb-8ccc-dddddddddddd"  # the API's client id


def entra(**over: Any) -> str:
    """An access token as Entra's v2 endpoint shapes it."""
    claims: dict[str, Any] = {
        "iss": V2, "aud": APP_ID, "sub": "pairwise-sub", "oid": "oid-1", "tid": TENANT, "ver": "2.0",
        "scp": "sheepcrm", "azp": "client-1", "roles": ["staff"], "scope": None, "client_id": None,
        "email_verified": None,
    }
    typ = over.pop("typ", "JWT")
    key = over.pop("key", KEY)
    return token(typ=typ, key=key, **{**claims, **over})


def verifier(v1: bool = False) -> JWTVerifier:
    http = httpx.AsyncClient(transport=jwks_transport())
    rules = TokenRules.entra(V2, APP_URI, TENANT, v1_issuer=V1 if v1 else "", audiences=(APP_ID,))
    return JWTVerifier(issuer=V2, resource=APP_URI, jwks=JWKSCache("https://idp.example.test/jwks", http), rules=rules)


async def test_a_v2_token_is_accepted_with_scopes_from_scp() -> None:
    access = await verifier().verify_token(entra(scp="sheepcrm other"))
    assert access is not None and access.scopes == ["sheepcrm", "other"] and access.client_id == "client-1"
    assert access.claims is not None and access.claims["oid"] == "oid-1"


async def test_the_application_id_uri_is_an_accepted_audience() -> None:
    assert await verifier().verify_token(entra(aud=APP_URI)) is not None


async def test_a_token_for_another_app_is_refused() -> None:
    assert await verifier().verify_token(entra(aud="11111111-2222-4333-8444-555555555555")) is None


async def test_another_tenant_is_refused_even_with_this_tenants_issuer() -> None:
    assert await verifier().verify_token(entra(tid=OTHER_TENANT)) is None


async def test_another_tenants_issuer_is_refused() -> None:
    other = f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"
    assert await verifier().verify_token(entra(iss=other, tid=OTHER_TENANT)) is None


async def test_v1_tokens_are_refused_when_only_v2_is_configured() -> None:
    assert await verifier().verify_token(entra(iss=V1, ver="1.0", aud=APP_URI)) is None


async def test_v1_tokens_are_accepted_when_configured() -> None:
    assert await verifier(v1=True).verify_token(entra(iss=V1, ver="1.0", aud=APP_URI, appid="c", azp=None)) is not None


async def test_no_oid_is_refused() -> None:
    assert await verifier().verify_token(entra(oid=None)) is None


async def test_no_tid_is_refused() -> None:
    assert await verifier().verify_token(entra(tid=None)) is None


async def test_a_scope_claim_is_not_read_for_entra() -> None:
    access = await verifier().verify_token(entra(scp=None, scope="sheepcrm"))
    assert access is not None and access.scopes == []  # then the SDK answers 403 insufficient_scope


async def test_the_signature_is_still_checked() -> None:
    assert await verifier().verify_token(entra(key=OTHER_KEY)) is None


async def test_expiry_is_still_checked() -> None:
    now = int(time.time())
    assert await verifier().verify_token(entra(exp=now - 120, iat=now - 600)) is None


async def test_another_typ_is_refused() -> None:
    assert await verifier().verify_token(entra(typ="id+jwt")) is None


async def test_the_standard_profile_still_refuses_typ_jwt() -> None:
    http = httpx.AsyncClient(transport=jwks_transport())
    standard = JWTVerifier(issuer=V2, resource=APP_ID, jwks=JWKSCache("https://idp.example.test/jwks", http))
    assert await standard.verify_token(entra()) is None
    assert await standard.verify_token(entra(typ="at+jwt")) is not None  # the same token otherwise passes


def test_email_verification_rule() -> None:
    assert email_verified({"email": "a@b", "xms_edov": True}, "entra")
    assert not email_verified({"email": "a@b", "xms_edov": False}, "entra")
    assert not email_verified({"email": "a@b"}, "entra")  # nothing says so: not verified
    assert email_verified({"email": "a@b", "email_verified": True}, "entra")  # a claims-mapping policy
    assert not email_verified({"email": "a@b", "email_verified": False, "xms_edov": True}, "entra")
    assert not email_verified({"email": "a@b", "xms_edov": True}, "standard")


@pytest.mark.parametrize(("over", "says"), [
    ({"oauth_tenant": ""}, "SHEEPCRM_OAUTH_TENANT"),
    ({"oauth_issuer": f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"}, "v2 issuer"),
    ({"oauth_v1_issuer": f"https://sts.windows.net/{OTHER_TENANT}/"}, "v1 issuer"),
    ({"oauth_client_id": APP_ID, "oauth_audiences": (APP_ID,)}, "own app registration"),
])
def test_entra_settings_are_checked_at_start(tmp_path: Path, shared_sandbox: SandboxServer, over: dict[str, Any],
                                             says: str) -> None:
    base = {"auth": "oauth", "oauth_profile": "entra", "oauth_tenant": TENANT, "oauth_issuer": V2,
            "oauth_resource": APP_URI}
    require_oauth_settings(settings_for(shared_sandbox, tmp_path, **base))  # the base is fine
    with pytest.raises(ConfigError, match=says):
        require_oauth_settings(settings_for(shared_sandbox, tmp_path, **{**base, **over}))
