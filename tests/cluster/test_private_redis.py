"""The Redis scripts/cluster.sh starts is private (F3): a password generated into a 0600 file and never on a
command line, every file in a 0700 state folder, so another local user can neither read an approval or the
audit from disk nor set an approval to approved over the socket. What DEPLOY.md says about ACL users works
against that real Redis."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sheepcrm_mcp.server.redis_store import connect
from tests.cluster.helpers import Cluster
from tests.helpers import REPO, as_stranger

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def raw(port: int, command: bytes) -> bytes:
    """One inline command on a fresh connection, as any local process could send it (no client library)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(command + b"\r\n")
        return s.recv(4096)


def test_another_local_user_gets_nothing_from_the_clusters_redis(running: Cluster) -> None:
    port = int(running.env["REDIS_PORT"])
    password = (running.state / "redis.pass").read_text().strip()
    assert len(password) >= 32
    # Without the password Redis answers nothing, whoever asks: no reading, no approving.
    assert raw(port, b"KEYS sheepcrm:*").startswith(b"-NOAUTH")
    assert raw(port, b"HSET sheepcrm:approval:x status approved").startswith(b"-NOAUTH")
    forged = as_stranger("redis-cli", "-p", str(port), "HSET", "sheepcrm:approval:x", "status", "approved")
    assert "NOAUTH" in forged.stdout + forged.stderr, forged
    # Everything on disk (AOF with approvals and the audit, the password, logs, configs) is the owner's only.
    for path in [running.state, *running.state.rglob("*")]:
        if path.is_symlink() or path.is_socket():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    aof = [p for p in (running.state / "redis").rglob("*") if p.is_file()]
    assert aof, "Redis wrote no append-only file"
    for path in [running.state / "redis.pass", *aof]:
        peek = as_stranger("cat", str(path))
        assert peek.returncode != 0 and password not in peek.stdout, path
    # The password is on no process's command line (which every local user can read).
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert password.encode() not in cmdline.read_bytes(), cmdline
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue


def test_the_acl_user_deploy_md_describes_runs_the_approval_store(running: Cluster) -> None:
    """DEPLOY.md's ACL user (keys sheepcrm:*, no dangerous commands) is enough for the replicas' stores, and
    SHEEPCRM_REDIS_URL takes it as user:password@."""
    import anyio

    from sheepcrm_mcp.server.approvals.pending import ApprovalRequest
    from sheepcrm_mcp.server.redis_store import RedisApprovals

    deploy = (REPO / "docs" / "DEPLOY.md").read_text()
    [rule] = re.findall(r"^\s*ACL SETUSER sheepcrm (.+)$", deploy, re.M)
    secret = os.urandom(24).hex()
    admin = connect(running.redis_url)
    port = running.env["REDIS_PORT"]

    async def main() -> None:
        try:
            await admin.execute_command("ACL", "SETUSER", "sheepcrm",
                                        *rule.replace("LONG-RANDOM-PASSWORD", secret).split())
            url = f"redis://sheepcrm:{secret}@127.0.0.1:{port}/0"
            client = connect(url)
            try:
                store = RedisApprovals(client, url)
                item = await store.create(ApprovalRequest("update_task", "acl-test", "state", "summary", ["line"]))
                cookie = await store.launch(item.id, await store.new_launch(item.id))
                seen = await store.get(item.id)
                assert cookie and seen is not None
                assert await store.decide(item.id, cookie, approve=True) == "approved"
                used = await store.consume("update_task", "acl-test", "state")
                assert used is not None and not isinstance(used, str)
                with pytest.raises(Exception, match="no permissions"):
                    await client.execute_command("CONFIG", "GET", "requirepass")
                with pytest.raises(Exception, match="no permissions"):
                    await client.set("other-app:key", "x")
            finally:
                await client.aclose()
        finally:
            await admin.execute_command("ACL", "DELUSER", "sheepcrm")
            await admin.aclose()

    anyio.run(main)


async def test_read_access_to_redis_approves_nothing(running: Cluster, cluster_sandbox: Any) -> None:
    """F2: the CSRF token and the browser cookie were stored in clear, so whoever could read Redis could take the
    page and approve. Now Redis holds digests only (the form token is derived from the cookie): an attacker who
    reads every key of a pending approval, and tries each value as launch token, cookie and form token, gets
    nothing, and no PUT happens; the person's own launch link still works."""
    from tests.cluster.helpers import approve_on_page, call, preview, puts_for, uid_of

    person = cluster_sandbox.store.by_type("person")[7].uri
    args = {"uri": person, "phone": "+44 20 7946 0777"}
    launch = await preview(running, args, running.lb)
    approval_id = launch.split("/approve/", 1)[1].split("/", 1)[0]
    admin = connect(running.redis_url)
    try:
        keys = await admin.keys(f"sheepcrm:approval:{approval_id}*")
        values = [v for v in await admin.mget(keys) if v]
    finally:
        await admin.aclose()
    assert len(keys) >= 4 and values
    token = launch.rsplit("/", 1)[1]
    assert all(token not in v for v in values)  # the launch token is not there in clear
    public, host = running.lb, running.lb.split("://", 1)[1]
    page = f"{public}/approve/{approval_id}"
    guesses = {w for v in values for w in re.findall(r"[A-Za-z0-9_\-]{20,}", v)}
    with httpx.Client(timeout=10, headers={"Host": host}) as attacker:
        for guess in guesses:
            assert attacker.get(f"{page}/open/{guess}").status_code == 404
            assert attacker.post(f"{page}/open", data={"launch": guess}, headers={"Origin": "null"}).status_code == 404
            attacker.cookies.set(f"a_{approval_id}", guess)
            assert attacker.get(page).status_code == 404
            refused = attacker.post(page, data={"action": "approve", "csrf": guess}, headers={"Origin": public})
            assert refused.status_code == 404
            attacker.cookies.clear()
    again = await call(running.lb, "update_contact", args)
    assert again.structured_content and again.structured_content["status"] == "approval_required"
    assert puts_for(cluster_sandbox, uid_of(person)) == 0
    # The person (whose browser had not used its link yet, so the repeat sent a fresh one), on another replica.
    approve_on_page(running.launches()[-1], running.replica(2), public=public)
    done = await call(running.lb, "update_contact", args)
    assert done.structured_content and done.structured_content["status"] == "applied"
    assert puts_for(cluster_sandbox, uid_of(person)) == 1


def _tls_files(folder: Path) -> None:
    """A private CA and a server certificate for 127.0.0.1 signed by it (openssl, as a deployment would make)."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test CA", "-keyout", "ca.key",
        "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "redis.key", "-out", "redis.csr")
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "redis.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "ext", "-out", "redis.pem")


def test_rediss_with_a_password_runs_the_approval_store_and_verifies_the_server(tmp_path: Path) -> None:
    """DEPLOY.md's TLS setup: SHEEPCRM_REDIS_URL=rediss://...?ssl_ca_certs=<private CA> reaches a Redis that serves TLS
    only, with a password, and runs the approval store; a server whose certificate the CA did not sign is refused
    before the password is sent, and plain redis:// to the TLS port gets nothing."""
    import anyio

    from sheepcrm_mcp.server.approvals.pending import ApprovalRequest
    from sheepcrm_mcp.server.redis_store import RedisApprovals

    folder = tmp_path / "tls"
    folder.mkdir(mode=0o700)
    _tls_files(folder)
    password = os.urandom(24).hex()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "redis.conf"
    conf.write_text(
        f"port 0\ntls-port {port}\nbind 127.0.0.1\ntls-cert-file {folder}/redis.pem\ntls-key-file {folder}/redis.key\n"
        f"tls-ca-cert-file {folder}/ca.pem\ntls-auth-clients no\nrequirepass {password}\nsave \"\"\nappendonly no\n"
        f"dir {folder}\n"
    )
    conf.chmod(0o600)
    server = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            pytest.fail(f"redis-server did not serve TLS: {server.stdout.read1() if server.stdout else b''!r}")
        url = f"rediss://:{password}@127.0.0.1:{port}/0?ssl_ca_certs={folder}/ca.pem"

        async def main() -> None:
            client = connect(url)
            try:
                store = RedisApprovals(client, url)
                item = await store.create(ApprovalRequest("update_task", "tls-test", "state", "summary", ["line"]))
                cookie = await store.launch(item.id, await store.new_launch(item.id))
                assert isinstance(cookie, str)
                assert await store.decide(item.id, cookie, approve=True) == "approved"
                used = await store.consume("update_task", "tls-test", "state")
                assert used is not None and not isinstance(used, str)
            finally:
                await client.aclose()
            # Another CA (the system's trust store): the certificate is not trusted, nothing is sent.
            untrusted = connect(f"rediss://:{password}@127.0.0.1:{port}/0")
            try:
                with pytest.raises(Exception, match=r"(?i)certificate|ssl"):
                    await untrusted.ping()
            finally:
                await untrusted.aclose()
            plain = connect(f"redis://:{password}@127.0.0.1:{port}/0")
            try:
                with pytest.raises(Exception):  # noqa: B017 - a TLS port answers no plain command
                    await plain.ping()
            finally:
                await plain.aclose()

        anyio.run(main)
    finally:
        server.terminate()
        server.wait(timeout=10)
