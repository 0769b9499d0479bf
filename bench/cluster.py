"""7. Replicas: throughput through HAProxy with 1 and with 2 stateless replicas (scripts/cluster.sh, real
Redis and HAProxy), calls/s one core serves (one replica pinned to a core of its own, side by side with the bare SDK
tool making the same upstream GET pinned the same way), and what the shared store adds to a gated write (Redis
stores vs in-process stores)."""

from __future__ import annotations

import contextlib
import json
import math
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
import httpx2
import mcp.types as mt
from mcp import Client

from bench.common import BENCH_TOKEN, REPO, Row, as_person_http, authorized, cpu_seconds, ms, p50, p95
from bench.overhead import bench_settings, check

CLIENTS = 8
CORE_CLIENTS = 8  # enough to keep one replica's core busy, if the generator's core can send that much
# The capacity model (docs/DEPLOY.md, "How many replicas"): a member bot for an association of MEMBERS members.
MEMBERS = 50_000
PEAK_SHARE = 0.02  # members who talk to the bot in the busiest hour (a renewal-reminder mailing going out)
CALLS_PER_CONVERSATION = 6  # tool calls per member conversation
BURST = 3.0  # the busiest minute against that hour's average
UTILISATION = 0.5  # a core kept at most half busy, so latency stays near the unloaded figure
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
        person, self.env = as_person_http(self.env)  # replicas serve HTTP only when the person's own file says so
        self.env["REPLICA_CMD"] = f"{' '.join(person)} --transport http --stateless --port {{port}}"
        self.env.update(extra)  # e.g. hosted mode's settings (bench.hosted)
        self.base = base
        self.lb = f"http://127.0.0.1:{base + replicas}"
        self.state = state

    @property
    def redis_url(self) -> str:
        """The URL replicas use, password included (cluster.sh keeps it in a 0600 file)."""
        password = (self.state / "redis.pass").read_text().strip()
        return f"redis://:{password}@127.0.0.1:{self.env['REDIS_PORT']}/0"

    def run(self, *args: str) -> str:
        done = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def replica_pid(self, index: int = 1) -> int:
        return int((self.state / "run" / f"replica-{index}.pid").read_text().split()[0])

    def __enter__(self) -> Cluster:
        # The shared store, hosted mode, the public address: replicas take them only from the person's own file.
        own = Path(self.env["PERSON_SETTINGS"])
        own.write_text(own.read_text() + self.run("own-settings"))
        self.run("start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.run("stop")


async def throughput(url: str, uri: str, seconds: float, tool: str = "get_contact",
                     expect: str = "uri") -> tuple[float, list[float]]:
    """CLIENTS stateless clients calling `tool` (get_contact, or the bare SDK tool `fetch`) for `uri` through the
    balancer for `seconds`; calls/s and latencies."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        async with AsyncExitStack() as stack, Client(await authorized(stack, f"{url}/mcp")) as client:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                check(await client.call_tool(tool, {"uri": uri}), expect)
                latencies.append(time.perf_counter() - t0)

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(CLIENTS):
            tg.start_soon(worker)
    return len(latencies) / (time.monotonic() - t0), latencies


async def posts(url: str, tool: str, uri: str, expect: str, seconds: float) -> int:
    """CORE_CLIENTS connections POSTing the same tools/call to a stateless server for `seconds` (plain HTTP, no MCP
    client: the generator's core must not be the limit); the answers, each checked."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool, "arguments": {"uri": uri}}}).encode()
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker(http: httpx2.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            answer = await http.post(f"{url}/mcp", content=body, headers=headers)
            text = answer.content
            if answer.status_code != 200 or b'"isError":true' in text or expect.encode() not in text:
                raise RuntimeError(f"{tool} via {url}: {answer.status_code} {text[:300]!r}")
            done += 1

    async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as tg:
        for _ in range(CORE_CLIENTS):
            tg.start_soon(worker, http)
    return done


def pin(pid: int, cpus: str) -> str:
    """Every thread of `pid` onto `cpus` (taskset list); the list it had before."""
    before = subprocess.run(["taskset", "-pc", str(pid)], capture_output=True, text=True, check=True).stdout
    subprocess.run(["taskset", "-a", "-pc", cpus, str(pid)], capture_output=True, check=True)
    return before.rsplit(":", 1)[1].strip()


def replica_command(binary: str) -> str:  # binary: the server's command (the person's own file says HTTP)
    """cluster.sh's REPLICA_CMD for a replica on core 1 alone."""
    return f"taskset -c 1 {binary} --transport http --stateless --port {{port}}"


async def one_core(sb: Any, seconds: float, rounds: int) -> dict[str, tuple[int, float, float, float]]:
    """get_contact through HAProxy to one replica pinned to core 1, and the bare SDK tool's `fetch` (the same
    upstream GET) to its own replica pinned the same way, alternating; this process (the clients and the sandbox),
    HAProxy and Redis are pinned to core 0. Per server: (calls, seconds, replica CPU seconds, this process's CPU
    seconds)."""
    uri = sb.store.demo_facts()["jane_uri"]
    py = sys.executable
    person = f"{py} -I {REPO / 'tests' / 'person_browser.py'} /dev/null"  # PERSON_SETTINGS: see Cluster
    servers = {
        "get_contact": ("get_contact", "uri", replica_command(person)),
        "fetch": ("fetch", "Austen", replica_command(f"{py} -m bench.echo_server")),
    }
    totals = {name: (0, 0.0, 0.0, 0.0) for name in servers}
    before = pin(os.getpid(), "0")
    try:
        with tempfile.TemporaryDirectory(prefix="sheepcrm-bench-core-") as tmp, contextlib.ExitStack() as stack:
            clusters = {name: stack.enter_context(Cluster(sb, 1, Path(tmp) / name, REPLICA_CMD=cmd))
                        for name, (_, _, cmd) in servers.items()}
            for name, cluster in clusters.items():  # warm-up: connections, imports, the first call's models
                await posts(cluster.lb, servers[name][0], uri, servers[name][1], 1.0)
            for _ in range(rounds):
                for name, cluster in clusters.items():
                    pid = cluster.replica_pid()
                    cpu0, own0, t0 = cpu_seconds(pid), time.process_time(), time.monotonic()
                    answered = await posts(cluster.lb, servers[name][0], uri, servers[name][1], seconds)
                    calls, wall, cpu, own = totals[name]
                    totals[name] = (calls + answered, wall + time.monotonic() - t0, cpu + cpu_seconds(pid) - cpu0,
                                    own + time.process_time() - own0)
    finally:
        pin(os.getpid(), before)
    return totals


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
    core = await one_core(sb, seconds, 1 if quick else 2)
    one, two = rates[1][0], rates[2][0]
    mem, red = p50(memory_p50), p50(redis_p50)
    added = red - mem
    nproc = os.cpu_count() or 0
    rows = [
        Row(f"throughput via HAProxy x{CLIENTS}: 2 replicas vs 1 (calls/s)", f"{two:.0f}/s", f"{one:.0f}/s",
            f"{two / one:.2f}x", f"info ({nproc} cores shared)", None),
        Row("throughput via HAProxy: 2 replicas vs 1, p95", ms(p95(rates[2][1])), ms(p95(rates[1][1])),
            f"{p95(rates[2][1]) / p95(rates[1][1]):.2f}x", "info", None),
        *core_rows(core),
        Row("gated write p50: Redis stores vs in-process", ms(red), ms(mem), f"+{added * 1000:.2f} ms",
            f"added < {WRITE_TARGET_MS:g} ms", added * 1000 < WRITE_TARGET_MS),
    ]
    notes = [
        f"- Throughput: {CLIENTS} stateless clients calling get_contact through HAProxy for {seconds:g} s each, "
        f"after a 1 s warm-up, first against 1 replica and then against 2 (scripts/cluster.sh, "
        f"SHEEPCRM_CACHE_TTL=0 so every call reaches the sandbox). On this {nproc}-core machine the clients, "
        "the sandbox, HAProxy, Redis and the replicas share the same cores, so a second replica can only help "
        "as far as a core is idle: the ratio is a floor, not what separate machines would give.",
        *core_notes(core, seconds, 1 if quick else 2),
        "- 2 replicas against 1 with each replica on a core of its own and the load generator, sandbox and HAProxy "
        f"on another needs at least 3 cores; this machine has {nproc}, so it is not measured and has no row (the "
        "unpinned row above shares every core).",
        f"- Gated write: update_contact approved by elicitation on an in-process server, {writes} writes per "
        "round after 3 warm-up writes, 3 rounds alternating the in-process stores (JSONL audit, fsynced) and "
        f"the Redis stores (spend check + audit attempt + outcome: 3 round trips). p50 of the rounds' p50s: "
        f"in-process {ms(mem)}, Redis {ms(red)}.",
    ]
    return rows, notes


def core_rows(core: dict[str, tuple[int, float, float, float]]) -> list[Row]:
    (calls, wall, cpu, _), (b_calls, b_wall, b_cpu, _) = core["get_contact"], core["fetch"]
    rate, b_rate = calls / wall, b_calls / b_wall
    per_core, b_per_core = calls / cpu, b_calls / b_cpu
    peak = MEMBERS * PEAK_SHARE * CALLS_PER_CONVERSATION / 3600 * BURST
    replicas = max(1, math.ceil(peak / (per_core * UTILISATION)))
    return [
        Row(f"one core (taskset): get_contact via HAProxy x{CORE_CLIENTS}, replica alone on core 1 (calls/s)",
            f"{rate:.0f}/s at {cpu / wall:.0%} of core 1", f"bare SDK tool {b_rate:.0f}/s at {b_cpu / b_wall:.0%}",
            f"{rate / b_rate:.2f}x", "info", None),
        Row("one core: calls/s per core (calls / replica CPU seconds)", f"{per_core:.0f}/s",
            f"bare SDK tool {b_per_core:.0f}/s", f"{per_core / b_per_core:.2f}x", "info", None),
        Row(f"capacity: replicas (1 core each) for a {MEMBERS:,}-member bot at {peak:.1f} calls/s peak",
            f"{replicas}", f"at {UTILISATION:.0%} of a core: {per_core * UTILISATION:.0f} calls/s each", "-", "-",
            None),
    ]


def core_notes(core: dict[str, tuple[int, float, float, float]], seconds: float, rounds: int) -> list[str]:
    peak = MEMBERS * PEAK_SHARE * CALLS_PER_CONVERSATION / 3600 * BURST
    return [
        f"- One core: {CORE_CLIENTS} connections POSTing the same tools/call (plain HTTP, no MCP client, so that the "
        f"generator's core is less of a limit) for {seconds:g} s x {rounds} alternating round(s) through "
        "HAProxy to one replica started with `taskset -c 1` (cluster.sh's REPLICA_CMD), this process (clients and "
        "sandbox), HAProxy and Redis pinned to core 0 (`taskset -a -pc 0`); the same for the bare SDK tool (`fetch` "
        "in bench/echo_server.py, one plain httpx GET of the same contact, raw JSON, served stateless like a "
        "replica). SHEEPCRM_CACHE_TTL=0: every call reaches the sandbox. Calls/s per core is calls / the replica's "
        "CPU seconds (/proc/<pid>/stat): when core 1 is not kept busy (the generator's core is the limit, or other "
        "processes share core 1), it is the figure to plan with, and the measured calls/s is a floor. "
        f"Replica CPU: get_contact {core['get_contact'][2]:.1f} s for {core['get_contact'][0]} calls, bare tool "
        f"{core['fetch'][2]:.1f} s for {core['fetch'][0]} calls; the bench process (generator and sandbox) on core 0 "
        f"used {core['get_contact'][3] / core['get_contact'][1]:.0%} and {core['fetch'][3] / core['fetch'][1]:.0%} "
        "of a core during those runs (HAProxy shares core 0 too).",
        f"- Capacity model: {MEMBERS:,} members, {PEAK_SHARE:.0%} of them talking to the member bot in the busiest "
        f"hour, {CALLS_PER_CONVERSATION} tool calls each, the busiest minute {BURST:g}x that hour's average: "
        f"{peak:.1f} calls/s; a replica (one core) is planned at {UTILISATION:.0%} of its core. sheepCRM's own "
        "capacity and rate limits are not in this figure (docs/DEPLOY.md).",
    ]
