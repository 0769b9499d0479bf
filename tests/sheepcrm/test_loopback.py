"""A loopback upstream gets the API key only while this user's own process serves it: checked on every new
connection, not once at start-up, so another local account that binds the port after the person's sandbox stopped
gets no request and no key."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sheepcrm_mcp.server.settings import load_settings
from sheepcrm_mcp.sheepcrm.errors import UntrustedUpstream
from sheepcrm_mcp.sheepcrm.transport import Http
from tests.helpers import free_port, stranger

KEY = "canary-key-loopback-7c2f41"

# A tiny keep-alive HTTP server: prints every request it receives (so a test sees whether the key reached it) and
# answers each with a small JSON object.
SERVE = """
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
        c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 11\\r\\n\\r\\n{"ok":true}')
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@contextmanager
def serving(port: int, *, as_other: bool = False) -> Iterator[list[str]]:
    """The server above on `port`, run by this user or by the second local account; yields what it printed
    (filled in when it stops)."""
    command = ["/usr/bin/python3", "-c", SERVE, str(port)]
    if as_other:
        command = ["runuser", "-u", stranger(), "--", *command]
    printed: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, cwd="/", text=True, start_new_session=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
            yield printed
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # runuser and the server it started: the whole group
            out, _ = proc.communicate(timeout=10)
            printed.extend(out.splitlines())


def _point_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """What a cloned repository's client config sets: the upstream and the key, in the environment."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)
    for name, value in {"BASE_URL": url, "V1_BASE_URL": url, "API_KEY": KEY, "BUCKET": "demo",
                        "RETRY_ATTEMPTS": "1", "TIMEOUT": "3", "CONNECT_TIMEOUT": "3"}.items():
        monkeypatch.setenv(f"SHEEPCRM_{name}", value)


async def test_another_local_user_binding_the_port_after_the_sandbox_stopped_gets_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person's sandbox listens on a loopback port and a client's config points the server there: accepted at
    start, since the listener is theirs. The sandbox stops and another local account binds the same port: the next
    request is refused on connecting, with a clear error, and that account receives nothing."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    _point_at(monkeypatch, url)
    with serving(port) as mine:
        settings = load_settings(user_file=tmp_path / "none" / "settings.env")
        http = Http(settings.client_config())
        try:
            assert await http.get("/api/v2/demo/person/", "people") == {"ok": True}
        except BaseException:
            await http.aclose()
            raise
    assert any(KEY in line for line in mine)  # the person's own sandbox got the key, as it should
    try:
        with serving(port, as_other=True) as theirs:
            with pytest.raises(UntrustedUpstream, match=r"people: .*another local account.*nothing was sent"):
                await http.get("/api/v2/demo/person/", "people", fresh=True)
            with pytest.raises(UntrustedUpstream):  # a write is refused the same way, and never sent
                await http.write("PUT", "/api/v2/demo/person/x/", "updating a contact", body={"a": 1})
    finally:
        await http.aclose()
    assert theirs == [], theirs  # no request, no key: the connection was closed before a byte was written


async def test_a_loopback_upstream_the_persons_file_names_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person's own file may name a loopback upstream (it then counts at start whoever listens), but the key
    still goes only to a listener of theirs: a port another account serves gets no request."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    _point_at(monkeypatch, url)
    own = tmp_path / "config"
    own.mkdir(mode=0o700)
    (own / "settings.env").write_text(f"SHEEPCRM_BASE_URL={url}\nSHEEPCRM_V1_BASE_URL={url}\n")
    (own / "settings.env").chmod(0o600)
    with serving(port, as_other=True) as theirs:
        http = Http(load_settings(user_file=own / "settings.env").client_config())
        try:
            with pytest.raises(UntrustedUpstream, match=f"127.0.0.1:{port}"):
                await http.get("/api/v2/demo/person/", "people")
        finally:
            await http.aclose()
    assert theirs == []


def test_the_listeners_owners_are_read_the_same_with_and_without_the_socket_diagnostics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Start-up asks the kernel's socket diagnostics for the listening sockets alone; where it cannot be asked,
    /proc/net/tcp* says the same: each port's listeners and their owners, this user's or another account's."""
    import pwd

    from sheepcrm_mcp.sheepcrm import loopback

    mine, theirs, unused = free_port(), free_port(), free_port()
    with serving(mine), serving(theirs, as_other=True):
        asked = loopback.listeners(mine, theirs, unused)

        def refused() -> list[tuple[int, int]]:
            raise OSError("no socket diagnostics here")

        monkeypatch.setattr(loopback, "_diagnosed", refused)
        read = loopback.listeners(mine, theirs, unused)
    assert asked == read == {mine: [os.getuid()], theirs: [pwd.getpwnam(stranger()).pw_uid], unused: []}


def test_a_connections_other_end_is_read_the_same_with_and_without_the_socket_diagnostics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each new connection asks the socket diagnostics for the one socket at its other end; where they cannot be
    asked, /proc/net/tcp* says the same owner: this user's for a server of theirs, the other account's for its."""
    import pwd
    import socket

    from sheepcrm_mcp.sheepcrm import loopback

    mine, theirs = free_port(), free_port()
    with serving(mine), serving(theirs, as_other=True):
        conns = [socket.create_connection(("127.0.0.1", port)) for port in (mine, theirs)]
        try:
            with monkeypatch.context() as m:
                m.setattr(loopback, "_rows", lambda: None)  # answered by the diagnostics alone
                asked = [loopback.peer_owner(c) for c in conns]

            def refused(*_: object) -> int:
                raise OSError("no socket diagnostics here")

            monkeypatch.setattr(loopback, "_diagnosed_owner", refused)
            read = [loopback.peer_owner(c) for c in conns]
        finally:
            for c in conns:
                c.close()
    assert asked == read == [os.getuid(), pwd.getpwnam(stranger()).pw_uid]
