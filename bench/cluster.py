"""7. Replicas: throughput through HAProxy with 1 and with 2 stateless replicas (scripts/cluster.sh, real
Redis and HAProxy), and what the shared store adds to a gated write (Redis stores vs in-process stores)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import mcp.types as mt
from mcp import Client

from bench.common import BENCH_TOKEN, REPO, Row, authorized, ms, p50, p95
from bench.overhead import bench_settings, check

CLIENTS = 8
SCRIPT = REPO / "scripts" / "cluster.sh"
WRITE_TARGET_MS = 5.0  # a gated write may cost at most this much more with Redis than in-process


def _free_block(n: int) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        try:
            for p in range(base, base + n):
                with socket.socket() as t:
                    t.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise RuntimeError("no block of free loopback ports")


class Cluster:
    """scripts/cluster.sh with its own ports and state directory, pointed at the bench's sandbox."""

    def __init__(self, sb: Any, replicas: int, state: Path, **extra: str) -> None:
        base = _free_block(replicas + 4)
        binary = Path(sys.executable).parent / "sheepcrm-mcp"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHEEPCRM_") and k != "PYTHONPATH"}
        self.env.update(sb.env())
        self.env.update(
            CLUSTER_STATE_DIR=str(state), REPLICAS=str(replicas), REPLICA_BASE_PORT=str(base),
            LB_PORT=str(base + replicas), LB_STATS_PORT=str(base + replicas + 1), REDIS_PORT=str(base + replicas + 2),
            SANDBOX_PORT=str(base + replicas + 3), SHEEPCRM_BIN=str(binary), SHEEPCRM_CACHE_TTL="0",
            SHEEPCRM_AUDIT_LOG=str(state / "audit.jsonl"), SHEEPCRM_MCP_TOKEN=BENCH_TOKEN,
        )
        self.env.update(extra)  # e.g. hosted mode's settings (bench.hosted)
        self.base = base
        self.lb = f"http://127.0.0.1:{base + replicas}"
        self.state = state

    @property
    def redis_url(self) -> str:
        """The URL replicas use, password included (cluster.sh keeps it in a 0600 file)."""
        password = (self.state / "redis.pass").read_text().strip()
        return f"redis://:{password}@127.0.0.1:{self.env['REDIS_PORT']}/0"

    def run(self, *args: str) -> None:
        done = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed:\n{done.stderr[-2000:]}")

    def __enter__(self) -> Cluster:
        self.run("start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.run("stop")


async def throughput(url: str, uri: str, seconds: float) -> tuple[float, list[float]]:
    """CLIENTS stateless clients calling get_contact through the balancer for `seconds`; calls/s and latencies."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        async with AsyncExitStack() as stack, Client(await authorized(stack, f"{url}/mcp")) as client:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                check(await client.call_tool("get_contact", {"uri": uri}), "uri")
                latencies.append(time.perf_counter() - t0)

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(CLIENTS):
            tg.start_soon(worker)
    return len(latencies) / (time.monotonic() - t0), latencies


async def gated_writes(sb: Any, uri: str, n: int, **over: Any) -> list[float]:
    """Seconds per approved update_contact (elicitation accepted) on an in-process server with these stores."""
    from sheepcrm_mcp.assembly import build_app

    async def accept(context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
        return mt.ElicitResult(action="accept", content={"confirm": True})

    built = build_app(bench_settings(sb, **over))
    times: list[float] = []
    try:
        async with Client(built.server, mode="legacy", elicitation_callback=accept) as client:
            for i in range(n + 3):
                t0 = time.perf_counter()
                result = await client.call_tool("update_contact", {"uri": uri, "phone": f"+44 20 7946 9{i:03d}"})
                if result.is_error or (result.structured_content or {}).get("status") != "applied":
                    raise RuntimeError(f"gated write did not apply: {result.content}")
                if i >= 3:
                    times.append(time.perf_counter() - t0)
    finally:
        await built.aclose()
    return times


async def run(sb: Any, quick: bool) -> tuple[list[Row], list[str]]:
    seconds = 3.0 if quick else 15.0
    writes = 10 if quick else 60
    people = [r.uri for r in sb.store.by_type("person")]
    uri = people[0]
    rates: dict[int, tuple[float, list[float]]] = {}
    redis_p50: list[float] = []
    memory_p50: list[float] = []
    with tempfile.TemporaryDirectory(prefix="sheepcrm-bench-cluster-") as tmp:
        for replicas in (1, 2):
            with Cluster(sb, replicas, Path(tmp) / f"x{replicas}") as cluster:
                await throughput(cluster.lb, uri, 1.0)  # warm-up: connections, caches, imports
                rates[replicas] = await throughput(cluster.lb, uri, seconds)
                if replicas == 1:  # the same Redis the replicas use; writes interleaved in rounds
                    audit = Path(tmp) / "audit.jsonl"
                    for round_ in range(3):
                        memory_p50.append(p50(await gated_writes(sb, people[1 + round_], writes, audit_log=audit)))
                        redis_p50.append(p50(await gated_writes(
                            sb, people[4 + round_], writes, redis_url=cluster.redis_url,
                            request_state_key=secrets.token_hex(32), public_url=cluster.lb, audit_log=audit)))
    one, two = rates[1][0], rates[2][0]
    mem, red = p50(memory_p50), p50(redis_p50)
    added = red - mem
    nproc = os.cpu_count() or 0
    rows = [
        Row(f"throughput via HAProxy x{CLIENTS}: 2 replicas vs 1 (calls/s)", f"{two:.0f}/s", f"{one:.0f}/s",
            f"{two / one:.2f}x", f"info ({nproc} cores shared)", None),
        Row("throughput via HAProxy: 2 replicas vs 1, p95", ms(p95(rates[2][1])), ms(p95(rates[1][1])),
            f"{p95(rates[2][1]) / p95(rates[1][1]):.2f}x", "info", None),
        Row("gated write p50: Redis stores vs in-process", ms(red), ms(mem), f"+{added * 1000:.2f} ms",
            f"added < {WRITE_TARGET_MS:g} ms", added * 1000 < WRITE_TARGET_MS),
    ]
    notes = [
        f"- Throughput: {CLIENTS} stateless clients calling get_contact through HAProxy for {seconds:g} s each, "
        f"after a 1 s warm-up, first against 1 replica and then against 2 (scripts/cluster.sh, "
        f"SHEEPCRM_CACHE_TTL=0 so every call reaches the sandbox). On this {nproc}-core machine the clients, "
        "the sandbox, HAProxy, Redis and the replicas share the same cores, so a second replica can only help "
        "as far as a core is idle: the ratio is a floor, not what separate machines would give.",
        f"- Gated write: update_contact approved by elicitation on an in-process server, {writes} writes per "
        "round after 3 warm-up writes, 3 rounds alternating the in-process stores (JSONL audit, fsynced) and "
        f"the Redis stores (spend check + audit attempt + outcome: 3 round trips). p50 of the rounds' p50s: "
        f"in-process {ms(mem)}, Redis {ms(red)}.",
    ]
    return rows, notes
