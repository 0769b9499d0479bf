"""The one HTTP client trusts nothing from the environment: a client's config (a cloned repository's .mcp.json)
can set HTTPS_PROXY and SSL_CERT_FILE, and must not thereby route the key through a listener of its own."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from sheepcrm_mcp.sheepcrm import ClientConfig, SheepError
from sheepcrm_mcp.sheepcrm.transport import Http

KEY = "canary-key-proxy-5d1e"


class Listener:
    """A loopback TCP listener that records the first bytes of every connection and then hangs up."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    self.received.append(conn.recv(65536))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


async def test_https_proxy_and_ssl_cert_file_from_the_environment_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, upstream = Listener(), Listener()
    attacker_ca = tmp_path / "ca.pem"
    attacker_ca.write_text("not a certificate\n")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(attacker_ca))
    base = f"https://localhost:{upstream.port}"
    http = Http(ClientConfig(api_key=KEY, bucket="demo", base_url=base, v1_base_url=base, retry_attempts=1,
                             timeout=2, connect_timeout=2))
    try:
        with pytest.raises(SheepError):
            await http.get("/api/v2/demo/person/", "people")
    finally:
        await http.aclose()
        proxy.close()
        upstream.close()
    assert proxy.received == []  # no CONNECT, no request, no key
    assert upstream.received, "the request went straight to the upstream"
    assert all(KEY.encode() not in seen for seen in upstream.received)  # TLS from the first byte
    assert upstream.received[0][:1] == b"\x16"  # a TLS handshake record


async def test_a_proxy_from_the_persons_own_file_is_used() -> None:
    proxy = Listener()
    base = "https://sls-api.sheepcrm.com"
    http = Http(ClientConfig(api_key=KEY, bucket="demo", base_url=base, v1_base_url=base, retry_attempts=1,
                             timeout=2, connect_timeout=2, proxy=f"http://127.0.0.1:{proxy.port}"))
    try:
        with pytest.raises(SheepError):
            await http.get("/api/v2/demo/person/", "people")
    finally:
        await http.aclose()
        proxy.close()
    assert proxy.received and proxy.received[0].startswith(b"CONNECT sls-api.sheepcrm.com:443")
    assert KEY.encode() not in proxy.received[0]


async def test_reads_of_both_api_hosts_keep_their_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool reading v2 and v1 in turn keeps its connections to both: each host has a pool of its own, of
    max_concurrency connections, so none is closed to make room for the other (each would be a new TLS handshake)."""
    import anyio

    from sheepcrm_mcp.sheepcrm import loopback
    from tests.helpers import free_port
    from tests.sheepcrm.test_loopback import serving

    opened = 0
    check = loopback._check

    async def counted(stream: object) -> None:
        nonlocal opened
        opened += 1
        await check(stream)

    monkeypatch.setattr(loopback, "_check", counted)  # called once for each new connection
    v2, v1 = free_port(), free_port()
    with serving(v2), serving(v1):
        http = Http(ClientConfig(api_key=KEY, bucket="demo", base_url=f"http://127.0.0.1:{v2}",
                                 v1_base_url=f"http://127.0.0.1:{v1}", cache_ttl=0, max_concurrency=4))

        async def reader() -> None:
            for n in range(10):
                assert await http.get("/api/v1/demo/x/" if n % 2 else "/api/v2/demo/x/", "x",
                                      api="v1" if n % 2 else "v2") == {"ok": True}

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(reader)
        finally:
            await http.aclose()
    assert 2 <= opened <= 8, opened  # at most max_concurrency to each host, for 80 reads
