"""Streamable HTTP transport, safe by default.

Binds 127.0.0.1; validates Host and Origin against DNS rebinding; every request but /healthz
must carry the bearer token, loopback included (another local user is a stranger too),
compared in constant time. Without SHEEPCRM_MCP_TOKEN the token is kept in a 0600 file whose path
(never the token) is printed on stderr, one token for every server of this user running on that
file (a new one when the first of them starts); a non-loopback
bind needs SHEEPCRM_MCP_TOKEN. Failed attempts are throttled per client address, and each
address may hold a limited number of sessions. Stateful sessions by default so that
confirmations can reach 2025-11-25 clients; `--stateless` for replicas behind a balancer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import secrets
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sheepcrm_mcp.assembly import App
from sheepcrm_mcp.server import __version__, logs
from sheepcrm_mcp.server.approvals.page import ServedPage
from sheepcrm_mcp.server.files import check_private
from sheepcrm_mcp.server.settings import ConfigError, Settings, default_token_file

log = logging.getLogger("sheepcrm_mcp.http")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


GRACE_SECONDS = 10.0
MAX_FAILURES = 10  # failed bearer attempts per client address per window before it must wait
FAILURE_WINDOW = 60.0
MAX_SESSIONS_PER_CLIENT = 64
MAX_TRACKED = 4096  # client addresses with recent failures kept before aged-out ones are dropped
SESSION_IDLE = 3600.0  # a session not used for this long no longer counts against its client


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
    """Pure ASGI middleware: every request but /healthz (and a replica's approval page, see _page) needs
    `Authorization: Bearer <token>`.

    A client address with MAX_FAILURES wrong attempts in FAILURE_WINDOW seconds gets 429 for further wrong
    attempts until the window has passed (the right token still passes); an address holding
    MAX_SESSIONS_PER_CLIENT live sessions cannot open another.
    """

    def __init__(self, app: ASGIApp, token: str, page_prefix: str | None = None,
                 open_paths: tuple[str, ...] = ("/healthz",)) -> None:
        self.app = app
        self.page_prefix, self.open_paths = page_prefix, open_paths
        self.expected = token.encode()
        self.failures: dict[str, list[float]] = {}
        self.sessions: dict[str, dict[bytes, float]] = {}

    def _forget_old(self, now: float) -> None:
        """Keep the failure table small: addresses whose failures have all aged out are dropped."""
        if len(self.failures) > MAX_TRACKED:
            for peer in [p for p, times in self.failures.items() if not times or now - times[-1] >= FAILURE_WINDOW]:
                del self.failures[peer]

    def _page(self, scope: Scope, path: str) -> bool:
        """The approval page of a replica is opened by a person's browser, which has no bearer token: it is
        admitted by its own one-time launch link, HttpOnly cookie, CSRF token and Host/Origin checks."""
        return scope["type"] == "http" and self.page_prefix is not None and path.startswith(self.page_prefix)

    def allowed(self, scope: Scope) -> bool:
        header = _header(scope, b"authorization")
        scheme, _, given = header.partition(b" ")
        # Always run the comparison, so a wrong scheme costs the same time as a wrong token.
        same = hmac.compare_digest(given.strip(), self.expected)
        return same and scheme.lower() == b"bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or path in self.open_paths or self._page(scope, path):
            await self.app(scope, receive, send)
            return
        # The peer is the socket's address; uvicorn replaces it from X-Forwarded-For only for a proxy named in
        # SHEEPCRM_FORWARDED_ALLOW_IPS (none by default), so a client cannot choose the address it is counted under.
        peer = (scope.get("client") or ("?", 0))[0]
        now = time.monotonic()
        if not self.allowed(scope):
            # Only wrong tokens are throttled: one client's failures (or a balancer's shared address) never
            # lock out a client holding the right token; guessing a 32+ character token stays hopeless.
            recent = [t for t in self.failures.get(peer, []) if now - t < FAILURE_WINDOW]
            if len(recent) >= MAX_FAILURES:
                await _refuse(scope, send, 429, "too many failed attempts; wait a minute", FAILURE_WINDOW)
                return
            self._forget_old(now)
            self.failures[peer] = [*recent, now]
            await _refuse(scope, send, 401, "missing or wrong bearer token (SHEEPCRM_MCP_TOKEN)")
            return
        live = self.sessions.setdefault(peer, {})
        session = _header(scope, b"mcp-session-id")
        if session:
            if session in live:
                live[session] = now
            if scope.get("method") == "DELETE":
                live.pop(session, None)
            await self.app(scope, receive, send)  # a session's own request: its answer names no new session
            return
        if scope.get("method") == "POST" and len(live) >= MAX_SESSIONS_PER_CLIENT:
            # Sessions idle for SESSION_IDLE no longer count: forgotten when the count decides, not on every request.
            for sid in [k for k, seen in live.items() if now - seen > SESSION_IDLE]:
                del live[sid]
            if len(live) >= MAX_SESSIONS_PER_CLIENT:
                await _refuse(scope, send, 429, "too many open sessions from this address; close some first")
                return

        async def send_noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == b"mcp-session-id":
                        live[bytes(value)] = time.monotonic()
            await send(message)

        await self.app(scope, receive, send_noting)


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


async def _refuse(scope: Scope, send: Send, status: int, error: str, retry_after: float | None = None) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="sheepcrm-mcp"'))
    if retry_after is not None:
        headers.append((b"retry-after", str(int(retry_after)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_HELD: list[int] = []  # the token file this process serves with: open, its shared lock held until the process ends


def generated_token(path: Path) -> str:
    """The bearer token when none is configured, kept in a file only this user can read (0600 in a folder no one
    else can write, never through a link). Every server of this user started on the same file uses one token while
    any of them runs: each holds a shared lock on the file, and the first to start when none runs writes a new
    one. So several servers or replicas on one machine never overwrite the token a running one checks."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | nofollow, 0o600)
    try:
        check_private(fd, path, "token file", "SHEEPCRM_MCP_TOKEN_FILE")
        check_token_only(fd, path)
        token, made = _token_in(fd, path, nofollow)
    except BaseException:
        os.close(fd)
        raise
    _HELD.append(fd)
    print(
        f"sheepcrm-mcp: no SHEEPCRM_MCP_TOKEN set; {'generated' if made else 'using'} the bearer token for HTTP "
        f"clients in {path} (readable only by you; shared by every server started with it while one runs). Send "
        "it as 'Authorization: Bearer <token>'.",
        file=sys.stderr,
    )
    return token


TOKEN_LINE = re.compile(rb"[A-Za-z0-9_-]{43}\n?")  # what generated_token writes: secrets.token_urlsafe(32)


def check_token_only(fd: int, path: Path) -> None:
    """Refuse a token file that holds anything but a token this server wrote (one line of TOKEN_LINE), before it is
    changed or anything is created beside it: the file is rewritten with a new token, and a name given by mistake
    (or by a client's config) must not destroy what is there (a key, a document)."""
    held = os.pread(fd, 4097, 0)
    if held and not TOKEN_LINE.fullmatch(held):
        raise ConfigError(
            f"the token file {path} already holds something other than a bearer token this server wrote, so it is "
            "left as it is: set SHEEPCRM_MCP_TOKEN_FILE (in your own settings file) to a new file, or remove that one "
            "if it is an old token file"
        )


def _token_in(fd: int, path: Path, nofollow: int) -> tuple[str, bool]:
    """The token in the open file `fd`: a running server's (it holds a shared lock), else a new one written there.
    Returns it and whether it is new; this process then holds a shared lock too."""
    def new() -> str:
        token = secrets.token_urlsafe(32)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (token + "\n").encode(), 0)
        os.fsync(fd)
        return token

    if sys.platform == "win32":  # pragma: no cover - no flock: each server writes its own token
        return new(), True
    import fcntl

    starting = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | nofollow, 0o600)
    try:
        fcntl.flock(starting, fcntl.LOCK_EX)  # one server starting at a time (released when closed, below)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a running server holds the file: its token is the one clients have
            fcntl.flock(fd, fcntl.LOCK_SH)
            token = os.pread(fd, 4096, 0).decode("ascii", "replace").strip()
            if len(token) < 32:
                raise ConfigError(f"the token file {path} is in use but holds no token: stop the servers using it, "
                                  "or set SHEEPCRM_MCP_TOKEN_FILE to another file") from None
            return token, False
        token = new()
        fcntl.flock(fd, fcntl.LOCK_SH)  # no other server is starting, so nothing takes the file in between
        return token, True
    finally:
        os.close(starting)


def transport_security(settings: Settings, host: str) -> TransportSecuritySettings:
    """Host and Origin checks against DNS rebinding: loopback names, the bind address, the configured ones."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.http_allowed_hosts]
    if host not in LOOPBACK and host not in ("0.0.0.0", "::"):  # noqa: S104 - a named interface
        hosts.append(f"{host}:*")
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *settings.http_allowed_origins]
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


def healthz_route(server: MCPServer, settings: Settings) -> tuple[str, ...]:
    """/healthz, and /metrics with SHEEPCRM_METRICS=1: served without the bearer token, like /healthz. Returns
    those paths. The metrics name tools, profiles and counts, never a person; keep them off the public internet
    (docs/DEPLOY.md)."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    server.custom_route("/healthz", methods=["GET"])(healthz)
    if not settings.metrics:
        return ("/healthz",)
    from sheepcrm_mcp.server.telemetry import METRICS

    METRICS.enable()

    async def metrics(_: Request) -> Response:
        body, content_type = METRICS.render()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    server.custom_route("/metrics", methods=["GET"])(metrics)
    return ("/healthz", "/metrics")


def http_app(built: App, host: str, stateless: bool) -> ASGIApp:
    server, settings = built.server, built.settings
    token = settings.mcp_token.get_secret_value() if settings.mcp_token else ""
    if host not in LOOPBACK and not token:
        raise ConfigError(
            f"refusing to listen on {host} without SHEEPCRM_MCP_TOKEN: set a long random token "
            "(clients then send it as a bearer token) or bind 127.0.0.1"
        )
    if host not in LOOPBACK:
        built.page.opener = None  # a hosted server cannot open a person's browser
    if not token:
        try:
            token = generated_token(settings.mcp_token_file or default_token_file())
        except PermissionError as exc:
            raise ConfigError(str(exc)) from None
    logs.add_secret(token)
    open_paths = healthz_route(server, settings)
    page_prefix = None
    if isinstance(built.page, ServedPage):  # replicas: the approval page is a route of every replica
        for route in built.page.routes():
            server.custom_route(route.path, methods=sorted(route.methods or ()))(route.endpoint)
        page_prefix = ServedPage.PREFIX + "/"
    app: ASGIApp = server.streamable_http_app(
        stateless_http=stateless, host=host, transport_security=transport_security(settings, host),
        json_response=answers_as_json(settings),
    )
    app = CloseOnShutdown(app, built.aclose)
    return BearerAuth(app, token, page_prefix, open_paths)


def answers_as_json(settings: Settings) -> bool:
    """Whether each request is answered with one JSON body rather than an SSE stream (both are MCP's streamable HTTP:
    a client must accept either). A stream is needed only for what the server sends a client during a call: here,
    only the confirmation gate's form or link, which over HTTP in token mode is offered to the client only when the
    person's own file says SHEEPCRM_HTTP_CLIENT_APPROVALS=true (otherwise the approval page in the person's browser
    decides). No tool sends progress or log messages. Without that setting the stream carries the answer alone, and
    costs about a fifth of the server's CPU per call (its task group, event framing and extra socket writes)."""
    return settings.auth == "token" and not settings.http_client_approvals


def private_socket(uds: Path) -> Path:
    """A Unix socket path for serving, in a folder of this user's that no one else can enter (so no other account can
    take the path while the server is down, nor reach the socket); a socket left there by an earlier run is
    replaced."""
    folder = uds.parent.resolve()
    info = folder.stat()
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o077):
        raise ConfigError(f"--uds {uds}: its folder {folder} must be yours and closed to others: chmod 700 {folder}")
    if uds.is_symlink() or (uds.exists() and not stat.S_ISSOCK(uds.lstat().st_mode)):
        raise ConfigError(f"--uds {uds}: something other than a socket is there; remove it or name another path")
    uds.unlink(missing_ok=True)
    return uds


def run_http(built: App, *, host: str, port: int, stateless: bool, uds: Path | None = None) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, let in-flight calls finish (up to 10 s), exit."""
    settings = built.settings
    if uds is not None:
        uds = private_socket(uds)
    app = http_app(built, host, stateless)
    mode = "stateless" if stateless else "stateful"
    shown = f"[{host}]" if ":" in host else host
    where = f"unix:{uds} " if uds is not None else f"http://{shown}:{port}"
    log.warning("serving MCP over streamable HTTP (%s) at %s/mcp", mode, where)
    if host not in LOOPBACK and not settings.http_allowed_hosts:
        log.warning(
            "only Host headers naming a loopback address are accepted; set SHEEPCRM_HTTP_ALLOWED_HOSTS "
            "(e.g. mcp.example.org,mcp.example.org:*) to the names clients or your proxy use"
        )
    serve_asgi(app, host=host, port=port, forwarded=settings.forwarded_allow_ips, uds=uds)


def serve_asgi(app: ASGIApp, *, host: str, port: int, forwarded: tuple[str, ...] = (), uds: Path | None = None) -> None:
    """Serve `app` on host:port, or on the Unix socket `uds`; X-Forwarded-For/-Proto are honoured only from the
    proxies in `forwarded` (none by default; a socket's peer has no address, so none there)."""
    inflight = InFlight(app)
    # log_config=None: uvicorn's records go through our stderr handler and its secret filter.
    config = uvicorn.Config(
        inflight,
        host=host,
        port=port,
        uds=str(uds) if uds is not None else None,
        proxy_headers=bool(forwarded),
        forwarded_allow_ips=list(forwarded) or None,
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(GRACE_SECONDS),
    )
    # uvicorn re-raises the signal once drained, so SIGTERM still ends the process as SIGTERM does.
    DrainingServer(config, inflight).run()
