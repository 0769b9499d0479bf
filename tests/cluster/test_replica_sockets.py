"""Replicas serve on Unix sockets in cluster.sh's 0700 state folder (the default REPLICA_CMD), so another local
account cannot take a killed replica's place: on a TCP port it could bind the free port, HAProxy's health check would
mark it UP and forward clients' bearer tokens to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.cluster.helpers import Cluster, cluster
from tests.helpers import ACCEPT, AUTH, HTTP_TOKEN, REPO, initialize, stranger

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

# What another local account runs where a replica was: an HTTP server that answers 200 to everything (the health
# check included) and prints every request it receives.
LISTEN = """
import socket, sys, threading
family = socket.AF_UNIX if sys.argv[1].startswith("/") else socket.AF_INET
s = socket.socket(family)
try:
    s.bind(sys.argv[1] if family == socket.AF_UNIX else ("127.0.0.1", int(sys.argv[1])))
except OSError as exc:
    print("refused", exc.errno, flush=True)
    sys.exit(0)
s.listen()
print("up", flush=True)
def serve(c):
    while data := c.recv(65536):
        print(repr(data), flush=True)
        c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nContent-Type: application/json\\r\\n\\r\\n{}")
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""


@contextmanager
def squatter(where: str) -> Iterator[tuple[str, list[str]]]:
    """LISTEN run by the second local account on `where` (a port, or a socket path); yields its first line ("up" or
    "refused <errno>") and what it received (filled in when it stops)."""
    command = ["runuser", "-u", stranger(), "--", "/usr/bin/python3", "-c", LISTEN, where]
    received: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, cwd="/", text=True, start_new_session=True) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        try:
            yield first, received
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate(timeout=10)
            received.extend(out.splitlines())


def backend(c: Cluster, name: str) -> str:
    """HAProxy's view of one server (the indented lines under "haproxy backend view:" in cluster.sh status)."""
    status = c.run("status", check=False).stdout.split("haproxy backend view:", 1)[-1]
    return next((line.split()[1] for line in status.splitlines() if line.strip().startswith(name + " ")), "?")


def test_another_local_user_cannot_take_a_killed_replicas_place(tmp_path: Path) -> None:
    replica = f"{sys.executable} -I {REPO / 'tests' / 'person_browser.py'} {tmp_path / 'launches.txt'}"
    # A short state folder: HAProxy binds a Unix socket through a temporary name (path + ".PID.tmp"), and a
    # pytest-xdist worker's tmp_path leaves too little of the 108 bytes a socket path may take.
    with tempfile.TemporaryDirectory(prefix="rs-") as short, SandboxServer() as sb, cluster(
        sb, Path(short), replicas=2, REPLICA_CMD=f"{replica} --transport http --stateless --uds {{socket}}"
    ) as c:
        config = (c.state / "haproxy.cfg").read_text()
        sockets = [c.state / "run" / f"replica-{i}.sock" for i in (1, 2)]
        assert all(f"unix@{path}" in config for path in sockets), config
        assert f"127.0.0.1:{c.base}" not in config and all(path.is_socket() for path in sockets)
        with httpx.Client(timeout=10, headers={**AUTH, "accept": ACCEPT}) as http:
            assert http.post(c.lb + "/mcp", json=initialize()).status_code == 200
        c.run("kill-replica", "1")
        port_taken = squatter(str(c.base))  # where a replica listened when replicas used ports
        path_taken = squatter(str(sockets[0]))  # the killed replica's socket
        with port_taken as (on_port, port_got), path_taken as (on_path, path_got):
            assert on_port == "up"
            assert on_path.startswith("refused"), on_path  # the 0700 state folder: it cannot bind there
            for _ in range(100):  # until the health check has found replica 1 gone (inter 1s, fall 2)
                if backend(c, "replica-1") == "DOWN":
                    break
                time.sleep(0.1)
            with httpx.Client(timeout=10, headers={**AUTH, "accept": ACCEPT}) as http:
                answers = [http.post(c.lb + "/mcp", json=initialize()) for _ in range(6)]
            assert all(a.status_code == 200 and a.headers.get("x-served-by") == "replica-2" for a in answers)
            assert backend(c, "replica-1") == "DOWN"
        assert port_got == [] and path_got == []  # no health check, no request, no bearer token
        assert not any(HTTP_TOKEN in line for line in port_got + path_got)
