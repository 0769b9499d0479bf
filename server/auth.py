"""OAuth 2.1 resource server pieces (SHEEPCRM_AUTH=oauth): token verification, callers, profiles.

Access tokens are JWTs (RFC 9068) from the organisation's identity provider. `JWTVerifier` is the
SDK's `TokenVerifier`: it checks the signature against the issuer's JWKS (fetched with httpx and
cached), `iss`, `aud` (= this server's resource URL), `exp`/`iat`, and leaves required scopes to the
SDK's `AuthSettings.required_scopes` (which answers 403 insufficient_scope). The user's token is
never sent anywhere: sheepCRM is called with the operator's per-profile key.

Who is calling lives in `caller.py` (light: stdio never loads the JOSE library); the names are
re-exported here for the hosted entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings

from sheepcrm_mcp.server.caller import PROFILES, ProfileName
from sheepcrm_mcp.server.settings import ConfigError, Settings

log = logging.getLogger("sheepcrm_mcp.auth")

ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


class JWKSCache:
    """The issuer's signing keys: fetched asynchronously, kept `ttl` seconds; an unknown kid refetches
    (key rotation) at most once every `min_refresh` seconds."""

    def __init__(self, jwks_uri: str, http: httpx.AsyncClient, *, ttl: float = 300, min_refresh: float = 30) -> None:
        self.jwks_uri, self.http, self.ttl, self.min_refresh = jwks_uri, http, ttl, min_refresh
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = float("-inf")
        self._lock = anyio.Lock()

    async def refresh(self, *, force: bool = False) -> int:
        async with self._lock:
            if not force and time.monotonic() - self._fetched < self.min_refresh:
                return len(self._keys)
            response = await self.http.get(self.jwks_uri, timeout=5)
            response.raise_for_status()
            keys: dict[str, jwt.PyJWK] = {}
            for jwk in response.json().get("keys", []):
                if jwk.get("use", "sig") != "sig" or "kid" not in jwk:
                    continue
                try:
                    keys[str(jwk["kid"])] = jwt.PyJWK(jwk)
                except jwt.PyJWKError:  # an algorithm we do not support: skip that key only
                    continue
            self._keys, self._fetched = keys, time.monotonic()
            return len(keys)

    async def get(self, kid: str) -> jwt.PyJWK | None:
        if time.monotonic() - self._fetched > self.ttl:
            await self.refresh()
        key = self._keys.get(kid)
        if key is None:
            await self.refresh()
            key = self._keys.get(kid)
        return key


AT_JWT = ("at+jwt", "application/at+jwt")  # RFC 9068: an ID token is not an access token


@dataclass(frozen=True)
class TokenRules:
    """What a signed access token must say besides its signature and times: the provider profile's forms.

    RFC 9068 (the default): `typ: at+jwt`, one issuer, `aud` = this server's resource, scopes in `scope`.
    Entra ID: `typ: JWT`, the tenant's v2 issuer (and v1 if configured), `aud` = the Application ID URI or
    the API's client id, scopes in `scp`, the person in `oid`, and `tid` = the configured tenant."""

    issuers: tuple[str, ...]
    audiences: tuple[str, ...]
    types: tuple[str, ...] = AT_JWT
    tenant: str | None = None
    scope_claims: tuple[str, ...] = ("scope", "scp")
    required: tuple[str, ...] = ("exp", "iat", "iss", "aud", "sub")

    @classmethod
    def standard(cls, issuer: str, resource: str, audiences: Sequence[str] = ()) -> TokenRules:
        return cls((issuer,), tuple(dict.fromkeys((resource, *audiences))))

    @classmethod
    def entra(cls, issuer: str, resource: str, tenant: str, *, v1_issuer: str = "",
              audiences: Sequence[str] = ()) -> TokenRules:
        issuers = (issuer, v1_issuer) if v1_issuer else (issuer,)
        return cls(issuers, tuple(dict.fromkeys((resource, *audiences))), types=("JWT",), tenant=tenant,
                   scope_claims=("scp",), required=("exp", "iat", "iss", "aud", "sub", "oid", "tid"))

    def scopes(self, claims: dict[str, Any]) -> list[str]:
        """The token's scopes from the profile's claim: a space-separated string or a list."""
        for name in self.scope_claims:
            value = claims.get(name)
            if isinstance(value, str):
                return value.split()
            if isinstance(value, list):
                return [str(s) for s in value]
        return []


def rules_for(settings: Settings) -> TokenRules:
    """The access-token rules of the configured provider profile (SHEEPCRM_OAUTH_PROFILE)."""
    if settings.oauth_profile == "entra":
        return TokenRules.entra(settings.oauth_issuer, settings.oauth_resource, settings.oauth_tenant,
                                v1_issuer=settings.oauth_v1_issuer, audiences=settings.oauth_audiences)
    return TokenRules.standard(settings.oauth_issuer, settings.oauth_resource, settings.oauth_audiences)


class JWTVerifier(TokenVerifier):
    """JWT access tokens by `rules` (RFC 9068 by default). Any invalid token gives None (the SDK answers 401
    invalid_token). With an `introspector`, a token that is not a JWT is asked about at the provider (RFC 7662)."""

    def __init__(
        self, *, issuer: str, resource: str, jwks: JWKSCache, algorithms: Sequence[str] = ALGORITHMS, leeway: int = 30,
        rules: TokenRules | None = None, introspector: Introspector | None = None,
    ) -> None:
        self.issuer, self.resource, self.jwks = issuer, resource, jwks
        self.rules = rules or TokenRules.standard(issuer, resource)
        self.introspector = introspector
        self.algorithms, self.leeway = list(algorithms), leeway
        self._seen: dict[str, AccessToken] = {}  # verified tokens until they expire (the router and the SDK both ask)
        self._headers: dict[str, dict[str, Any]] = {}

    def _header(self, token: str) -> dict[str, Any]:
        """The token's JOSE header, parsed once per distinct header (an issuer's tokens share a few). Only which
        key and algorithm to try is read from it; the signature check below covers it."""
        segment = token.partition(".")[0]
        header = self._headers.get(segment)
        if header is None:
            header = jwt.get_unverified_header(token)
            if len(self._headers) > 64:
                self._headers.clear()
            self._headers[segment] = header
        return header

    async def verify_token(self, token: str) -> AccessToken | None:
        cached = self._seen.get(token)
        if cached is not None:
            if cached.expires_at is not None and cached.expires_at + self.leeway > time.time():
                return cached
            self._seen.pop(token, None)
        if self.introspector is not None and token.count(".") != 2:  # not a JWT: a reference token
            return await self.introspector.verify(token)
        rules = self.rules
        try:
            header = self._header(token)
            if header.get("alg") not in self.algorithms:
                return None
            if str(header.get("typ", "")) not in rules.types and str(header.get("typ", "")).lower() not in rules.types:
                return None
            key = await self.jwks.get(str(header.get("kid", "")))
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=list(rules.audiences),
                issuer=list(rules.issuers),
                leeway=self.leeway,
                options={"require": list(rules.required)},
            )
        except (jwt.InvalidTokenError, jwt.PyJWKError, httpx.HTTPError, ValueError) as exc:
            log.info("rejected a bearer token: %s", type(exc).__name__)
            return None
        if rules.tenant is not None and claims.get("tid") != rules.tenant:
            log.info("rejected a bearer token: another tenant")
            return None
        access = AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or claims.get("appid") or ""),
            scopes=rules.scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self.resource,
            subject=str(claims["sub"]),
            claims=claims,
        )
        if len(self._seen) > 4096:
            self._seen.clear()
        self._seen[token] = access
        return access


class Introspector:
    """Opaque access tokens, asked about at the provider's introspection endpoint (RFC 7662) with this server's
    own client credentials. An answer is reused until the token's `exp` and never longer; a token without `exp`,
    inactive, for another audience or from another issuer is refused. Tokens are kept only as digests."""

    def __init__(self, *, issuer: str, audiences: Sequence[str], client_id: str, client_secret: str | None,
                 http: httpx.AsyncClient, endpoint: str = "", leeway: int = 0) -> None:
        self.issuer, self.audiences, self.http, self.endpoint = issuer, tuple(audiences), http, endpoint
        self.auth = httpx.BasicAuth(client_id, client_secret or "")
        self.leeway = leeway
        self._known: dict[str, AccessToken] = {}  # sha256(token) -> the answer, until its exp

    async def verify(self, token: str) -> AccessToken | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        known = self._known.get(digest)
        if known is not None:
            if known.expires_at is not None and known.expires_at > now:
                return known
            self._known.pop(digest, None)
        try:
            if not self.endpoint:
                self.endpoint = str((await discover(self.http, self.issuer))["introspection_endpoint"])
            response = await self.http.post(self.endpoint, data={"token": token, "token_type_hint": "access_token"},
                                            auth=self.auth, timeout=5)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("token introspection failed (%s)", type(exc).__name__)
            return None
        why = self._refusal(answer, now)
        if why:
            log.info("rejected an opaque bearer token: %s", why)
            return None
        scope = answer.get("scope", "")
        access = AccessToken(
            token=token,
            client_id=str(answer.get("client_id") or ""),
            scopes=scope.split() if isinstance(scope, str) else [],
            expires_at=int(answer["exp"]),
            resource=self.audiences[0] if self.audiences else None,
            subject=str(answer["sub"]),
            claims=answer,
        )
        if len(self._known) > 4096:
            self._known.clear()
        self._known[digest] = access
        return access

    def _refusal(self, answer: Any, now: float) -> str:
        """Why an introspection answer does not admit the token, or "" when it does."""
        if not isinstance(answer, dict) or answer.get("active") is not True:
            return "inactive"
        exp = answer.get("exp")
        if not isinstance(exp, int | float) or exp <= now:
            return "expired or no exp"
        if answer.get("token_type", "access_token") not in ("access_token", "Bearer", "bearer"):
            return "not an access token"  # a refresh token the provider also describes
        for claim in ("nbf", "iat"):  # RFC 7662: not before nbf; a token issued in the future is not yet valid
            value = answer.get(claim)
            if value is not None and (not isinstance(value, int | float) or value > now + max(self.leeway, 5)):
                return f"{claim} in the future"
        aud = answer.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not set(map(str, auds)) & set(self.audiences):
            return "another audience"
        if "iss" in answer and answer["iss"] != self.issuer:
            return "another issuer"
        if not isinstance(answer.get("sub"), str) or not answer["sub"]:
            return "no sub"
        return ""


class SignInRefused(Exception):
    """An OpenID sign-in that must not be trusted; the message says why, in words a person can act on."""


async def verify_id_token(
    token: str,
    *,
    jwks: JWKSCache,
    issuer: str,
    client_id: str,
    nonce: str,
    started: float,
    leeway: int = 30,
    fresh_leeway: int = 10,
    tenant: str | None = None,
) -> dict[str, Any]:
    """An OpenID Connect ID token from the approval page's sign-in: signature (issuer's JWKS), `iss`, `aud` =
    our client, `exp`, `nonce` of this sign-in, and `auth_time` no earlier than `started` (the person signed in
    just now, not only through an earlier single sign-on session). Returns the claims."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in ALGORITHMS:
            raise SignInRefused("the provider signed the sign-in with an algorithm this server does not accept")
        key = await jwks.get(str(header.get("kid", "")))
        if key is None:
            raise SignInRefused("the sign-in was signed with a key the provider does not publish")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(ALGORITHMS),
            audience=client_id,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except (jwt.InvalidTokenError, jwt.PyJWKError, httpx.HTTPError, ValueError) as exc:
        raise SignInRefused(f"the sign-in could not be verified ({type(exc).__name__})") from None
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SignInRefused("the sign-in does not belong to this browser's request (nonce)")
    if claims.get("azp") not in (None, client_id):
        raise SignInRefused("the sign-in was made for another application (azp)")
    if tenant is not None and claims.get("tid") != tenant:
        raise SignInRefused("the sign-in was made in another organisation's directory (tid)")
    auth_time = claims.get("auth_time")
    if not isinstance(auth_time, int | float) or auth_time + fresh_leeway < started:
        raise SignInRefused(
            "the provider did not ask you to sign in again: approving a change needs a fresh sign-in. "
            "Ask your administrator to let this application request prompt=login."
        )
    return claims


def claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by dotted path for nested claims (Keycloak's `realm_access.roles`)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def email_verified(claims: dict[str, Any], profile: str) -> bool:
    """Whether the token vouches for its `email`. RFC-style providers: `email_verified` is true. Entra ID sends no
    `email_verified`: there the email counts as verified only when `xms_edov` (the optional claim "email domain
    owner verified") is true, or when a claims-mapping policy supplies `email_verified: true`."""
    if claims.get("email_verified") is True:
        return True
    return profile == "entra" and "email_verified" not in claims and claims.get("xms_edov") is True


def roles_of(claims: dict[str, Any], roles_claim: str) -> tuple[str, ...]:
    value = claim(claims, roles_claim)
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


def profile_for(roles: Iterable[str], settings: Settings) -> ProfileName | None:
    """The most powerful profile any of the caller's roles maps to; None when no role maps."""
    have = set(roles)
    mapping: dict[ProfileName, tuple[str, ...]] = {
        "staff": settings.oauth_staff_roles,
        "helpdesk": settings.oauth_helpdesk_roles,
        "member": settings.oauth_member_roles,
    }
    for name in PROFILES:
        if have & set(mapping[name]):
            return name
    return None


@dataclass
class OAuth:
    """Everything the SDK needs to act as a resource server, built once from the settings."""

    issuer: str
    resource: str
    scopes: tuple[str, ...]
    verifier: JWTVerifier
    http: httpx.AsyncClient

    def auth_settings(self) -> AuthSettings:
        # Strings, not AnyHttpUrl built here: the SDK keeps them exactly as given (an issuer is
        # compared character for character, and a rebuilt URL would gain a trailing slash).
        return AuthSettings(
            issuer_url=self.issuer,
            resource_server_url=self.resource,
            required_scopes=list(self.scopes) or None,
            validate_token_resource=True,
        )

    @property
    def metadata_url(self) -> str:
        scheme, _, rest = self.resource.partition("://")
        host, _, path = rest.partition("/")
        return f"{scheme}://{host}/.well-known/oauth-protected-resource" + (f"/{path}" if path else "")

    async def aclose(self) -> None:
        await self.http.aclose()


def require_oauth_settings(settings: Settings) -> None:
    missing = [
        name
        for name, value in (("SHEEPCRM_OAUTH_ISSUER", settings.oauth_issuer), ("SHEEPCRM_OAUTH_RESOURCE",
                                                                               settings.oauth_resource))
        if not value
    ]
    if missing:
        raise ConfigError(
            f"SHEEPCRM_AUTH=oauth needs {' and '.join(missing)}: the identity provider's issuer URL and the "
            "public URL of this server's /mcp endpoint (the audience of its access tokens); see docs/HOSTING.md"
        )
    if settings.oauth_profile != "entra":
        if settings.oauth_tenant or settings.oauth_v1_issuer:
            raise ConfigError("SHEEPCRM_OAUTH_TENANT and SHEEPCRM_OAUTH_V1_ISSUER need SHEEPCRM_OAUTH_PROFILE=entra")
        return
    tenant = settings.oauth_tenant
    if not tenant:
        raise ConfigError("SHEEPCRM_OAUTH_PROFILE=entra needs SHEEPCRM_OAUTH_TENANT: the directory (tenant) id every "
                          "token's tid must name")
    if not settings.oauth_issuer.endswith(f"/{tenant}/v2.0"):
        raise ConfigError(f"SHEEPCRM_OAUTH_ISSUER must be the tenant's v2 issuer, "
                          f"https://login.microsoftonline.com/{tenant}/v2.0")
    if settings.oauth_v1_issuer and not settings.oauth_v1_issuer.endswith(f"/{tenant}/"):
        raise ConfigError(f"SHEEPCRM_OAUTH_V1_ISSUER must be the tenant's v1 issuer, https://sts.windows.net/{tenant}/")
    if settings.oauth_client_id and settings.oauth_client_id in settings.oauth_audiences:
        raise ConfigError("SHEEPCRM_OAUTH_AUDIENCES names the approval page's client (SHEEPCRM_OAUTH_CLIENT_ID): its "
                          "ID tokens would pass for access tokens. Give the page its own app registration")


def build_oauth(settings: Settings, http: httpx.AsyncClient | None = None) -> OAuth:
    require_oauth_settings(settings)
    client = http or httpx.AsyncClient(timeout=5, follow_redirects=False)
    jwks_uri = settings.oauth_jwks_url or ""
    jwks = LazyJWKS(settings.oauth_issuer, jwks_uri, client)
    rules = rules_for(settings)
    introspector = None
    if settings.oauth_introspection_client_id:
        secret = settings.oauth_introspection_client_secret
        introspector = Introspector(
            issuer=settings.oauth_issuer, audiences=rules.audiences, client_id=settings.oauth_introspection_client_id,
            client_secret=secret.get_secret_value() if secret else None, http=client,
        )
    verifier = JWTVerifier(issuer=settings.oauth_issuer, resource=settings.oauth_resource, jwks=jwks, rules=rules,
                           introspector=introspector)
    return OAuth(settings.oauth_issuer, settings.oauth_resource, settings.oauth_scopes, verifier, client)


class LazyJWKS(JWKSCache):
    """A JWKS cache that finds the key set's address in the issuer's metadata on first use."""

    def __init__(self, issuer: str, jwks_uri: str, http: httpx.AsyncClient, *, min_refresh: float = 30) -> None:
        super().__init__(jwks_uri, http, min_refresh=min_refresh)
        self.issuer = issuer

    async def refresh(self, *, force: bool = False) -> int:
        if not self.jwks_uri:
            self.jwks_uri = await discover_jwks_uri(self.http, self.issuer)
        return await super().refresh(force=force)


async def discover(http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    """The issuer's OpenID / RFC 8414 metadata, whose `issuer` must match exactly."""
    base = issuer.rstrip("/")
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        response = await http.get(base + path, timeout=5)
        if response.status_code != 200:
            continue
        meta: dict[str, Any] = response.json()
        if meta.get("issuer") != issuer:
            raise ValueError(f"the metadata at {path} names issuer {meta.get('issuer')!r}, not {issuer!r}")
        return meta
    raise ValueError(f"no OpenID or OAuth metadata at {base}/.well-known/")


async def discover_jwks_uri(http: httpx.AsyncClient, issuer: str) -> str:
    """The `jwks_uri` from the issuer's metadata."""
    return str((await discover(http, issuer))["jwks_uri"])


def _page_check(settings: Settings, meta: dict[str, Any]) -> tuple[bool, str]:
    """Whether the approval page can sign people in at this provider (code + PKCE S256)."""
    if not settings.oauth_client_id:
        return True, ("approval page: off (no SHEEPCRM_OAUTH_CLIENT_ID) -> writes need clients with elicitation; "
                      "see docs/HOSTING.md")
    methods = meta.get("code_challenge_methods_supported") or []
    if not meta.get("authorization_endpoint") or not meta.get("token_endpoint") or "S256" not in methods:
        return False, "approval page: the provider does not state code + PKCE (S256) support in its metadata"
    public = settings.public_address()
    pushed = (
        "sign-in requests are pushed (PAR); make the provider require PAR for this client"
        if meta.get("pushed_authorization_request_endpoint")
        else "WARNING the provider has no pushed authorization requests (PAR): a model driving the person's browser "
        "could drop prompt=login from the sign-in (docs/SECURITY.md)"
    )
    return True, (f"approval page: sign-in client {settings.oauth_client_id}; its redirect URI at the provider must "
                  f"be {public}/approve/callback; {pushed}")


GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _entra_checks(settings: Settings, meta: dict[str, Any]) -> list[tuple[bool, str]]:
    """doctor with SHEEPCRM_OAUTH_PROFILE=entra: the tenant's forms, the audiences' forms, and the page's sign-in."""
    tenant = settings.oauth_tenant
    lines = [(bool(GUID.fullmatch(tenant.lower())),
              f"Entra tenant {tenant}: " + ("a directory id" if GUID.fullmatch(tenant.lower()) else
                                            "not a directory id (a GUID) -> use the Directory (tenant) ID, not a "
                                            "domain name: tokens name the id in tid"))]
    forms = []
    for aud in (settings.oauth_resource, *settings.oauth_audiences):
        if GUID.fullmatch(aud.lower()):
            forms.append(f"{aud} (client id: v2 tokens)")
        elif aud.startswith(("https://", "api://", "http://127.0.0.1", "http://localhost")):
            forms.append(f"{aud} (Application ID URI: v1 tokens, or v2 when it is the URI)")
        else:
            lines.append((False, f"audience {aud} is neither an Application ID URI nor a client id (GUID) -> fix "
                                 "SHEEPCRM_OAUTH_AUDIENCES"))
    if not any(GUID.fullmatch(a.lower()) for a in settings.oauth_audiences):
        forms.append("WARNING no client id among them: Entra's v2 access tokens name the API's client id in aud; add "
                     "it to SHEEPCRM_OAUTH_AUDIENCES")
    lines.append((True, "audiences accepted: " + "; ".join(forms)))
    lines.append((True, "issuers accepted: " + ", ".join((settings.oauth_issuer, *(
        [settings.oauth_v1_issuer] if settings.oauth_v1_issuer else []))) + "; tid must be " + tenant))
    if settings.oauth_client_id:
        claims = meta.get("claims_supported") or []
        lines.append(("auth_time" in claims, "approval page without pushed requests: a fresh sign-in is proven by "
                      "the ID token's auth_time; add the optional claim auth_time to the page's ID tokens"
                      + ("" if "auth_time" in claims else " -> the tenant's metadata does not list auth_time")))
    return lines


async def check_oauth(settings: Settings, http: httpx.AsyncClient | None = None) -> list[tuple[bool, str]]:
    """doctor's hosted-mode checks: audience configured, issuer reachable with matching metadata, JWKS fetched,
    which profiles have a sheepCRM key."""
    lines: list[tuple[bool, str]] = []
    try:
        require_oauth_settings(settings)
    except ConfigError as exc:
        return [(False, str(exc))]
    resource = settings.oauth_resource
    loopback = resource.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    if resource.startswith("https://") or loopback:
        lines.append((True, f"audience (resource) configured: {resource}"))
    else:
        lines.append((False, f"SHEEPCRM_OAUTH_RESOURCE {resource} is not https -> use the public https URL of /mcp"))
    async with contextlib.AsyncExitStack() as stack:
        client = http if http is not None else await stack.enter_async_context(httpx.AsyncClient(timeout=5))
        try:
            meta = await discover(client, settings.oauth_issuer)
            jwks_uri = settings.oauth_jwks_url or str(meta["jwks_uri"])
            lines.append((True, f"issuer {settings.oauth_issuer} reachable; keys at {jwks_uri}"))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            lines.append((False, f"issuer {settings.oauth_issuer} not usable ({exc}) -> check SHEEPCRM_OAUTH_ISSUER"))
            return lines
        lines.append(_page_check(settings, meta))
        if settings.oauth_profile == "entra":
            lines.extend(_entra_checks(settings, meta))
        try:
            count = await JWKSCache(jwks_uri, client).refresh(force=True)
            lines.append((count > 0, f"JWKS fetched: {count} signing key(s)" + ("" if count else " -> none usable")))
        except (httpx.HTTPError, ValueError) as exc:
            lines.append((False, f"JWKS at {jwks_uri} could not be fetched ({exc})"))
    keyed = [p for p in PROFILES if settings.profile_key(p) is not None]
    lines.append((bool(keyed), "profiles with a sheepCRM key: " + (", ".join(keyed) or "none -> set SHEEPCRM_API_KEY_"
                                                                  "STAFF / _HELPDESK / _MEMBER")))
    if settings.confirm == "none":
        lines.append((False, "SHEEPCRM_CONFIRM=none is refused in hosted mode -> remove it"))
    return lines
