"""Run an ASGI app with uvicorn in a background thread on a loopback port (port 0 = a free one)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class ThreadServer:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            proxy_headers=False,  # a loopback page has no proxy in front: no client names its own address
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="sheepcrm-uvicorn", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"could not start a server on {self.config.host}:{self.config.port}")
            time.sleep(0.005)
        sockets = [s for server in self.server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
