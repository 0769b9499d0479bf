"""A Redis on this machine counts only while this user's own process serves it: another local account that binds the
cluster's Redis port while Redis is down gets no connection, no password, and no say over approvals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sheepcrm_mcp.server.redis_store import RedisApprovals, connect, this_machine
from sheepcrm_mcp.server.stores import StoreUnavailable
from tests.helpers import free_port, stranger

PASSWORD = "redis-password-canary-5d1e"

# A Redis impostor: prints every byte it receives (so a test sees whether the password reached it) and answers every
# command "+OK", or for a script call an approval that says "approved".
IMPOSTOR = """
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1", int(sys.argv[1])))
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
def impostor(port: int, *, as_other: bool, bind: str = "127.0.0.1") -> Iterator[list[str]]:
    """The impostor on `bind`:`port`, run by the second local account (or, as the control, by this user); yields
    what it received (filled in when it stops)."""
    command = ["/usr/bin/python3", "-c", IMPOSTOR, str(port), bind]
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


def own_address() -> str | None:
    """An address of one of this machine's interfaces other than loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the interface a route would use
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.mark.slow
@pytest.mark.parametrize(("bind", "host"), [("127.0.0.2", "127.0.0.2"), ("0.0.0.0", "0.0.0.0"),
                                            ("0.0.0.0", "own"), ("127.0.0.1", "0.0.0.0")],
                         ids=["another-loopback-address", "unspecified", "interface-address", "unspecified-to-lo"])
async def test_a_redis_another_local_user_runs_at_any_address_of_this_machine_decides_nothing(
    bind: str, host: str
) -> None:
    """Another local account runs the Redis at 127.0.0.2, 0.0.0.0 or the machine's own interface address (local
    too, though not the literal 127.0.0.1, localhost or ::1): it gets no password and decides no approval."""
    if host == "own":
        found = own_address()
        if found is None:
            pytest.skip("this machine has no interface address other than loopback")
        host = found
    port = free_port()
    url = f"redis://:{PASSWORD}@{host}:{port}/0"
    with impostor(port, as_other=True, bind=bind) as received:
        client = connect(url)
        try:
            with pytest.raises(StoreUnavailable):
                await RedisApprovals(client, url).consume("update_task", "a" * 64, "b" * 64)
        finally:
            await client.aclose()
    assert received == []


def test_only_addresses_of_this_machine_are_checked() -> None:
    assert all(this_machine(a) for a in ("127.0.0.2", "127.255.0.9", "0.0.0.0", "::", "::1", "::ffff:127.0.0.3"))
    assert not any(this_machine(a) for a in ("192.0.2.10", "198.51.100.7", "2001:db8::5"))
    found = own_address()
    assert found is None or this_machine(found)
