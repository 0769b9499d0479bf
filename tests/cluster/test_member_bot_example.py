"""The member bot's first minute, from examples/member-bot alone: three replicas with replica.env (only the site's
values replaced: the provider, the addresses, the member key), and HAProxy started with the example's haproxy.cfg,
ending TLS with a certificate made here. A member signs in at the project's provider and uses the bot over https;
the bot offers members' tools only, and /metrics is not reachable through the balancer."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.cluster.helpers import cluster
from tests.helpers import CANARY_KEY, MEMBER_TOOLS, REPO, free_port, running_idp, sign_in

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]
EXAMPLE = REPO / "examples" / "member-bot"


def certificate(tmp: Path) -> Path:
    """A self-signed certificate for 127.0.0.1, key and certificate in one PEM (what `crt` takes)."""
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    both = tmp / "lb.pem"
    both.write_text(cert.read_text() + key.read_text())
    return both


async def test_the_member_bot_comes_up_from_the_example(tmp_path: Path) -> None:
    pem = certificate(tmp_path)
    tls = free_port()
    public = f"https://127.0.0.1:{tls}"
    with SandboxServer(key=CANARY_KEY) as sb, running_idp(IDP_RESOURCES="https://127.0.0.1:*") as idp, cluster(
        sb, tmp_path, REPLICA_ENV_FILE=str(EXAMPLE / "replica.env"),
        # the site's values: its provider, its public address, its member key; nothing else is set here
        SHEEPCRM_OAUTH_ISSUER=idp, SHEEPCRM_OAUTH_RESOURCE=f"{public}/mcp", SHEEPCRM_PUBLIC_URL=public,
        SHEEPCRM_HTTP_ALLOWED_HOSTS=f"127.0.0.1:{tls}", SHEEPCRM_API_KEY_MEMBER=sb.key, SHEEPCRM_API_KEY="",
        SHEEPCRM_MCP_TOKEN="",
    ) as c:
        env = {**os.environ, "LB_BIND": f"127.0.0.1:{tls}", "LB_CERT": str(pem),
               **{f"REPLICA_{i}": c.replica(i).removeprefix("http://") for i in range(1, 4)}}
        check = subprocess.run(["haproxy", "-c", "-f", str(EXAMPLE / "haproxy.cfg")], env=env, capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        lb = subprocess.Popen(["haproxy", "-db", "-f", str(EXAMPLE / "haproxy.cfg")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    meta = httpx.get(f"{public}/.well-known/oauth-protected-resource/mcp", verify=str(pem), timeout=5)
                    if meta.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the balancer never answered over TLS"
                time.sleep(0.3)
            assert meta.json()["resource"] == f"{public}/mcp" and meta.json()["authorization_servers"] == [idp]
            assert httpx.get(f"{public}/metrics", verify=str(pem)).status_code == 403  # not through the balancer
            assert httpx.get(c.replica(1) + "/metrics").status_code == 200  # scraped on the private network
            token = sign_in(idp, "member", f"{public}/mcp")
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, verify=str(pem),
                                          timeout=30) as http, Client(
                    streamable_http_client(f"{public}/mcp", http_client=http), mode="legacy") as client:  # type: ignore[arg-type]
                tools = {t.name for t in (await client.list_tools()).tools}
                mine = await client.call_tool("my_membership", {})
            assert tools == MEMBER_TOOLS
            assert not mine.is_error and "Austen" in mine.model_dump_json()
            staff = sign_in(idp, "staff", f"{public}/mcp")  # a staff role reaches nothing on the member bot
            refused = httpx.post(f"{public}/mcp", verify=str(pem), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                 headers={"Authorization": f"Bearer {staff}", "Accept": "application/json, "
                                          "text/event-stream"})
            assert refused.status_code == 403
        finally:
            lb.terminate()
            lb.wait(10)
