"""The approval page of a hosted server (SHEEPCRM_AUTH=oauth): the person signs in to approve.

Routes of the hosted app under /approve. Opening /approve/{id} without a session starts an OpenID
Connect sign-in at the provider that issues the access tokens: authorization code + PKCE (S256),
`state` bound to this browser by a cookie, a `nonce`, and `prompt=login`, so that the person types
their credentials now. A single sign-on session alone is not enough, since a model driving the
person's browser could ride it: the ID token's `auth_time` must fall after the sign-in started. The
callback trades the code for tokens, which are kept only for that request. It verifies the ID token
against the issuer's JWKS (signature, iss, aud = this page's client, exp, nonce, auth_time) and then
sets an HttpOnly session cookie. Only the person who asked for the change (the same `sub`) or a
person with an approver role may decide, and the page says who is signed in and who asked for what.
The address is not a secret: without the person's own sign-in it shows nothing and approves nothing.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sheepcrm_mcp.server.approvals import HEADERS, Pending, ServedPage, not_found
from sheepcrm_mcp.server.auth import JWKSCache, SignInRefused, discover, roles_of, verify_id_token

if TYPE_CHECKING:
    from sheepcrm_mcp.server.stores import Approvals

log = logging.getLogger("sheepcrm_mcp.signin")

SESSION_TTL = 900.0  # seconds a page sign-in lasts
LOGIN_TTL = 600.0  # seconds a person has to finish signing in at the provider
MAX_LOGINS = 10_000  # sign-ins in progress at once; more are refused rather than held in memory
SESSION_COOKIE = "sheepcrm_approver"
LOGIN_COOKIE = "sheepcrm_signin"


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
class _SignIn:
    verifier: str
    nonce: str
    next: str
    started: float  # wall clock, compared with the ID token's auth_time


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _message(status: int, text: str) -> Response:
    return PlainTextResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


class SignedInPage(ServedPage):
    """ServedPage with sign-in instead of a one-time launch link (see the module's docstring)."""

    where = "the person approves on the server's page after signing in"

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
        approver_roles: tuple[str, ...],
        jwks: JWKSCache,
        http: httpx.AsyncClient,
    ) -> None:
        super().__init__(store, public_url, opener=None)
        self.issuer, self.client_id, self.client_secret = issuer, client_id, client_secret
        self.scope, self.roles_claim, self.approver_roles = scope, roles_claim, approver_roles
        self.jwks, self.http = jwks, http
        self._meta: dict[str, Any] | None = None
        self._sign_ins: dict[str, _SignIn] = {}
        self._sessions: dict[str, tuple[float, Person]] = {}
        self._cookie_path = f"{urlsplit(self.public_url).path}{self.PREFIX}"
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

    def waiting(self, tool: str, item: Pending) -> str:
        others = " or an approver" if self.approver_roles else ""
        return (
            f"Nothing was changed yet. A person must approve this change: ask the user to open {self._url(item)}, "
            f"sign in and approve it (only they{others} can, within 10 minutes). Then call {tool} again with exactly "
            "the same arguments and it will run once."
        )

    def _url(self, item: Pending) -> str:
        return f"{self.public_url}{self.PREFIX}/{item.id}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}{self.PREFIX}/callback"

    # ---- the page --------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        item = await self._item(request)
        if item is None:
            return not_found()
        person = self._person(request)
        if person is None:
            if request.method == "POST":
                return _message(401, "Your sign-in has expired; nothing was approved. Reload the page and sign in.")
            return await self._sign_in(self._path(item.id))
        if not self._may_decide(person, item):
            body = (
                f"<!doctype html><html lang=en><meta charset=utf-8><title>Not yours to approve</title>"
                f"<p>You are signed in as <strong>{html.escape(person.shown())}</strong>. This change was asked for "
                "by someone else: only they, or a person with an approver role, can approve it. Nothing was "
                "changed.</p></html>"
            )
            return HTMLResponse(body, status_code=403, headers=HEADERS)
        return await self._answer(request, item, person.audit(), self._who(person, item))

    def _may_decide(self, person: Person, item: Pending) -> bool:
        owner = str((item.owner or {}).get("sub") or "")
        if owner and secrets.compare_digest(owner, person.sub):
            return True
        return bool(set(person.roles) & set(self.approver_roles))

    @staticmethod
    def _who(person: Person, item: Pending) -> str:
        owner = item.owner or {}
        asked = str(owner.get("email") or owner.get("sub") or "unknown")
        yours = str(owner.get("sub") or "") == person.sub
        return (
            f'<p id="who">Signed in as <strong>{html.escape(person.shown())}</strong>. '
            f"Asked for by <strong>{'you' if yours else html.escape(asked)}</strong>"
            f" ({html.escape(str(owner.get('profile') or '?'))} profile)"
            f"{'' if yours else ': you are approving as an approver'}.</p>"
        )

    def _person(self, request: Request) -> Person | None:
        sid = request.cookies.get(SESSION_COOKIE, "")
        held = self._sessions.get(sid) if sid else None
        if held is None:
            return None
        if held[0] < time.monotonic():
            self._sessions.pop(sid, None)
            return None
        return held[1]

    # ---- signing in ------------------------------------------------------------------

    async def _metadata(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = await discover(self.http, self.issuer)
        return self._meta

    def _purge(self) -> None:
        now, wall = time.monotonic(), time.time()
        for key in [k for k, s in self._sign_ins.items() if wall - s.started > LOGIN_TTL]:
            del self._sign_ins[key]
        for key in [k for k, (until, _) in self._sessions.items() if until < now]:
            del self._sessions[key]

    async def _sign_in(self, next_path: str) -> Response:
        """Send the browser to the provider: code + PKCE, state bound to this browser, a fresh login asked for."""
        self._purge()
        if len(self._sign_ins) >= MAX_LOGINS:
            return _message(503, "Too many sign-ins are in progress; try again in a few minutes.")
        try:
            endpoint = str((await self._metadata())["authorization_endpoint"])
        except (httpx.HTTPError, ValueError, KeyError):
            log.warning("the identity provider's metadata could not be read for a sign-in")
            return _message(503, "The sign-in provider cannot be reached; nothing was approved. Try again shortly.")
        state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        sign_in = _SignIn(verifier, secrets.token_urlsafe(24), next_path, time.time())
        self._sign_ins[state] = sign_in
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.scope,
                "state": state,
                "nonce": sign_in.nonce,
                "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
                "code_challenge_method": "S256",
                "prompt": "login",
                "max_age": str(int(LOGIN_TTL)),  # makes auth_time a required claim of the ID token
            }
        )
        response = RedirectResponse(f"{endpoint}?{query}", status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            LOGIN_COOKIE, state, path=self._cookie_path, httponly=True, samesite="lax", secure=self._secure,
            max_age=int(LOGIN_TTL),
        )
        return response

    async def _callback(self, request: Request) -> Response:
        if request.headers.get("host", "") != urlsplit(self.public_url).netloc:
            return not_found()
        query = request.query_params
        state = query.get("state", "")
        sign_in = self._sign_ins.pop(state, None) if state else None
        if (
            sign_in is None
            or not secrets.compare_digest(request.cookies.get(LOGIN_COOKIE, ""), state)
            or time.time() - sign_in.started > LOGIN_TTL
        ):
            return _message(400, "This sign-in is not valid any more (used, expired or begun in another browser); "
                                 "nothing was approved. Open the approval link again.")
        if "error" in query or not query.get("code"):
            error = query.get("error", "no code")[:60]
            return _message(400, f"Sign-in did not complete ({error}); nothing was approved.")
        try:
            person = await self._exchange(query["code"], sign_in)
        except SignInRefused as exc:
            log.warning("an approval page sign-in was refused: %s", exc)
            return _message(403, f"Sign-in refused: {exc}. Nothing was approved.")
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = (time.monotonic() + SESSION_TTL, person)
        response = RedirectResponse(sign_in.next, status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            SESSION_COOKIE, sid, path=self._cookie_path, httponly=True, samesite="lax", secure=self._secure,
            max_age=int(SESSION_TTL),
        )
        response.delete_cookie(LOGIN_COOKIE, path=self._cookie_path)
        return response

    async def _exchange(self, code: str, sign_in: _SignIn) -> Person:
        """The code for tokens at the provider (PKCE verifier, client auth when confidential); the verified person."""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": sign_in.verifier,
            "client_id": self.client_id,
        }
        try:
            endpoint = str((await self._metadata())["token_endpoint"])
            if self.client_secret:  # a confidential client: client_secret_basic
                auth = httpx.BasicAuth(self.client_id, self.client_secret)
                response = await self.http.post(endpoint, data=data, auth=auth, timeout=10)
            else:
                response = await self.http.post(endpoint, data=data, timeout=10)
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
            token, jwks=self.jwks, issuer=self.issuer, client_id=self.client_id, nonce=sign_in.nonce,
            started=sign_in.started,
        )
        email, name = claims.get("email"), claims.get("name")
        return Person(
            sub=str(claims["sub"]),
            email=email if isinstance(email, str) else None,
            name=name if isinstance(name, str) else None,
            roles=roles_of(claims, self.roles_claim),
        )
