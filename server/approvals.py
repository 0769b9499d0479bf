"""Pending approvals and the loopback approval page, for clients that cannot show confirmations.

A pending approval is bound to the tool, its exact arguments and a digest of the state
that was previewed; it is single-use and expires. The page lives on 127.0.0.1 under a
per-process secret path, and every POST needs the approval's CSRF token and an Origin
header naming the page itself. Nothing the model sees can approve anything: the model
gets the page's address to hand to a person, and approving takes that person's click.
"""

from __future__ import annotations

import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from sheepcrm_mcp.server.threadserver import ThreadServer

if TYPE_CHECKING:
    from sheepcrm_mcp.server.stores import Approvals

TTL_SECONDS = 600.0
Status = Literal["pending", "approved", "rejected", "used"]


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Pending:
    id: str
    tool: str
    args_digest: str
    state_digest: str
    summary: str
    lines: list[str]
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    created: float = field(default_factory=time.monotonic)
    status: Status = "pending"
    wall: float = field(default_factory=time.time)  # when it was created, for stores shared between processes

    def expired(self, now: float | None = None) -> bool:
        return (now or time.monotonic()) - self.created > TTL_SECONDS


class ApprovalStore:
    """In this process (stores.Approvals); with several replicas, redis_store.RedisApprovals instead."""

    def __init__(self) -> None:
        self._items: dict[str, Pending] = {}
        self._lock = threading.Lock()

    async def create(self, tool: str, args_digest: str, state_digest: str, summary: str, lines: list[str]) -> Pending:
        with self._lock:
            self._purge()
            for item in self._items.values():  # the same request again: reuse its page
                if (item.tool, item.args_digest, item.state_digest, item.status) == (
                    tool,
                    args_digest,
                    state_digest,
                    "pending",
                ):
                    return item
            item = Pending(secrets.token_urlsafe(16), tool, args_digest, state_digest, summary, lines)
            self._items[item.id] = item
            return item

    async def get(self, approval_id: str) -> Pending | None:
        with self._lock:
            return self._items.get(approval_id)

    async def decide(self, approval_id: str, csrf: str, approve: bool) -> str:
        """Record a person's decision; returns what the page should say."""
        with self._lock:
            item = self._items.get(approval_id)
            if item is None:
                return "unknown"
            if not secrets.compare_digest(item.csrf, csrf):
                return "csrf"
            if item.expired():
                return "expired"
            if item.status != "pending":
                return item.status
            item.status = "approved" if approve else "rejected"
            return item.status

    async def consume(self, tool: str, args_digest: str, state_digest: str) -> Pending | str | None:
        """Use an approval matching exactly this request and state, once.

        Returns the approval, or 'expired' / 'rejected' when the matching one is, or None.
        """
        with self._lock:
            found: Pending | str | None = None
            for item in self._items.values():
                if (item.tool, item.args_digest, item.state_digest) != (tool, args_digest, state_digest):
                    continue
                if item.status == "approved" and not item.expired():
                    item.status = "used"
                    return item
                if item.status == "approved":  # approved too late: report it once, then it is spent
                    item.status = "used"
                    found = "expired"
                elif item.status == "rejected":
                    item.status = "used"
                    found = "rejected"
            return found

    def _purge(self) -> None:
        now = time.monotonic()
        for key in [k for k, v in self._items.items() if now - v.created > 2 * TTL_SECONDS]:
            del self._items[key]


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Approve change - sheepCRM</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}}
li{{margin:.3rem 0;font-family:ui-monospace,monospace}} .s{{padding:.6rem 1rem;background:#f4f4f4;border-radius:6px}}
button{{font-size:1rem;padding:.5rem 1.2rem;margin-right:.8rem}}</style></head><body>
<h1>Approve a change to sheepCRM?</h1><p class="s"><strong>{summary}</strong></p><ul>{lines}</ul>
<p>Tool: <code>{tool}</code>. Status: <strong id="status">{status}</strong>.</p>{form}
<p><small>After you approve, ask the assistant to repeat the same request; it will run once.
The approval expires 10 minutes after it was requested.</small></p></body></html>"""

FORM = """<form method="post"><input type="hidden" name="csrf" value="{csrf}">
<button type="submit" name="action" value="approve" id="approve">Approve</button>
<button type="submit" name="action" value="reject" id="reject">Reject</button></form>"""


class ApprovalPage:
    """The loopback page; started on first use so that start-up stays fast."""

    def __init__(self, store: Approvals, port: int = 0) -> None:
        self.store = store
        self.secret = secrets.token_urlsafe(24)
        self._port = port
        self._server: ThreadServer | None = None
        self._lock = threading.Lock()

    def url_for(self, approval_id: str) -> str:
        with self._lock:
            if self._server is None:
                app = Starlette(routes=[Route("/{secret}/{approval_id}", self._handle, methods=["GET", "POST"])])
                self._server = ThreadServer(app, "127.0.0.1", self._port).start()
            return f"{self._server.url}/{self.secret}/{approval_id}"

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def _handle(self, request: Request) -> Response:
        if not secrets.compare_digest(request.path_params.get("secret", ""), self.secret):
            return PlainTextResponse("Not found", status_code=404)
        return await self.handle(request)

    def origin(self) -> str:
        """The origin the page is served from: a form POST must name it."""
        assert self._server is not None
        return self._server.url

    async def handle(self, request: Request) -> Response:
        item = await self.store.get(request.path_params["approval_id"])
        if item is None:
            return PlainTextResponse("No such approval request.", status_code=404)
        if request.method == "POST":
            if request.headers.get("origin", "") != self.origin():
                return PlainTextResponse(
                    "Refused: this form only accepts submissions from its own page.", status_code=403
                )
            form = await request.form()
            verdict = await self.store.decide(item.id, str(form.get("csrf", "")), form.get("action") == "approve")
            if verdict == "csrf":
                return PlainTextResponse(
                    "Refused: the form token is missing or wrong. Reload the page.", status_code=403
                )
            if verdict == "expired":
                return PlainTextResponse("This approval request has expired; nothing was approved.", status_code=410)
            item = await self.store.get(item.id) or item  # a shared store hands out copies
        return HTMLResponse(
            self._render(item),
            headers={
                "Cache-Control": "no-store",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "same-origin",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            },
        )

    @staticmethod
    def _render(item: Pending) -> str:
        status = "expired" if item.status == "pending" and item.expired() else item.status
        form = FORM.format(csrf=html.escape(item.csrf)) if status == "pending" else ""
        return PAGE.format(
            summary=html.escape(item.summary),
            tool=html.escape(item.tool),
            status=status,
            lines="".join(f"<li>{html.escape(line)}</li>" for line in item.lines),
            form=form,
        )


class ServedPage(ApprovalPage):
    """The page as a route of the HTTP app itself (/approve/{id}), for replicas behind a balancer: any
    replica serves an approval another one created, since the store is shared. `public_url` is the
    address people reach the replicas at (the balancer's); a form POST must come from that origin."""

    ROUTE = "/approve/{approval_id}"

    def __init__(self, store: Approvals, public_url: str) -> None:
        super().__init__(store)
        self.public_url = public_url.rstrip("/")

    def url_for(self, approval_id: str) -> str:
        return f"{self.public_url}/approve/{approval_id}"

    def origin(self) -> str:
        scheme, _, rest = self.public_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"

    def close(self) -> None:
        pass
