"""Drive scripts/cluster.sh from tests: a real Redis, real HAProxy and N real `sheepcrm-mcp --stateless`
replicas on free loopback ports, pointed at a sandbox the test owns (so it can count the PUTs)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import REPO, binary, clean_env

SCRIPT = REPO / "scripts" / "cluster.sh"


def free_block(n: int) -> int:
    """The first of n consecutive free loopback ports."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + n > 65000:
            continue
        try:
            socks = []
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


@dataclass
class Cluster:
    state: Path
    env: dict[str, str]
    replicas: int
    base: int

    @property
    def lb(self) -> str:
        return f"http://127.0.0.1:{self.env['LB_PORT']}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.env['REDIS_PORT']}/0"

    def replica(self, i: int) -> str:
        return f"http://127.0.0.1:{self.base + i - 1}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True,
                              timeout=180)
        if check and done.returncode != 0:
            raise AssertionError(f"cluster.sh {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done

    def audit(self) -> list[dict[str, Any]]:
        """The shared audit as `sheepcrm-mcp audit tail` prints it (the one command that reads it)."""
        done = subprocess.run([binary(), "audit", "tail", "-n", "100000"], capture_output=True, text=True,
                              env=clean_env(SHEEPCRM_REDIS_URL=self.redis_url), timeout=60, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@contextmanager
def cluster(sb: SandboxServer, tmp: Path, replicas: int = 3, **extra: str) -> Any:
    base = free_block(replicas + 4)
    env = clean_env(
        **sb.env(),
        CLUSTER_STATE_DIR=str(tmp / "cluster"),
        REPLICAS=str(replicas),
        REPLICA_BASE_PORT=str(base),
        LB_PORT=str(base + replicas),
        LB_STATS_PORT=str(base + replicas + 1),
        REDIS_PORT=str(base + replicas + 2),
        SANDBOX_PORT=str(base + replicas + 3),
        SHEEPCRM_BIN=binary(),
        SHEEPCRM_AUDIT_LOG=str(tmp / "audit.jsonl"),
        **extra,
    )
    c = Cluster(tmp / "cluster", env, replicas, base)
    try:
        c.run("start")
        yield c
    finally:
        c.run("stop", check=False)


def approve(page_url: str, via: str, origin: str) -> str:
    """A person approving on the page: GET it from `via` (any replica or the balancer), POST the form back."""
    url = re.sub(r"^https?://[^/]+", via, page_url)
    page = httpx.get(url, timeout=10)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    done = httpx.post(url, data={"action": "approve", "csrf": csrf.group(1)}, headers={"Origin": origin},
                      timeout=10)
    assert done.status_code == 200 and 'id="status">approved<' in done.text, done.text
    return url
