"""Streamable HTTP transport, safe by default.

Binds 127.0.0.1; validates Host and Origin against DNS rebinding; refuses a non-loopback
bind unless SHEEPCRM_MCP_TOKEN is set, and then every request (but /healthz) must carry
it as a bearer token, compared in constant time. Stateful sessions by default so that
confirmations can reach 2025-11-25 clients; `--stateless` for replicas behind a balancer.
"""

from __future__ import annotations

import hmac
import json
import logging

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server import __version__
from server.config import ConfigError, Settings

log = logging.getLogger("sheepcrm_mcp.http")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class BearerAuth:
    """Pure ASGI middleware: every request but /healthz needs `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
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


def http_app(server: MCPServer, settings: Settings, host: str, stateless: bool) -> ASGIApp:
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

    app: ASGIApp = server.streamable_http_app(
        stateless_http=stateless,
        host=host,
        transport_security=TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins),
    )
    return BearerAuth(app, token) if token else app


def run_http(server: MCPServer, settings: Settings, *, host: str, port: int, stateless: bool) -> None:
    app = http_app(server, settings, host, stateless)
    mode = "stateless" if stateless else "stateful"
    log.warning("serving MCP over streamable HTTP (%s) at http://%s:%d/mcp", mode, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)
