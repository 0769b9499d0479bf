"""Hosted mode: `--transport http` with SHEEPCRM_AUTH=oauth.

The server is an OAuth 2.1 resource server (the SDK's own auth: `token_verifier=` and
`AuthSettings`, protected resource metadata at /.well-known/oauth-protected-resource/mcp, 401 with
`WWW-Authenticate` pointing at it). One MCP server is built per profile, each with its own upstream
sheepCRM key; `ProfileRouter` reads the caller's roles from the verified token and hands the request
to that profile's server. A member must have a verified email that resolves to exactly one contact,
or gets 403 and nothing else. The user's token never goes to sheepCRM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sheepcrm_mcp.assembly import App, Stores, build_app
from sheepcrm_mcp.http import healthz_route, serve_asgi, transport_security
from sheepcrm_mcp.server.approvals.page import ApprovalPage, ServedPage
from sheepcrm_mcp.server.approvals.signin import SignedInPage
from sheepcrm_mcp.server.approvals.signins import MemorySignIns, RedisSignIns, SignIns
from sheepcrm_mcp.server.auth import OAuth, build_oauth, email_verified, profile_for, roles_of
from sheepcrm_mcp.server.caller import PROFILES, Caller, ProfileName, set_caller
from sheepcrm_mcp.server.settings import ConfigError, Settings
from sheepcrm_mcp.sheepcrm import SheepError
from sheepcrm_mcp.tools.profiles import PROFILES as PROFILE_SPECS
from sheepcrm_mcp.tools.self_service import resolve_member

log = logging.getLogger("sheepcrm_mcp.hosted")
MCP_PATH = "/mcp"
MEMBER_TTL = 60.0  # seconds an email -> contact resolution is reused


@dataclass
class Hosted:
    settings: Settings
    oauth: OAuth
    apps: dict[ProfileName, App]
    members: dict[str, tuple[float, str | None]] = field(default_factory=dict)  # email -> (when, uri/verdict)

    async def aclose(self) -> None:
        for built in self.apps.values():
            await built.aclose()
        await self.oauth.aclose()

    async def member_uri(self, email: str) -> str | Literal["ambiguous"] | None:
        now = time.monotonic()
        hit = self.members.get(email)
        if hit is not None and now - hit[0] < MEMBER_TTL:
            return "ambiguous" if hit[1] == "ambiguous" else hit[1]
        found = await resolve_member(self.apps["member"].client.reader, email)
        if len(self.members) > 10_000:
            self.members.clear()
        self.members[email] = (now, found)
        return found


def build_hosted(settings: Settings, *, http: httpx.AsyncClient | None = None) -> Hosted:
    """One server per profile that has a sheepCRM key; at least one must."""
    if settings.confirm == "none":
        raise ConfigError("SHEEPCRM_CONFIRM=none is not allowed with SHEEPCRM_AUTH=oauth: every write needs a person")
    if not settings.bucket:
        raise ConfigError("SHEEPCRM_BUCKET is not set: name your sheepCRM bucket, e.g. SHEEPCRM_BUCKET=demo")
    if settings.confirm == "page" and not settings.oauth_client_id:
        raise ConfigError(
            "SHEEPCRM_CONFIRM=page needs the approval page's sign-in client in hosted mode: set "
            "SHEEPCRM_OAUTH_CLIENT_ID (see docs/HOSTING.md, Approvals on a hosted server)"
        )
    oauth = build_oauth(settings, http)
    stores = Stores(settings)  # one audit log and one set of approvals for every profile
    page = approval_page(settings, stores, oauth)
    apps: dict[ProfileName, App] = {}
    for name in PROFILES:
        key = settings.profile_key(name)
        if key is not None:
            apps[name] = build_app(settings.model_copy(update={"api_key": key}), profile=PROFILE_SPECS[name],
                                   oauth=oauth, stores=stores, page=page)
    if not apps:
        raise ConfigError(
            "SHEEPCRM_AUTH=oauth: no profile has a sheepCRM key; set SHEEPCRM_API_KEY_STAFF, "
            "SHEEPCRM_API_KEY_HELPDESK and/or SHEEPCRM_API_KEY_MEMBER (see docs/HOSTING.md)"
        )
    return Hosted(settings, oauth, apps)


def approval_page(settings: Settings, stores: Stores, oauth: OAuth) -> ApprovalPage:
    """Where a person approves a write when their client cannot ask them: the page behind their own sign-in.

    Without SHEEPCRM_OAUTH_CLIENT_ID there is none: writes then need a client that supports elicitation."""
    if not settings.oauth_client_id:
        return ApprovalPage(stores.approvals, opener=None)
    public = settings.public_address()
    secret = settings.oauth_client_secret.get_secret_value() if settings.oauth_client_secret else None
    return SignedInPage(
        stores.approvals,
        public,
        issuer=settings.oauth_issuer,
        client_id=settings.oauth_client_id,
        client_secret=secret or None,
        scope=settings.oauth_signin_scope,
        roles_claim=settings.oauth_roles_claim,
        subject_claim=settings.subject_claim(),
        tenant=settings.oauth_tenant or None,
        approver_roles=settings.oauth_approver_roles,
        jwks=oauth.verifier.jwks,
        http=oauth.http,
        audit=stores.audit,
        bucket=settings.bucket,
        signins=sign_ins(stores),
        limiter=stores.limiter,
        key=next(iter(settings.request_state_keys()), None),
    )


def sign_ins(stores: Stores) -> SignIns:
    """The approval page's sign-ins and sessions: in the Redis the replicas share when there is one, so that any
    replica serves any step and a restart loses nothing; else in this process."""
    if stores.shared is None:
        return MemorySignIns()
    return RedisSignIns(stores.shared)


def _with_scope(send: Send, scopes: tuple[str, ...]) -> Send:
    """A 401/403 challenge that names the scopes a client should ask for (MCP authorization, RFC 6750 3)."""
    wanted = f', scope="{" ".join(scopes)}"'.encode()

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] in (401, 403) and scopes:
            message = {**message, "headers": [
                (name, value + wanted if name.lower() == b"www-authenticate" and b"scope=" not in value else value)
                for name, value in message.get("headers", [])
            ]}
        await send(message)

    return sending


async def _refuse(send: Send, status: int, error: str, description: str, metadata_url: str) -> None:
    """An RFC 6750 refusal in the SDK's own shape: never a tool answer."""
    header = f'Bearer error="{error}", error_description="{description}", resource_metadata="{metadata_url}"'
    body = json.dumps({"error": error, "error_description": description}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", header.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


class ProfileRouter:
    """Pure ASGI: /mcp goes to the caller's profile server; everything else (metadata, /healthz) to the first.

    A missing or invalid token, or a missing scope, is answered by the SDK's own middleware in the
    profile server; the router adds the 403s of its own policy (no role, member not resolvable).
    """

    def __init__(self, hosted: Hosted, apps: dict[ProfileName, ASGIApp]) -> None:
        self.hosted, self.apps = hosted, apps
        self.primary = next(iter(apps.values()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != MCP_PATH:
            await self.primary(scope, receive, send)
            return
        oauth, settings = self.hosted.oauth, self.hosted.settings
        token = _bearer(scope)
        access = await oauth.verifier.verify_token(token) if token else None
        if access is None or not set(oauth.scopes) <= set(access.scopes):
            # The SDK answers 401 / 403 insufficient_scope; its challenge gains the scopes to ask for.
            await self.primary(scope, receive, _with_scope(send, oauth.scopes))
            return
        claims = access.claims or {}
        roles = roles_of(claims, settings.oauth_roles_claim)
        profile = profile_for(roles, settings)
        if profile is None or profile not in self.apps:
            await _refuse(send, 403, "insufficient_scope",
                          f"none of your roles gives access to this server (claim {settings.oauth_roles_claim})",
                          oauth.metadata_url)
            return
        email = claims.get("email")
        email = email.strip().lower() if isinstance(email, str) and email.strip() else None
        person: str | None = None
        if profile == "member":
            if email is None or not email_verified(claims, settings.oauth_profile):
                await _refuse(send, 403, "insufficient_scope",
                              "member access needs a verified email address (email_verified, with Entra ID xms_edov)",
                              oauth.metadata_url)
                return
            try:
                found = await self.hosted.member_uri(email)
            except SheepError as exc:  # its message says what to check (a v1 404 may be the member key)
                log.warning("resolving a member's email failed upstream: %s", exc)
                await _refuse(send, 503, "temporarily_unavailable", "could not look up your membership; try again",
                              oauth.metadata_url)
                return
            if found is None or found == "ambiguous":
                why = "several contacts share your email" if found else "no contact has your email"
                await _refuse(send, 403, "insufficient_scope",
                              f"{why}: ask the organisation to fix your record", oauth.metadata_url)
                return
            person = found
        subject = claims.get(settings.subject_claim())
        if not isinstance(subject, str) or not subject:  # never another claim in its place: people are matched by it
            await _refuse(send, 403, "insufficient_scope",
                          f"your token has no {settings.subject_claim()} claim, which names people on this server",
                          oauth.metadata_url)
            return
        name = claims.get("name")
        set_caller(Caller(sub=subject, email=email, profile=profile, person=person, roles=roles,
                          name=name if isinstance(name, str) else None))
        await self.apps[profile](scope, receive, send)


def hosted_app(hosted: Hosted, host: str, stateless: bool) -> ASGIApp:
    """The ASGI app of hosted mode: the router, with every profile server's session manager in its lifespan."""
    security = transport_security(hosted.settings, host)
    first = next(iter(hosted.apps.values()))
    healthz_route(first.server, hosted.settings)
    if isinstance(first.page, ServedPage):  # the approval page: a route the router hands to the first server
        for route in first.page.routes():
            first.server.custom_route(route.path, methods=sorted(route.methods or ()))(route.endpoint)
    apps: dict[ProfileName, ASGIApp] = {
        name: built.server.streamable_http_app(stateless_http=stateless, host=host, transport_security=security)
        for name, built in hosted.apps.items()
    }
    router = ProfileRouter(hosted, apps)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for built in hosted.apps.values():
                await stack.enter_async_context(built.server.session_manager.run())
            try:
                yield
            finally:
                await hosted.aclose()

    return Lifespan(router, lifespan)


class Lifespan:
    """Pure ASGI: runs `lifespan` for the app's lifetime; other scopes go to `app`."""

    def __init__(self, app: ASGIApp, lifespan: Callable[[], contextlib.AbstractAsyncContextManager[None]]) -> None:
        self.app, self.lifespan = app, lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        message = await receive()
        assert message["type"] == "lifespan.startup"
        manager = self.lifespan()
        try:
            await manager.__aenter__()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await manager.__aexit__(None, None, None)
        finally:
            await send({"type": "lifespan.shutdown.complete"})


def run_hosted(settings: Settings, *, host: str, port: int, stateless: bool) -> None:
    hosted = build_hosted(settings)
    log.warning(
        "hosted mode (OAuth resource server for %s, issuer %s); profiles: %s",
        settings.oauth_resource, settings.oauth_issuer, ", ".join(hosted.apps),
    )
    if settings.confirm == "elicit":
        log.warning(
            "writes are confirmed in the MCP client's own form where it offers one, which this server cannot tell from "
            "the client answering itself; SHEEPCRM_CONFIRM=page makes every write need the person's sign-in on the "
            "approval page"
        )
    serve_asgi(hosted_app(hosted, host, stateless), host=host, port=port, forwarded=settings.forwarded_allow_ips)
