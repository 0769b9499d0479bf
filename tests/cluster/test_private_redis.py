"""The Redis scripts/cluster.sh starts is private (F3): a password generated into a 0600 file and never on a
command line, every file in a 0700 state folder, so another local user can neither read an approval or the
audit from disk nor set an approval to approved over the socket. What DEPLOY.md says about ACL users works
against that real Redis."""

from __future__ import annotations

import os
import re
import socket
import stat
from pathlib import Path

import pytest

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
    from sheepcrm_mcp.server.redis_store import RedisApprovals, connect

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
                assert await store.decide(item.id, seen.csrf, approve=True) == "approved"
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
