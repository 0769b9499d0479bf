"""Run the sandbox in a background thread: `with SandboxServer() as sb: httpx.get(sb.url + ...)`."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from sheepcrm_mcp.sandbox.app import LoggedRequest, create_app
from sheepcrm_mcp.sandbox.faults import FaultPlan
from sheepcrm_mcp.sandbox.store import Store


def client_settings(url: str, key: str, bucket: str) -> dict[str, str]:
    """The settings (as field names) that point sheepcrm-mcp at a sandbox: the one place that knows how,
    for the CLI's --sandbox, doctor, the demo, tests and benchmarks."""
    return {"api_key": key, "bucket": bucket, "base_url": url, "v1_base_url": url}


def client_env(url: str, key: str, bucket: str) -> dict[str, str]:
    """The same settings as SHEEPCRM_* environment variables, for a `sheepcrm-mcp` subprocess."""
    return {f"SHEEPCRM_{name.upper()}": value for name, value in client_settings(url, key, bucket).items()}


class SandboxServer:
    """Builds a seeded store, serves it with uvicorn on a free loopback port, stops on exit."""

    def __init__(
        self,
        size: str = "demo",
        seed: int = 1,
        key: str = "sandbox-key",
        bucket: str = "demo",
        faults: FaultPlan | list[str] | None = None,
        db_path: str | None = None,
        *,
        fault_seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "critical",
    ) -> None:
        self.size, self.seed, self.key, self.bucket = size, seed, key, bucket
        if isinstance(faults, list):
            faults = FaultPlan.parse(faults, seed if fault_seed is None else fault_seed)
        self.faults = faults
        self.db_path, self.host, self.port, self.log_level = db_path, host, port, log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._app: Starlette | None = None

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
        return f"http://{self.host}:{self.port}"

    def settings(self) -> dict[str, str]:
        return client_settings(self.url, self.key, self.bucket)

    def env(self) -> dict[str, str]:
        return client_env(self.url, self.key, self.bucket)

    @property
    def request_log(self) -> list[LoggedRequest]:
        log: list[LoggedRequest] = self.app.state.request_log
        return log

    def start(self) -> SandboxServer:
        self._store = Store.create(self.db_path, size=self.size, seed=self.seed, bucket=self.bucket)
        self._app = create_app(self._store, key=self.key, bucket=self.bucket, faults=self.faults)
        sock = socket.socket(
            socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )  # TCP proto: asyncio then sets TCP_NODELAY
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, lifespan="off", log_level=self.log_level, access_log=False, timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{self.port}", daemon=True
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
