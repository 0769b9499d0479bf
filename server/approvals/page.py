"""The approval page, reached by a person and never by the model.

The loopback page (`ApprovalPage`) lives on 127.0.0.1 under a per-process secret path; on replicas
the page is routes of the HTTP app (`ServedPage`). Its address never appears in a tool result, an error or a log line:
the server opens the person's browser itself (or, on a client that declares URL-mode
elicitation, the client shows the address to the person). What is opened is a one-time launch
link: the first visit trades it for an HttpOnly, SameSite=Strict cookie bound to that browser,
and the page and its form answer only that browser. Every POST also needs the approval's CSRF
token, an Origin naming the page and a Host naming the page; every other request gets the same
404.
"""

from __future__ import annotations

import html
import logging
import secrets
import threading
import webbrowser
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sheepcrm_mcp.server.approvals.pending import TTL_SECONDS, Pending
from sheepcrm_mcp.server.approvals.store import Approvals
from sheepcrm_mcp.server.threadserver import ThreadServer

log = logging.getLogger("sheepcrm_mcp.approvals")

Opener = Callable[[str], bool]


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Approve change - sheepCRM</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}}
li{{margin:.3rem 0;font-family:ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere}}
.s{{padding:.6rem 1rem;background:#f4f4f4;border-radius:6px}}
button{{font-size:1rem;padding:.5rem 1.2rem;margin-right:.8rem}}</style></head><body>
<h1>Approve a change to sheepCRM?</h1>{who}<p class="s"><strong>{summary}</strong></p><ul>{lines}</ul>
<p>Tool: <code>{tool}</code>. Status: <strong id="status">{status}</strong>.</p>{form}
<p><small>After you approve, ask the assistant to repeat the same request; it will run once.
The approval expires 10 minutes after it was requested.</small></p></body></html>"""

FORM = """<form method="post"><input type="hidden" name="csrf" value="{csrf}">
<button type="submit" name="action" value="approve" id="approve">Approve</button>
<button type="submit" name="action" value="reject" id="reject">Reject</button></form>"""

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def not_found() -> Response:
    """The one answer for every address, host, cookie or approval that is not exactly right."""
    return PlainTextResponse("Not found", status_code=404, headers={"Cache-Control": "no-store"})


def _open_in_browser(url: str) -> bool:
    """Open the person's browser (honours $BROWSER); False when there is none."""
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False


class ApprovalPage:
    """The loopback page; started on first use so that start-up stays fast.

    `opener` puts a launch link in front of the person (by default their browser); None means this
    server cannot reach a person's browser (a hosted server), so the page channel is unavailable.
    """

    def __init__(self, store: Approvals, port: int = 0, opener: Opener | None = _open_in_browser) -> None:
        self.store = store
        self.secret = secrets.token_urlsafe(24)
        self.opener = opener
        self._port = port
        self._server: ThreadServer | None = None
        self._lock = threading.Lock()

    def _origin(self) -> str:
        with self._lock:
            if self._server is None:
                app = Starlette(
                    routes=[
                        Route("/{secret}/{approval_id}/open/{launch}", self._launch, methods=["GET"]),
                        Route("/{secret}/{approval_id}", self._handle, methods=["GET", "POST"]),
                    ]
                )
                app.add_exception_handler(404, lambda request, exc: not_found())
                app.add_exception_handler(405, lambda request, exc: not_found())
                self._server = ThreadServer(app, "127.0.0.1", self._port).start()
            return self._server.url

    def _base(self) -> str:
        """Where the page lives: origin and path prefix."""
        return f"{self._origin()}/{self.secret}"

    def origin(self) -> str:
        """The origin the page is served from: a form POST must name it, and requests its host."""
        assert self._server is not None
        return self._server.url

    async def launch_url(self, item: Pending) -> str:
        """A one-time link for the person's browser; the model must never see it."""
        base = await anyio.to_thread.run_sync(self._base)
        token = await self.store.new_launch(item.id)
        return f"{base}/{item.id}/open/{token}"

    async def open(self, item: Pending) -> bool:
        """Put the approval in front of the person by opening their browser; False when that is impossible."""
        opener = self.opener
        if opener is None:
            return False
        url = await self.launch_url(item)
        try:
            return bool(await anyio.to_thread.run_sync(opener, url))
        except Exception:
            log.warning("could not open a browser for an approval", exc_info=False)
            return False

    where = "opened the approval page in this computer's browser"  # for the log: never an address

    def waiting(self, tool: str, item: Pending) -> str:
        """What the model is told while a person decides: never the page's address, which admits its holder."""
        return (
            "Nothing was changed yet. A page asking the person to approve this change has been opened in the "
            f"browser on their computer; approval is waiting. After they approve it (within 10 minutes), call {tool} "
            "again with exactly the same arguments and it will run once."
        )

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _path(self, approval_id: str) -> str:
        return f"/{self.secret}/{approval_id}"

    async def _item(self, request: Request) -> Pending | None:
        """The approval a request names, if its host and secret path are exactly right."""
        host = request.headers.get("host", "")
        if host != self.origin().split("://", 1)[1]:
            return None
        if not secrets.compare_digest(request.path_params.get("secret", ""), self.secret):
            return None
        return await self.store.get(request.path_params["approval_id"])

    async def _launch(self, request: Request) -> Response:
        item = await self._item(request)
        cookie = await self.store.launch(item.id, request.path_params["launch"]) if item is not None else None
        if item is None or cookie is None:
            return not_found()
        page = self._path(item.id)
        response = RedirectResponse(page, status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            f"a_{item.id}",
            cookie,
            path=page,
            httponly=True,
            samesite="strict",
            secure=self.origin().startswith("https://"),
            max_age=int(TTL_SECONDS),
        )
        return response

    async def _handle(self, request: Request) -> Response:
        item = await self._item(request)
        if item is None or not secrets.compare_digest(request.cookies.get(f"a_{item.id}", ""), item.browser):
            return not_found()
        return await self._answer(request, item)

    async def _answer(
        self,
        request: Request,
        item: Pending,
        by: dict[str, Any] | None = None,
        who: Callable[[Pending], str] | None = None,
    ) -> Response:
        """The page, or (POST) the person's decision: strict form, CSRF token, Origin of the page."""
        if request.method == "POST":
            if request.headers.get("origin", "") != self.origin():
                return PlainTextResponse(
                    "Refused: this form only accepts submissions from its own page.", status_code=403
                )
            form = await request.form()
            fields = {k: [str(v) for v in form.getlist(k)] for k in form.keys()}
            action = fields.get("action", [""])
            if set(fields) != {"csrf", "action"} or len(action) != 1 or action[0] not in ("approve", "reject"):
                return PlainTextResponse("Refused: the form was altered. Reload the page.", status_code=400)
            verdict = await self.store.decide(item.id, fields["csrf"][0], action[0] == "approve", by)
            if verdict == "csrf":
                return PlainTextResponse(
                    "Refused: the form token is missing or wrong. Reload the page.", status_code=403
                )
            if verdict == "expired":
                return PlainTextResponse("This approval request has expired; nothing was approved.", status_code=410)
            item = await self.store.get(item.id) or item  # a shared store hands out copies
        return HTMLResponse(self._render(item, who(item) if who else ""), headers=HEADERS)

    @staticmethod
    def _render(item: Pending, who: str = "") -> str:
        """The page; `who` is trusted HTML (already escaped) saying who approves what, on a hosted server."""
        status = "expired" if item.status == "pending" and item.expired() else item.status
        form = FORM.format(csrf=html.escape(item.csrf)) if status == "pending" else ""
        return PAGE.format(
            who=who,
            summary=html.escape(item.summary),
            tool=html.escape(item.tool),
            status=status,
            lines="".join(f"<li>{html.escape(line)}</li>" for line in item.lines),
            form=form,
        )


class ServedPage(ApprovalPage):
    """The page as routes of the HTTP app itself, for replicas behind a balancer: any replica serves an
    approval another one created, since the store is shared. `public_url` is the address people reach the
    replicas at (the balancer's): requests must name its host, a form POST its origin. The same one-time
    launch link, browser cookie, CSRF token and strict form as the loopback page; the launch link still
    goes only to the person's browser (the opener), never into a tool result. The routes carry no bearer
    token (a browser has none): the one-time link and the cookie are what admit the person."""

    PREFIX = "/approve"
    ROUTES = ("/approve/{approval_id}", "/approve/{approval_id}/open/{launch}")

    def __init__(self, store: Approvals, public_url: str, opener: Opener | None = _open_in_browser) -> None:
        super().__init__(store, opener=opener)
        self.public_url = public_url.rstrip("/")

    def routes(self) -> list[Route]:
        return [
            Route(self.ROUTES[1], self._launch, methods=["GET"]),
            Route(self.ROUTES[0], self._handle, methods=["GET", "POST"]),
        ]

    def _base(self) -> str:
        return f"{self.public_url}{self.PREFIX}"

    def _path(self, approval_id: str) -> str:
        return f"{urlsplit(self.public_url).path}{self.PREFIX}/{approval_id}"

    def origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    async def _item(self, request: Request) -> Pending | None:
        if request.headers.get("host", "") != urlsplit(self.public_url).netloc:
            return None
        return await self.store.get(request.path_params["approval_id"])

    def close(self) -> None:
        pass
