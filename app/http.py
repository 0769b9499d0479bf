"""Streamable HTTP transport, safe by default.

Binds 127.0.0.1; validates Host and Origin against DNS rebinding; refuses a non-loopback
bind unless SHEEPCRM_MCP_TOKEN is set, and then every request (but /healthz) must carry
it as a bearer token, compared in constant time. Stateful sessions by default so that
confirmations can reach 2025-11-25 clients; `--stateless` for replicas behind a balancer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sheepcrm_mcp.assembly import App
from sheepcrm_mcp.server import __version__
from sheepcrm_mcp.server.approvals import ServedPage
from sheepcrm_mcp.server.settings import ConfigError

log = logging.getLogger("sheepcrm_mcp.http")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


GRACE_SECONDS = 10.0


class InFlight:
    """Pure ASGI middleware counting requests that are being answered (all but GET streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "GET":
            await self.app(scope, receive, send)
            return
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1


class DrainingServer(uvicorn.Server):
    """uvicorn, but on SIGTERM/SIGINT in-flight tool calls finish before SSE streams are closed.

    sse-starlette closes every event stream the moment uvicorn gets a signal, which would cut a
    tool call's answer mid-flight. We turn that off and close the streams ourselves once no request
    is being answered any more (or the grace period is nearly over): uvicorn has by then stopped
    accepting connections, and idle GET streams would otherwise hold shutdown for the whole grace.
    """

    def __init__(self, config: uvicorn.Config, inflight: InFlight) -> None:
        super().__init__(config)
        self.inflight = inflight
        from sse_starlette.sse import AppStatus

        AppStatus.enable_automatic_graceful_drain = False  # what disable_automatic_graceful_drain() does

    async def _close_streams_when_idle(self) -> None:
        from sse_starlette.sse import AppStatus

        deadline = time.monotonic() + max(0.0, (self.config.timeout_graceful_shutdown or GRACE_SECONDS) - 1.0)
        while self.inflight.count and time.monotonic() < deadline:  # noqa: ASYNC110 - a counter, polled
            await asyncio.sleep(0.05)
        AppStatus.should_exit = True

    async def shutdown(self, sockets: Any = None) -> None:
        closer = asyncio.create_task(self._close_streams_when_idle())
        try:
            await super().shutdown(sockets)
        finally:
            closer.cancel()
        log.warning("stopped serving MCP over HTTP")


class CloseOnShutdown:
    """Pure ASGI middleware: closes the server's upstream client when the app's lifespan ends."""

    def __init__(self, app: ASGIApp, aclose: Callable[[], Awaitable[None]]) -> None:
        self.app, self.aclose = app, aclose

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                try:
                    await self.aclose()
                except Exception:
                    log.exception("closing the sheepCRM client failed")
            await send(message)

        await self.app(scope, receive, send_closing)


class BearerAuth:
    """Pure ASGI middleware: every request but /healthz needs `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    def allowed(self, scope: Scope) -> bool:
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        scheme, _, given = header.partition(b" ")
        # Always run the comparison, so a wrong scheme costs the same time as a wrong token.
        same = hmac.compare_digest(given.strip(), self.expected)
        return same and scheme.lower() == b"bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] != "/healthz" and not self.allowed(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            body = json.dumps({"error": "missing or wrong bearer token (SHEEPCRM_MCP_TOKEN)"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="sheepcrm-mcp"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def http_app(built: App, host: str, stateless: bool) -> ASGIApp:
    server, settings = built.server, built.settings
    token = settings.mcp_token.get_secret_value() if settings.mcp_token else ""
    if host not in LOOPBACK and not token:
        raise ConfigError(
            f"refusing to listen on {host} without SHEEPCRM_MCP_TOKEN: set a long random token "
            "(clients then send it as a bearer token) or bind 127.0.0.1"
        )
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.http_allowed_hosts]
    if host not in LOOPBACK and host not in ("0.0.0.0", "::"):  # noqa: S104 - a named interface
        hosts.append(f"{host}:*")
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *settings.http_allowed_origins]

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    server.custom_route("/healthz", methods=["GET"])(healthz)
    if isinstance(built.page, ServedPage):  # replicas: the approval page is a route of every replica
        server.custom_route(ServedPage.ROUTE, methods=["GET", "POST"])(built.page.handle)

    app: ASGIApp = server.streamable_http_app(
        stateless_http=stateless,
        host=host,
        transport_security=TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins),
    )
    app = CloseOnShutdown(app, built.aclose)
    return BearerAuth(app, token) if token else app


def run_http(built: App, *, host: str, port: int, stateless: bool) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, let in-flight calls finish (up to 10 s), exit."""
    settings = built.settings
    app = http_app(built, host, stateless)
    mode = "stateless" if stateless else "stateful"
    shown = f"[{host}]" if ":" in host else host
    log.warning("serving MCP over streamable HTTP (%s) at http://%s:%d/mcp", mode, shown, port)
    if host not in LOOPBACK and not settings.http_allowed_hosts:
        log.warning(
            "only Host headers naming a loopback address are accepted; set SHEEPCRM_HTTP_ALLOWED_HOSTS "
            "(e.g. mcp.example.org,mcp.example.org:*) to the names clients or your proxy use"
        )
    inflight = InFlight(app)
    # log_config=None: uvicorn's records go through our stderr handler and its secret filter.
    config = uvicorn.Config(
        inflight,
        host=host,
        port=port,
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(GRACE_SECONDS),
    )
    # uvicorn re-raises the signal once drained, so SIGTERM still ends the process as SIGTERM does.
    DrainingServer(config, inflight).run()
