"""Load: SESSIONS concurrent streamable-HTTP sessions of mixed calls (reads and approved writes) against
`sheepcrm-mcp --transport http` run as a subprocess over loopback, pointed at a sandbox; beside them,
MEMBER_SESSIONS in-process sessions of a signed-in member. Every tool is called, as tests/manifest.py says.

Figures: calls, errors, p50/p95 latency, server RSS at start, after warm-up and at the end.
Short form (CI): RELIABILITY_LOAD_SECONDS=10 (default). Full form:
    RELIABILITY_LOAD_SECONDS=120 python -m pytest -m reliability tests/reliability/test_load.py
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from pathlib import Path

import anyio
import httpx
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests import manifest
from tests.helpers import CANARY_KEY, HTTP_TOKEN, approve, as_person, http_own, http_session, open_session
from tests.reliability.helpers import figure, out_of_scope, percentile, result_text

pytestmark = pytest.mark.reliability

SECONDS = float(os.environ.get("RELIABILITY_LOAD_SECONDS", "10"))
SESSIONS = 20
MEMBER_SESSIONS = 2
WARMUP = min(3.0, SECONDS / 4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.timeout(int(SECONDS) + 180)
async def test_http_load(tmp_path: Path) -> None:
    with SandboxServer(key=CANARY_KEY) as sb:
        facts = sb.store.demo_facts()
        pool = manifest.calls(facts, "staff", writes=False)  # every read tool, as the manifest calls it
        writers = [(tool, entry.write) for tool, entry in manifest.entries("staff").items() if entry.write is not None]
        records = manifest.write_targets(sb.store, 1, per=SESSIONS)[0]
        port = free_port()
        env = {
            **os.environ,
            **sb.env(),
            "SHEEPCRM_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
            "SHEEPCRM_MCP_TOKEN": HTTP_TOKEN,
        }
        # The person serves over HTTP and lets their own client's form approve (its scripted person approves).
        own = http_own(["--transport", "http"], env) + "SHEEPCRM_HTTP_CLIENT_APPROVALS=true\n"
        command, person = as_person(own, tmp_path / "person")
        server_log = (tmp_path / "server.log").open("w")
        proc = subprocess.Popen(
            [*command, "--transport", "http", "--port", str(port)], env={**env, **person},
            stdout=subprocess.DEVNULL, stderr=server_log,
        )
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(200):
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await anyio.sleep(0.05)
                else:
                    raise AssertionError("server did not start: " + (tmp_path / "server.log").read_text())
            rss = {"start": rss_mb(proc.pid)}
            latencies: list[float] = []
            errors: list[str] = []
            writes = 0
            started = time.perf_counter()
            deadline = started + SECONDS

            async def session(n: int) -> None:
                """One staff session over HTTP: reads of every read tool, and one write tool on its own record."""
                nonlocal writes
                rnd = random.Random(n)
                tool_w, write = writers[n % len(writers)]
                target = records[write.kind][n // len(writers)]
                turn = 0
                async with http_session(f"http://127.0.0.1:{port}", elicitation_callback=approve) as client:
                    while time.perf_counter() < deadline:
                        if rnd.random() < 0.1:
                            tool, args = tool_w, write.aim(facts, sb.bucket, target, turn).args
                            turn += 1
                            writes += 1
                        else:
                            tool, args = rnd.choice(pool)
                        t0 = time.perf_counter()
                        try:
                            with anyio.fail_after(30):
                                result = await client.call_tool(tool, args)
                            if result.is_error:
                                errors.append(f"{tool}: {result_text(result)[:160]}")
                        except Exception as exc:
                            errors.append(f"{tool}: {type(exc).__name__}: {exc}")
                        latencies.append(time.perf_counter() - t0)

            async def sample_rss() -> None:
                await anyio.sleep(WARMUP)
                rss["after_warmup"] = rss_mb(proc.pid)

            async def member(n: int) -> None:
                """A signed-in member's session beside the HTTP load (in process: the member profile is served
                only by a hosted server), calling every member tool."""
                rnd = random.Random(-n)
                member_pool = manifest.calls(facts, "member")
                async with open_session(sb, tmp_path / f"member{n}", profile="member") as client:
                    while time.perf_counter() < deadline:
                        tool, args = rnd.choice(member_pool)
                        t0 = time.perf_counter()
                        result = await client.call_tool(tool, args)
                        if result.is_error:
                            errors.append(f"{tool}: {result_text(result)[:160]}")
                        member_latencies.append(time.perf_counter() - t0)

            member_latencies: list[float] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample_rss)
                for n in range(SESSIONS):
                    tg.start_soon(session, n)
                for n in range(MEMBER_SESSIONS):
                    tg.start_soon(member, n)
            elapsed = time.perf_counter() - started
            rss["end"] = rss_mb(proc.pid)
            assert proc.poll() is None, "server died under load"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            server_log.close()
        outside = out_of_scope(sb.request_log, sb.bucket)
        puts = sum(1 for e in sb.request_log if e.method == "PUT")
    growth = rss["end"] - rss["after_warmup"]
    figure(
        f"load[{int(SECONDS)}s]",
        sessions=SESSIONS,
        seconds=round(elapsed, 1),
        calls=len(latencies),
        calls_per_s=round(len(latencies) / elapsed, 1),
        write_calls=writes,
        member_calls=len(member_latencies),
        upstream_puts=puts,
        errors=len(errors),
        p50_ms=round(percentile(latencies, 50) * 1000, 1),
        p95_ms=round(percentile(latencies, 95) * 1000, 1),
        max_ms=round(max(latencies) * 1000, 1),
        rss_start_mb=round(rss["start"], 1),
        rss_after_warmup_mb=round(rss["after_warmup"], 1),
        rss_end_mb=round(rss["end"], 1),
        rss_growth_after_warmup_mb=round(growth, 1),
        out_of_scope=len(outside),
    )
    # a floor that shows the load ran (speed is the bench's): two calls per session in the SECONDS, whatever else
    # the second run's other worker puts on the two cores
    assert len(latencies) >= SESSIONS * 2, "load did not run"
    assert len(member_latencies) >= MEMBER_SESSIONS * 5, "the member sessions did not run"
    assert errors == [], errors[:5]
    assert outside == []
    assert puts <= writes
    assert growth < max(25.0, 0.25 * rss["after_warmup"]), rss  # flat: no per-call or per-session leak
