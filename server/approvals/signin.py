"""The approval page of a hosted server (SHEEPCRM_AUTH=oauth): the person signs in to approve.

Routes of the hosted app under /approve. Opening /approve/{id} starts an OpenID Connect sign-in at the
provider that issues the access tokens, for that one approval: authorization code + PKCE (S256), a
`nonce`, `state` bound to this browser by a cookie, and `prompt=login` with `max_age`, so that the
person types their credentials now. When the provider offers pushed authorization requests (RFC
9126), the request is sent to it directly by this server and the browser carries only an opaque
`request_uri`: nothing in the browser can drop `prompt=login`, and the `nonce` and `state` are never
in the browser at all, so a sign-in the page did not ask for cannot be passed off as one. The ID
token's `auth_time` must fall after the sign-in began. The callback trades the code for tokens, which
are kept only for that request. It verifies the ID token against the issuer's JWKS (signature, iss,
aud = this page's client, exp, nonce, auth_time) and then sets an HttpOnly session cookie scoped to
that one approval's page, spent by one decision. Only the person who asked for the change (the same
`sub`) or a person with an approver role may decide. The page says who is signed in, who asked for
what, in which bucket, when and until when. Each decision is audited when it is made. The address
is not a secret: without the person's own sign-in it shows nothing and approves nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sheepcrm_mcp.server.approvals.page import HEADERS, ServedPage, not_found
from sheepcrm_mcp.server.approvals.pending import TTL_SECONDS, Pending
from sheepcrm_mcp.server.approvals.signins import (
    CONTESTED,
    MemorySignIns,
    SessionRecord,
    SignInRecord,
    SignIns,
    digest,
)
from sheepcrm_mcp.server.approvals.store import Approvals
from sheepcrm_mcp.server.audit import AuditEntry
from sheepcrm_mcp.server.auth import JWKSCache, SignInRefused, discover, roles_of, verify_id_token
from sheepcrm_mcp.server.stores import Audit, Limiter
from sheepcrm_mcp.server.telemetry import METRICS

log = logging.getLogger("sheepcrm_mcp.signin")

SESSION_TTL = 600.0  # seconds a page sign-in lasts; it is good for one approval and one decision
LOGIN_TTL = 600.0  # seconds a person has to finish signing in at the provider
STARTS_PER_MINUTE = 10  # sign-ins started per approval per minute (each is a request pushed to the provider)
ALL_STARTS_PER_MINUTE = 600  # and for every approval together
FRESH_LEEWAY = 10  # seconds of clock difference allowed between the provider's auth_time and this server
SESSION_COOKIE = "sheepcrm_approver"
LOGIN_COOKIE = "sheepcrm_signin"
CANCELLED = {"access_denied": "you cancelled it, or the provider refused it", "login_required": "no sign-in was made"}


@dataclass(frozen=True)
class Person:
    """Who signed in on the page, from their verified ID token."""

    sub: str
    email: str | None
    name: str | None
    roles: tuple[str, ...]

    def audit(self) -> dict[str, Any]:
        return {"sub": self.sub, "email": self.email, "name": self.name}

    def shown(self) -> str:
        label = self.name or self.email or self.sub
        return f"{label} ({self.email})" if self.name and self.email else label


@dataclass
class _Session:
    approval: str
    person: Person


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _message(status: int, text: str) -> Response:
    return PlainTextResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


def _when(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d %H:%M UTC")


class SignedInPage(ServedPage):
    """ServedPage with a sign-in per approval instead of a one-time launch link (see the module's docstring)."""

    where = "the person approves on the server's page after signing in"
    audit: Audit  # every decision is audited when it is made

    def __init__(
        self,
        store: Approvals,
        public_url: str,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        scope: str,
        roles_claim: str,
        subject_claim: str,
        approver_roles: tuple[str, ...],
        jwks: JWKSCache,
        http: httpx.AsyncClient,
        audit: Audit,
        bucket: str,
        tenant: str | None = None,
        signins: SignIns | None = None,
        limiter: Limiter | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(store, public_url, opener=None)
        self.issuer, self.client_id, self.client_secret = issuer, client_id, client_secret
        self.scope, self.roles_claim, self.approver_roles = scope, roles_claim, approver_roles
        self.subject_claim, self.tenant = subject_claim, tenant
        self.jwks, self.http, self.audit, self.bucket = jwks, http, audit, bucket
        self._meta: dict[str, Any] | None = None
        self.signins: SignIns = signins or MemorySignIns()  # shared by the replicas when they share Redis
        self.limiter = limiter
        self._key = (key or secrets.token_hex(32)).encode()  # derives each sign-in's PKCE verifier and nonce
        self._starts: dict[str, list[float]] = {}  # without a limiter: approval id ("" = all) -> sign-in starts
        self._base_path = urlsplit(self.public_url).path
        self._secure = self.public_url.startswith("https://")

    # ---- what the gate uses ----------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route(f"{self.PREFIX}/callback", self._callback, methods=["GET"]),
            Route(self.ROUTES[0], self._handle, methods=["GET", "POST"]),
        ]

    async def open(self, item: Pending) -> bool:
        return True  # the person opens the page themselves: its address is no secret

    async def launch_url(self, item: Pending) -> str:
        return self._url(item)

    def waiting(self, tool: str, item: Pending, again: bool = False, contested: bool = False) -> str:
        others = " or an approver" if self.approver_roles else ""
        return (
            f"Nothing was changed yet. A person must approve this change: ask the user to open {self._url(item)}, "
            f"sign in and approve it (only they{others} can, within 10 minutes). Wait until they tell you they have "
            f"decided, then call {tool} again with exactly the same arguments: if they approved, it runs once."
        )

    def _url(self, item: Pending) -> str:
        return f"{self._base()}/{item.id}"

    @property
    def redirect_uri(self) -> str:
        return f"{self._base()}/callback"

    # ---- the page --------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        try:
            item = await self._item(request)
        except Exception as exc:  # the approvals live in the store too
            return self._store_down(exc)
        if item is None:
            return not_found()
        sid = request.cookies.get(SESSION_COOKIE, "")
        try:
            session = await self._session(sid, item.id)
        except Exception as exc:  # the shared store is away: say so, approve nothing
            return self._store_down(exc)
        if session is None or (request.method == "GET" and "again" in request.query_params):
            if request.method == "POST":
                return _message(401, "Your sign-in for this approval has ended; nothing was approved. "
                                     "Reload the page and sign in again.")
            if item.status != "pending" or item.expired():  # nothing left to decide: no sign-in for it
                state = "expired" if item.status == "pending" else item.status
                return _message(410, f"This approval request is no longer waiting (it is {state}); nothing to do "
                                     "here. Ask the assistant to repeat the request if it is still needed.")
            return await self._sign_in(item.id, request.client.host if request.client else "?")
        person = session.person
        if not self._may_decide(person, item):
            body = (
                "<!doctype html><html lang=en><meta charset=utf-8><title>Not yours to approve</title>"
                f"<p>You are signed in as <strong>{html.escape(person.shown())}</strong>. This change was asked for "
                "by someone else: only they, or a person with an approver role, can approve it. Nothing was "
                f'changed.</p><p><a href="{html.escape(self._path(item.id))}?again=1">Sign in as someone else</a>'
                "</p></html>"
            )
            return HTMLResponse(body, status_code=403, headers=HEADERS)
        before = item.status
        # The form token comes from this browser's page session (the sign-in cookie), checked on every POST.
        response = await self._answer(request, item, sid, by=person.audit(), who=lambda now: self._who(person, now))
        if request.method == "POST":
            after = await self.store.decision(item.id)
            if before == "pending" and after in ("approved", "rejected"):
                await self.signins.end(sid)  # one sign-in, one decision
                response.delete_cookie(SESSION_COOKIE, path=self._path(item.id))
                await self._audit_decision(item, person, after)
        return response

    async def _audit_decision(self, item: Pending, person: Person, verdict: str) -> None:
        """The decision on record when it is made (the write, if it follows, is audited again with it)."""
        try:
            await self.audit.record(
                AuditEntry(
                    tool=item.tool,
                    outcome=f"page_{verdict}",
                    channel="approval-page",
                    arguments={"approval": item.id, "asked_by": item.owner},
                    detail=item.summary,
                    approver=person.audit(),
                )
            )
        except Exception as exc:  # the decision stands; the write it allows is audited on its own
            log.error("a decision on the approval page was not audited (%s)", type(exc).__name__)

    def _may_decide(self, person: Person, item: Pending) -> bool:
        owner = str((item.owner or {}).get("sub") or "")
        if owner and secrets.compare_digest(owner, person.sub):
            return True
        return bool(set(person.roles) & set(self.approver_roles))

    def _who(self, person: Person, item: Pending) -> str:
        owner = item.owner or {}
        yours = str(owner.get("sub") or "") == person.sub
        label = " ".join(str(v) for v in (owner.get("name"), f"<{owner.get('email') or 'no email'}>") if v)
        asked = "you" if yours else html.escape(f"{label} (subject {owner.get('sub')})")
        role = "" if yours else ": you are approving as an approver"
        decided = ""
        if item.approver:
            by = item.approver
            decided = f" Decided by {html.escape(str(by.get('name') or by.get('email') or by.get('sub')))}."
        return (
            f'<p id="who">Signed in as <strong>{html.escape(person.shown())}</strong>. '
            f"Asked for by <strong>{asked}</strong> ({html.escape(str(owner.get('profile') or '?'))} profile){role}, "
            f"in sheepCRM bucket <strong>{html.escape(self.bucket)}</strong>, at {_when(item.wall)}; "
            f"this request expires at {_when(item.wall + TTL_SECONDS)}.{decided}</p>"
        )

    async def _session(self, sid: str, approval: str) -> _Session | None:
        """The page session of this browser, if it was signed in for exactly this approval and has not ended."""
        held = await self.signins.session(sid) if sid else None
        if held is None or held.approval != approval:
            return None
        return _Session(held.approval, Person(held.sub, held.email, held.name, held.roles))

    @staticmethod
    def _store_down(exc: Exception) -> Response:
        log.warning("the approval page's sign-in store cannot be reached (%s)", type(exc).__name__)
        return _message(503, "Signing in to approve is unavailable right now: this server cannot reach the store "
                             "its replicas share (Redis). Nothing was approved. Try again in a few minutes.")

    def _derived(self, state: str, purpose: str) -> str:
        """The sign-in's PKCE verifier or nonce: derived from its state with the page's key, never stored."""
        return _b64url(hmac.new(self._key, f"{purpose}:{state}".encode(), hashlib.sha256).digest())

    # ---- signing in ------------------------------------------------------------------

    async def _metadata(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = await discover(self.http, self.issuer)
        return self._meta

    async def _sign_in(self, approval: str, client: str) -> Response:
        """Send the browser to the provider: code + PKCE, a fresh login asked for, pushed when the provider can.
        `client` is the address the start came from (the sign-ins in progress per address are capped)."""
        try:
            if await self._too_many(approval):
                return _message(429, "Too many sign-ins were started for this right now; try again in a minute.")
        except Exception as exc:
            return self._store_down(exc)
        state, browser = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = self._derived(state, "pkce")
        sign_in = SignInRecord(approval, time.time(), f"{LOGIN_COOKIE}_{secrets.token_hex(6)}", digest(browser),
                               digest(client))
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": state,
            "nonce": self._derived(state, "nonce"),
            "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
            "prompt": "login",
            "max_age": str(int(LOGIN_TTL)),  # makes auth_time a required claim of the ID token
        }
        try:
            meta = await self._metadata()
            endpoint = str(meta["authorization_endpoint"])
            pushed = meta.get("pushed_authorization_request_endpoint")
            if pushed:  # RFC 9126: the browser carries only an opaque reference to this exact request
                query = urlencode({"client_id": self.client_id, "request_uri": await self._push(str(pushed), params)})
            else:
                query = urlencode(params)
        except (httpx.HTTPError, ValueError, KeyError, SignInRefused):
            log.warning("a sign-in for the approval page could not be started at the identity provider")
            return _message(503, "The sign-in provider cannot be reached; nothing was approved. Try again shortly.")
        try:
            if not await self.signins.begin(state, sign_in, LOGIN_TTL):
                return _message(429, "Too many sign-ins are in progress from your address; finish one, or try again "
                                     f"in {int(LOGIN_TTL / 60)} minutes.")
        except Exception as exc:
            return self._store_down(exc)
        METRICS.sign_in("started")
        response = RedirectResponse(f"{endpoint}?{query}", status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            sign_in.cookie, browser, path=f"{self._base_path}{self.PREFIX}", httponly=True, samesite="lax",
            secure=self._secure, max_age=int(LOGIN_TTL),
        )
        return response

    async def _too_many(self, approval: str) -> bool:
        """Sign-ins started per approval and for all together in the last minute: in the shared limiter when there
        is one (every replica counts together), else in this process."""
        if self.limiter is not None:
            for user, limit in ((f"approval:{approval}", STARTS_PER_MINUTE), ("approval:*", ALL_STARTS_PER_MINUTE)):
                if await self.limiter.hit(user, "sign-in", limit, 60.0) > 0:
                    return True
            return False
        now = time.monotonic()
        for key in (approval, ""):
            recent = self._starts[key] = [t for t in self._starts.get(key, []) if now - t < 60]
            if len(recent) >= (STARTS_PER_MINUTE if key else ALL_STARTS_PER_MINUTE):
                return True
        for key in (approval, ""):
            self._starts[key].append(now)
        return False

    async def _push(self, endpoint: str, params: dict[str, str]) -> str:
        response = await self.http.post(endpoint, data=params, timeout=10, **self._client_auth())
        if response.status_code not in (200, 201):
            raise SignInRefused(f"the provider refused the pushed sign-in request (HTTP {response.status_code})")
        return str(response.json()["request_uri"])

    def _client_auth(self) -> dict[str, Any]:
        """client_secret_basic for a confidential client; a public client names itself in the form."""
        return {"auth": httpx.BasicAuth(self.client_id, self.client_secret)} if self.client_secret else {}

    async def _callback(self, request: Request) -> Response:
        if request.headers.get("host", "") != urlsplit(self.public_url).netloc:
            return not_found()
        query = request.query_params
        state = query.get("state", "")
        try:
            taken = await self.signins.take(state, LOGIN_TTL) if state else None
        except Exception as exc:
            return self._store_down(exc)
        if isinstance(taken, str):
            # The same sign-in came back twice: two browsers hold its address. Whoever came first loses the page
            # (the store withdrew the session it gave; one still being made will not be given).
            if taken not in ("", CONTESTED):
                log.warning("an approval page sign-in came back twice; the page session it gave was withdrawn")
            else:
                log.warning("an approval page sign-in came back twice")
            return _message(400, "This sign-in was already used by another browser, so its access to the page was "
                                 "withdrawn. If you did not just open this approval in two places, someone may be "
                                 "trying to use your sign-in: tell your administrator. Open the approval link again.")
        if taken is None:
            return _message(400, "This sign-in is unknown or too old. Nothing was approved. Open the approval link "
                                 "again.")
        sign_in = taken
        # Only the browser that began the sign-in may finish it. Anywhere else it ends here, unused: an address
        # read from the person's browser cannot be replayed where the sign-in began.
        if not secrets.compare_digest(digest(request.cookies.get(sign_in.cookie, "")), sign_in.browser):
            log.warning("an approval page sign-in came back to a browser that did not begin it; it was cancelled")
            return _message(400, "This sign-in was begun in another browser, so it was cancelled and nothing was "
                                 "approved. If you did not just open an approval link yourself, someone may be trying "
                                 "to use your sign-in: tell your administrator. Otherwise open the approval link "
                                 "again in this browser.")
        if time.time() - sign_in.started > LOGIN_TTL:
            return _message(400, "This sign-in took too long; nothing was approved. Open the approval link again.")
        meta = self._meta or {}
        required = bool(meta.get("authorization_response_iss_parameter_supported"))
        if query.get("iss") != self.issuer and (required or "iss" in query):  # RFC 9207: from our provider only
            return _message(400, "This sign-in came back from another provider; nothing was approved.")
        if "error" in query or not query.get("code"):
            why = CANCELLED.get(query.get("error", ""), "the provider reported an error")
            return _message(400, f"Sign-in did not complete ({why}); nothing was approved.")
        try:
            person = await self._exchange(query["code"], sign_in, state)
        except SignInRefused as exc:
            METRICS.sign_in("refused")
            log.warning("an approval page sign-in was refused: %s", exc)
            return _message(403, f"Sign-in refused: {exc}. Nothing was approved.")
        sid = secrets.token_urlsafe(32)
        record = SessionRecord(sign_in.approval, person.sub, person.email, person.name, person.roles,
                               time.time() + SESSION_TTL)
        try:
            opened = await self.signins.open_session(state, sid, record, SESSION_TTL)
        except Exception as exc:
            return self._store_down(exc)
        if not opened:  # came back twice while the code was traded
            return _message(400, "This sign-in was also used by another browser, so it gives no access. Nothing was "
                                 "approved. Open the approval link again.")
        METRICS.sign_in("completed")
        page = self._path(sign_in.approval)
        response = RedirectResponse(page, status_code=303, headers={"Cache-Control": "no-store"})
        # Lax, not Strict: the browser arrives here from the provider's site, and the page that follows is part
        # of that same navigation. The cookie is scoped to this one approval's page and ends with its decision.
        response.set_cookie(
            SESSION_COOKIE, sid, path=page, httponly=True, samesite="lax", secure=self._secure,
            max_age=int(SESSION_TTL),
        )
        response.delete_cookie(sign_in.cookie, path=f"{self._base_path}{self.PREFIX}")
        return response

    async def _exchange(self, code: str, sign_in: SignInRecord, state: str) -> Person:
        """The code for tokens at the provider (PKCE verifier, client auth when confidential); the verified person."""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self._derived(state, "pkce"),
            "client_id": self.client_id,
        }
        try:
            endpoint = str((await self._metadata())["token_endpoint"])
            response = await self.http.post(endpoint, data=data, timeout=10, **self._client_auth())
        except (httpx.HTTPError, ValueError, KeyError):
            raise SignInRefused("the sign-in provider could not be reached") from None
        if response.status_code != 200:
            raise SignInRefused(f"the provider refused the sign-in code (HTTP {response.status_code})")
        try:
            token = response.json().get("id_token")
        except ValueError:
            token = None
        if not isinstance(token, str):
            raise SignInRefused("the provider sent no ID token; the page's client needs the 'openid' scope")
        claims = await verify_id_token(
            token, jwks=self.jwks, issuer=self.issuer, client_id=self.client_id, nonce=self._derived(state, "nonce"),
            started=sign_in.started, fresh_leeway=FRESH_LEEWAY, tenant=self.tenant,
        )
        email, name, subject = claims.get("email"), claims.get("name"), claims.get(self.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise SignInRefused(f"the sign-in has no {self.subject_claim} claim, which names people on this server")
        return Person(
            sub=subject,
            email=email if isinstance(email, str) else None,
            name=name if isinstance(name, str) else None,
            roles=roles_of(claims, self.roles_claim),
        )
