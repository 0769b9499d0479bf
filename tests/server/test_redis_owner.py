"""A Redis on this machine counts only while this user's own process serves it: another local account that binds the
cluster's Redis port while Redis is down gets no connection, no password, and no say over approvals."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sheepcrm_mcp.server.redis_store import RedisApprovals, connect
from sheepcrm_mcp.server.stores import StoreUnavailable
from tests.helpers import free_port, stranger

PASSWORD = "redis-password-canary-5d1e"

# A Redis impostor: prints every byte it receives (so a test sees whether the password reached it) and answers every
# command "+OK", or for a script call an approval that says "approved".
IMPOSTOR = """
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("up", flush=True)
def serve(c):
    while True:
        data = c.recv(65536)
        if not data:
            return
        print(repr(data), flush=True)
        c.sendall(b"+OK\\r\\n")
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@contextmanager
def impostor(port: int, *, as_other: bool) -> Iterator[list[str]]:
    """The impostor on `port`, run by the second local account (or, as the control, by this user); yields what it
    received (filled in when it stops)."""
    command = ["/usr/bin/python3", "-c", IMPOSTOR, str(port)]
    if as_other:
        command = ["runuser", "-u", stranger(), "--", *command]
    printed: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, cwd="/", text=True, start_new_session=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
            yield printed
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate(timeout=10)
            printed.extend(out.splitlines())


@pytest.mark.slow
async def test_another_local_user_on_the_redis_port_gets_no_password_and_decides_nothing() -> None:
    port = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    with impostor(port, as_other=True) as received:
        client = connect(url)
        try:
            with pytest.raises(StoreUnavailable):
                await RedisApprovals(client, url).consume("update_task", "a" * 64, "b" * 64)
            with pytest.raises(StoreUnavailable):
                await RedisApprovals(client, url).decision("some-approval")
        finally:
            await client.aclose()
    assert received == []  # refused before a byte was sent: no AUTH, no password, no question

    # The control: the same impostor run by this user is talked to (and gets the password), so the check is what
    # kept the other account out.
    with impostor(port, as_other=False) as received:
        client = connect(url)
        try:
            with pytest.raises(Exception):  # noqa: B017 - it answers nonsense; what matters is what it got
                await RedisApprovals(client, url).decision("some-approval")
        finally:
            await client.aclose()
    assert any(PASSWORD in line for line in received)
