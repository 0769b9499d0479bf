"""Drive scripts/cluster.sh from tests: a real Redis, real HAProxy and N real `sheepcrm-mcp --stateless`
replicas on free loopback ports, pointed at a sandbox the test owns (so it can count the PUTs)."""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import mcp.types as mt

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import HTTP_TOKEN, PERSON_SETTINGS, REPO, as_person, binary, clean_env, http_own, http_session

SCRIPT = REPO / "scripts" / "cluster.sh"


def free_block(n: int) -> int:
    """The first of n consecutive free loopback ports, below the kernel's ephemeral range: a port from that range
    may be taken by any outgoing connection (another test's client) between this check and the cluster's bind."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = random.randrange(10000, max(10001, low - n))
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
        """The URL replicas use, password included (cluster.sh keeps it in a 0600 file)."""
        password = (self.state / "redis.pass").read_text().strip()
        return f"redis://:{password}@127.0.0.1:{self.env['REDIS_PORT']}/0"

    def replica(self, i: int) -> str:
        return f"http://127.0.0.1:{self.base + i - 1}"

    def launches(self) -> list[str]:
        """The one-time launch links the replicas opened in "the person's browser" (tests/person_browser.py)."""
        path = self.state.parent / "launches.txt"
        return path.read_text().split() if path.exists() else []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True,
                              timeout=180)
        if check and done.returncode != 0:
            raise AssertionError(f"cluster.sh {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done

    def audit(self) -> list[dict[str, Any]]:
        """The shared audit as `sheepcrm-mcp audit tail` prints it (the one command that reads it), with the
        person's own settings file naming the shared store."""
        command = [sys.executable, "-I", str(REPO / "tests" / "person_browser.py"), str(self.state / "none.txt")]
        done = subprocess.run([*command, "audit", "tail", "-n", "100000"], capture_output=True, text=True,
                              env=clean_env(PERSON_SETTINGS=self.env[PERSON_SETTINGS]), timeout=60, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@contextmanager
def cluster(sb: SandboxServer, tmp: Path, replicas: int = 3, own_extra: str = "", **extra: str) -> Any:
    base = free_block(replicas + 4)
    # Each replica runs through tests/person_browser.py: "the person's browser" records the launch link in the
    # private launch file it is opened on (what the browser would post) to launches.txt.
    # The person's own settings file (PERSON_SETTINGS, read by that file) says they serve over HTTP with this token.
    own = tmp / "person"
    replica = f"{sys.executable} -I {REPO / 'tests' / 'person_browser.py'} {tmp / 'launches.txt'}"
    # (own_extra: more lines of that file, e.g. SHEEPCRM_HTTP_CLIENT_APPROVALS=true for clients that approve by form)
    _, person = as_person(http_own(["--transport", "http"], {"SHEEPCRM_MCP_TOKEN": HTTP_TOKEN}) + own_extra, own)
    env = clean_env(**{
        **sb.env(),
        **person,
        "CLUSTER_STATE_DIR": str(tmp / "cluster"),
        "REPLICAS": str(replicas),
        "REPLICA_BASE_PORT": str(base),
        "LB_PORT": str(base + replicas),
        "LB_STATS_PORT": str(base + replicas + 1),
        "REDIS_PORT": str(base + replicas + 2),
        "SANDBOX_PORT": str(base + replicas + 3),
        "SHEEPCRM_BIN": binary(),
        "SHEEPCRM_AUDIT_LOG": str(tmp / "audit.jsonl"),
        "SHEEPCRM_MCP_TOKEN": HTTP_TOKEN,
        "REPLICA_CMD": f"{replica} --transport http --stateless --port {{port}}",
        **{k: v.replace("{lb}", f"http://127.0.0.1:{base + replicas}") for k, v in extra.items()},
    })
    env = {k: v for k, v in env.items() if v != ""}  # an empty value removes a setting (e.g. the staff key)
    c = Cluster(tmp / "cluster", env, replicas, base)
    # Hosted mode, the shared store, the request-state key, the public address: the replicas take them only from
    # that file, so the person adds what `cluster.sh own-settings` prints (the generated Redis password included).
    path = Path(person[PERSON_SETTINGS])
    path.write_text(path.read_text() + c.run("own-settings").stdout)
    try:
        c.run("start")
        yield c
    finally:
        c.run("stop", check=False)


def open_page(launch_url: str, via: str, public: str) -> tuple[httpx.Client, str]:
    """The person's browser following the launch link, reaching the replica `via` as the balancer would (Host
    names the public address). Returns the browser (holding its cookie) and the page's address at `via`."""
    host = urlsplit(public).netloc
    launch = re.sub(r"^https?://[^/]+", via, launch_url)
    browser = httpx.Client(timeout=10, headers={"Host": host})
    opened = browser.get(launch)
    assert opened.status_code == 303, opened.text
    return browser, via + opened.headers["location"]


def approve_on_page(launch_url: str, via: str, public: str) -> str:
    """A person approving on the page: follow the launch link at `via` (any replica or the balancer), POST the form."""
    browser, page_url = open_page(launch_url, via, public)
    try:
        page = browser.get(page_url)
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        done = browser.post(page_url, data={"action": "approve", "csrf": csrf.group(1)}, headers={"Origin": public})
        assert done.status_code == 200 and 'id="status">approved<' in done.text, done.text
    finally:
        browser.close()
    return page_url


@contextmanager
def prometheus(targets: list[str], tmp: Path) -> Any:
    """Debian's real `prometheus` scraping `targets` (host:port) every second; yields a query function."""
    from tests.helpers import free_port

    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: sheepcrm-mcp\n"
        f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n"
    )
    log = (tmp / "prometheus.log").open("w")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def query(expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(base + "/api/v1/query", params={"query": expr}, timeout=10).raise_for_status().json()
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    try:
        yield query
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ---- calls through a replica or the balancer ----------------------------------------------------


def text_of(result: mt.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, mt.TextContent))


def puts_for(sb: SandboxServer, uid: str) -> int:
    return sum(1 for e in sb.request_log if e.method == "PUT" and uid in e.path + e.query)


def uid_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[1]


async def call(base: str, tool: str, args: dict[str, Any]) -> mt.CallToolResult:
    async with http_session(base, mode="legacy") as client:
        return await client.call_tool(tool, args)


async def preview(c: Cluster, args: dict[str, Any], via: str) -> str:
    """Ask for the write; returns the launch link the replica opened for the person (never in the result)."""
    seen = len(c.launches())
    first = await call(via, "update_contact", args)
    assert first.structured_content and first.structured_content["status"] == "approval_required", text_of(first)
    [launch] = c.launches()[seen:]
    assert launch.startswith(f"{c.lb}/approve/")  # the address people reach the replicas at
    assert launch not in str(first.model_dump()) and "/approve/" not in str(first.model_dump())
    return launch
