"""Run the sandbox in a background thread: `with SandboxServer() as sb: httpx.get(sb.url + ...)`."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from sheepcrm_mcp.sandbox.app import LoggedRequest, create_app
from sheepcrm_mcp.sandbox.faults import FaultPlan
from sheepcrm_mcp.sandbox.store import Store
from sheepcrm_mcp.sandbox.variants import check


def client_settings(url: str, key: str, bucket: str, v1_url: str | None = None) -> dict[str, str]:
    """The settings (as field names) that point sheepcrm-mcp at a sandbox: the one place that knows how,
    for the CLI's --sandbox, doctor, the demo, tests and benchmarks. v1 has its own listener, as sheepCRM
    has its own host for it."""
    return {"api_key": key, "bucket": bucket, "base_url": url, "v1_base_url": v1_url or url}


def client_env(url: str, key: str, bucket: str, v1_url: str | None = None) -> dict[str, str]:
    """The same settings as SHEEPCRM_* environment variables, for a `sheepcrm-mcp` subprocess."""
    return {f"SHEEPCRM_{n.upper()}": value for n, value in client_settings(url, key, bucket, v1_url).items()}


class ByPort:
    """One ASGI app per listening port: the v2 app on one, the v1 app on the other."""

    def __init__(self, apps: dict[int, ASGIApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") or ("", 0)
        app = self.apps.get(int(server[1] or 0))
        if app is None:  # lifespan and anything without a known port: the first app
            app = next(iter(self.apps.values()))
        await app(scope, receive, send)


def random_key() -> str:
    """A sandbox API key nobody else can guess."""
    return f"sandbox-{secrets.token_urlsafe(24)}"


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class SandboxServer:
    """Builds a seeded store, serves it with uvicorn on a free loopback port, stops on exit."""

    def __init__(
        self,
        size: str = "demo",
        seed: int = 1,
        key: str | None = None,
        bucket: str = "demo",
        faults: FaultPlan | list[str] | None = None,
        db_path: str | None = None,
        *,
        fault_seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        v1_port: int = 0,
        log_level: str = "critical",
        restricted_key: str | None = None,
        drift: list[str] | None = None,
        variant: str | None = None,
    ) -> None:
        # Without a key, a random one for this sandbox: a fixed one would let any local user write to it.
        self.size, self.seed, self.key, self.bucket = size, seed, key or random_key(), bucket
        if isinstance(faults, list):
            faults = FaultPlan.parse(faults, seed if fault_seed is None else fault_seed)
        self.faults = faults
        self.db_path, self.host, self.port, self.v1_port, self.log_level = db_path, host, port, v1_port, log_level
        self.restricted_key, self.drift = restricted_key, frozenset(drift or ())
        self.variant = check(variant)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._app: Starlette | None = None
        self._v1_app: Starlette | None = None

    @property
    def store(self) -> Store:
        assert self._store is not None, "SandboxServer is not running"
        return self._store

    @property
    def app(self) -> Starlette:
        assert self._app is not None, "SandboxServer is not running"
        return self._app

    @property
    def url(self) -> str:
        """The v2 API (sheepCRM: https://sls-api.sheepcrm.com)."""
        return f"http://{self.host}:{self.port}"

    @property
    def v1_url(self) -> str:
        """The v1 API, on its own listener (sheepCRM: https://api.sheepcrm.com)."""
        return f"http://{self.host}:{self.v1_port}"

    def url_for(self, path: str) -> str:
        """The full URL of a path on the listener that serves it."""
        return (self.v1_url if path.startswith("/api/v1/") else self.url) + path

    def settings(self, key: str | None = None) -> dict[str, str]:
        return client_settings(self.url, key or self.key, self.bucket, self.v1_url)

    def env(self, key: str | None = None) -> dict[str, str]:
        return client_env(self.url, key or self.key, self.bucket, self.v1_url)

    @property
    def request_log(self) -> list[LoggedRequest]:
        log: list[LoggedRequest] = self.app.state.request_log
        return log

    def start(self) -> SandboxServer:
        self._store = Store.create(
            self.db_path, size=self.size, seed=self.seed, bucket=self.bucket, variant=self.variant,
            reuse=self.db_path is None,
        )
        log: list[LoggedRequest] = []
        options: dict[str, Any] = {
            "key": self.key, "bucket": self.bucket, "faults": self.faults, "log": log,
            "restricted_key": self.restricted_key, "drift": self.drift, "variant": self.variant,
        }
        self._app = create_app(self._store, api="v2", **options)
        self._v1_app = create_app(self._store, api="v1", **options)
        sock, v1_sock = listen(self.host, self.port), listen(self.host, self.v1_port)
        self.port, self.v1_port = sock.getsockname()[1], v1_sock.getsockname()[1]
        config = uvicorn.Config(
            ByPort({self.port: self._app, self.v1_port: self._v1_app}),
            lifespan="off", log_level=self.log_level, access_log=False, timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock, v1_sock]}, name=f"sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox server failed to start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._store is not None:
            self._store.close()
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
