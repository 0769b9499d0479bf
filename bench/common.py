"""Shared pieces: timing statistics, result rows, machine facts, processes and their memory."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parents[1]
# The context baseline (a server generated from sheepCRM's OpenAPI document) needs a copy of sheepCRM's documents:
# the folder SHEEPCRM_API_DOCS names (nothing outside the repository is read otherwise).
DOCS = os.environ.get("SHEEPCRM_API_DOCS")
SPEC = Path(DOCS) / "openapi-with-tasks.yaml" if DOCS else None


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    return pct(values, 95)


@dataclass
class Row:
    """One line of the results table. `ours`/`baseline` are display strings; `ok` None = informational."""

    figure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    ok: bool | None

    @property
    def verdict(self) -> str:
        if self.baseline == "no baseline":
            return "FAIL (no baseline)"
        return "info" if self.ok is None else ("pass" if self.ok else "FAIL")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def table(rows: list[Row]) -> str:
    head = ("figure", "ours", "baseline", "ratio", "target", "result")
    cells = [head, *[(r.figure, r.ours, r.baseline, r.ratio, r.target, r.verdict) for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mcp": version("mcp"),
    }


def rss_mb(pid: int | None = None) -> float:
    """Resident set size (VmRSS) of a process in MB (MiB), from /proc."""
    path = Path(f"/proc/{pid or 'self'}/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command() -> list[str]:
    """How to start `sheepcrm-mcp`: the console script next to this Python, else `python -m sheepcrm_mcp`."""
    script = Path(sys.executable).with_name("sheepcrm-mcp")
    if script.exists():
        return [str(script)]
    found = shutil.which("sheepcrm-mcp")
    return [found] if found else [sys.executable, "-m", "sheepcrm_mcp"]


def echo_command() -> list[str]:
    return [sys.executable, "-m", "bench.echo_server"]


BENCH_TOKEN = "bench-bearer-" + "t" * 40  # HTTP servers started here expect it on every request


async def authorized(stack: AsyncExitStack, url: str) -> Any:
    """A streamable-HTTP transport to `url` sending the bench's bearer token; its HTTP client closes with `stack`."""
    http = await stack.enter_async_context(
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {BENCH_TOKEN}"}, timeout=30)
    )
    return streamable_http_client(url, http_client=http)


def server_env(sb: Any, **extra: str) -> dict[str, str]:
    """Environment for a `sheepcrm-mcp` subprocess pointed at the sandbox `sb`, reads never cached."""
    # No PYTHONPATH: the server refuses one (it could load code before the server starts); the editable install
    # finds this checkout, and the echo server is found from its working folder (REPO).
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEEPCRM_") and k != "PYTHONPATH"}
    env.update(
        {
            **sb.env(),
            "SHEEPCRM_CACHE_TTL": "0",
            "SHEEPCRM_MCP_TOKEN": BENCH_TOKEN,
            "SHEEPCRM_AUDIT_LOG": str(Path(os.environ.get("TMPDIR", "/tmp")) / "sheepcrm-bench-audit.jsonl"),
        }
    )
    env.update(extra)
    return env


@dataclass
class Proc:
    url: str
    pid: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def http_process(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 20.0) -> Iterator[Proc]:
    """Start an HTTP MCP server process on a free port; yield its /mcp URL and pid; stop it on exit."""
    if cmd == server_command():  # sheepcrm-mcp serves HTTP only when the person's own settings file says so
        cmd, env = as_person_http(dict(env or os.environ))
    with listening([*cmd, "--transport", "http"], env, timeout) as (port, pid):
        yield Proc(f"http://127.0.0.1:{port}/mcp", pid)


def as_person_http(env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """How to start sheepcrm-mcp over HTTP with "the person's own settings file" saying so (the real one, found from
    the account database, is never written by the bench): through tests/person_browser.py, which takes that file from
    PERSON_SETTINGS. The file says HTTP and the bench token; the rest is the default HTTP configuration (no client's
    form approves a write: the bench's HTTP servers are only read from; so each request is answered with one JSON
    body, see sheepcrm_mcp/http.py answers_as_json)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-person-"))
    own = folder / "settings.env"
    own.write_text("SHEEPCRM_TRANSPORT=http\n"
                   + (f"SHEEPCRM_MCP_TOKEN={env['SHEEPCRM_MCP_TOKEN']}\n" if env.get("SHEEPCRM_MCP_TOKEN") else ""))
    own.chmod(0o600)
    person = [sys.executable, "-I", str(REPO / "tests" / "person_browser.py"), str(folder / "launches.txt")]
    return person, {**env, "PERSON_SETTINGS": str(own)}


@dataclass
class Upstream:
    """Where a sandbox answers: what `server_env` needs."""

    url: str
    v1_url: str | None  # the v1 listener (sheepCRM serves v1 from its own host)
    key: str  # random per sandbox start
    bucket: str = "demo"

    def env(self) -> dict[str, str]:
        from sheepcrm_mcp.sandbox.runner import client_env

        return client_env(self.url, self.key, self.bucket, self.v1_url)


@contextmanager
def sandbox_process(size: str = "demo", seed: int = 1) -> Iterator[Upstream]:
    """`python -m sheepcrm_mcp.sandbox` in its own process (same seed: the same uris as an in-process sandbox)."""
    v1_port = free_port()
    command = [sys.executable, "-m", "sheepcrm_mcp.sandbox", "--size", size, "--seed", str(seed),
               "--v1-port", str(v1_port)]
    from sheepcrm_mcp.sandbox.runner import random_key

    key = random_key()  # in the environment, not on the command line
    with listening(command, {**os.environ, "PYTHONPATH": str(REPO), "SANDBOX_KEY": key}, 60.0) as (port, _):
        yield Upstream(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{v1_port}", key)


@contextmanager
def listening(cmd: list[str], env: dict[str, str] | None, timeout: float) -> Iterator[tuple[int, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        env=env or {**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd} did not start on port {port}") from None
                time.sleep(0.02)
        yield port, proc.pid
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a benchmark subprocess, killing it if it does not exit within 5 s."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
