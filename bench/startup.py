"""5. Start-up and memory: process start to the initialize response over stdio, and idle RSS after
initialize + tools/list; `sheepcrm-mcp` (pointed at an already running sandbox) vs the bare echo server."""

from __future__ import annotations

import compileall
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import REPO, Row, cpu_seconds, echo_command, p50, rss_mb, server_command, server_env, stop

TARGET_START = 1.05  # x the bare SDK echo server's time, side by side
SOURCES = ("sheepcrm_mcp", "server", "tools", "sheepcrm", "sandbox", "bench")  # the package's real folders
TARGET_RSS = 80.0

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
}


def _reply(proc: subprocess.Popen[bytes], rid: int) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("server closed stdout before answering")
        msg = json.loads(line)
        if msg.get("id") == rid:
            return dict(msg)


def _send(proc: subprocess.Popen[bytes], msg: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(msg).encode() + b"\n")
    proc.stdin.flush()


@dataclass
class Start:
    init: float  # seconds from Popen to the initialize answer
    cpu: float  # CPU seconds the process had used by then
    listed: float  # seconds from Popen to the tools/list answer
    rss: float  # MB, idle after tools/list
    tools: int
    first_call: float  # seconds the first tool call took (what the start left for it to load); 0 without a call


def once(cmd: list[str], env: dict[str, str], call: dict[str, Any] | None = None) -> Start:
    """One start: initialize, tools/list, idle RSS, then (given `call`: name and arguments) the first tool call."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        _send(proc, INIT)
        reply = _reply(proc, 1)
        started = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid)
        if "result" not in reply:
            raise RuntimeError(f"initialize failed: {reply}")
        _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
        tools = len(_reply(proc, 2)["result"]["tools"])
        listed = time.perf_counter() - t0
        time.sleep(0.2)  # idle
        rss = rss_mb(proc.pid)
        if call is None:
            return Start(started, cpu, listed, rss, tools, 0.0)
        t1 = time.perf_counter()
        _send(proc, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call})
        answer = _reply(proc, 3)
        first_call = time.perf_counter() - t1
        if "result" not in answer or answer["result"].get("isError"):
            raise RuntimeError(f"the first call failed: {answer}")
        return Start(started, cpu, listed, rss, tools, first_call)
    finally:
        stop(proc)


def import_profile(top: int = 8) -> list[str]:
    """The slowest imports of `sheepcrm-mcp` start-up (python -X importtime), cumulative microseconds."""
    code = "import sheepcrm_mcp.cli, sheepcrm_mcp.assembly"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stderr
    rows = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    wanted = [r for r in rows if r[1].strip().split(".")[0] in ("mcp", "mcp_types", "server", "tools", "pydantic",
                                                                "httpx", "starlette", "uvicorn",
                                                                "stamina", "anyio", "jsonschema", "rich")]
    seen = sorted(wanted, key=lambda r: -r[0])
    return [f"| `{name.strip()}` | {us / 1000:.0f} ms |" for us, name in seen[:top]]


async def run(sb: Any, quick: bool) -> tuple[list[Row], list[str]]:
    # One start's time on this shared machine moves by +-20 % between identical starts (its CPU time too: the
    # machine's speed moves), so enough alternating starts that the medians settle; the best of them is shown too,
    # since interference only ever adds time.
    n = 2 if quick else 25
    env = server_env(sb)
    # Like for like: sheepcrm-mcp runs no pydantic plugins (it sets PYDANTIC_DISABLE_PLUGINS unless set), so neither
    # does echo; looking for them reads every installed package's metadata.
    echo_env = {**env, "PYDANTIC_DISABLE_PLUGINS": env.get("PYDANTIC_DISABLE_PLUGINS", "__all__")}
    jane = sb.store.demo_facts()["jane_uri"]
    ours_call = {"name": "get_contact", "arguments": {"uri": jane}}
    echo_call = {"name": "fetch", "arguments": {"uri": jane}}  # the same upstream read, answered raw
    # As installed (pip compiles the bytecode): sources changed since their .pyc was written, or a run under
    # PYTHONDONTWRITEBYTECODE, would otherwise be compiled again at every start. Then one start each untimed,
    # which writes our tool cache after a change of source.
    for folder in SOURCES:
        compileall.compile_dir(REPO / folder, quiet=1)
    once(server_command(), env, ours_call)
    once(echo_command(), echo_env, echo_call)
    # The starts, then the first calls, each loop alternating so both see the same machine state. Apart, so that each
    # figure is that thing alone: in one loop with the calls, where echo's first fetch loads httpx and its command
    # line's rich (some 60 ms of CPU) just before our next start, our start read 1.07-1.13x echo's in four runs here
    # and 1.02x in one elsewhere, against 0.98-1.04x apart; the cause was not found. The cost a start leaves for the
    # first call is its own row, and start-up to the first answer another.
    ours: list[Start] = []
    echo: list[Start] = []
    for _ in range(n):
        ours.append(once(server_command(), env))
        echo.append(once(echo_command(), echo_env))
    calls = 2 if quick else 9
    with_calls: list[Start] = []
    e_with_calls: list[Start] = []
    for _ in range(calls):
        with_calls.append(once(server_command(), env, ours_call))
        e_with_calls.append(once(echo_command(), echo_env, echo_call))

    def both(pick: Callable[[Start], float]) -> tuple[float, float]:
        return p50([pick(o) for o in ours]), p50([pick(e) for e in echo])

    start, e_start = both(lambda r: r.init)
    cpu, e_cpu = both(lambda r: r.cpu)
    listed, e_listed = both(lambda r: r.listed)
    rss, e_rss = both(lambda r: r.rss)
    first, e_first = p50([r.first_call for r in with_calls]), p50([r.first_call for r in e_with_calls])
    # Start-up to the first tool answer: to the tools/list answer, then the first call (the idle wait between left out).
    answer = p50([r.listed + r.first_call for r in with_calls])
    e_answer = p50([r.listed + r.first_call for r in e_with_calls])
    best, e_best = min(o.init for o in ours), min(e.init for e in echo)
    rows = [
        Row("start-up to initialize response, stdio (p50)", f"{start:.3f} s", f"{e_start:.3f} s",
            f"{start / e_start:.2f}x", f"<= {TARGET_START}x", start / e_start <= TARGET_START),
        Row(f"start-up to initialize response, stdio (best of {n})", f"{best:.3f} s", f"{e_best:.3f} s",
            f"{best / e_best:.2f}x", "-", None),
        Row("CPU time to initialize response (p50)", f"{cpu:.3f} s", f"{e_cpu:.3f} s",
            f"{cpu / e_cpu:.2f}x", "-", None),
        Row("start-up to tools/list response, stdio (p50)", f"{listed:.3f} s", f"{e_listed:.3f} s",
            f"{listed / e_listed:.2f}x", "-", None),
        Row(f"first tool call after start: get_contact vs fetch (p50 of {calls})", f"{first * 1000:.0f} ms",
            f"{e_first * 1000:.0f} ms", f"{first / e_first:.2f}x", "-", None),
        Row(f"start-up to the first tool answer: tools/list, then that call (p50 of {calls})", f"{answer:.3f} s",
            f"{e_answer:.3f} s", f"{answer / e_answer:.2f}x", "-", None),
        Row(f"idle RSS after initialize + tools/list ({ours[0].tools} tools)", f"{rss:.1f} MB", f"{e_rss:.1f} MB",
            f"{rss / e_rss:.2f}x", f"<= {TARGET_RSS:.0f} MB", rss <= TARGET_RSS),
    ]
    notes = [f"Start-up: {n} alternating starts each, from Popen to the initialize reply (2025-11-25 handshake), "
             "then tools/list; the sandbox was already running; bytecode compiled and one untimed start each first. "
             "CPU time is the process's own (/proc/<pid>/stat, 10 ms ticks) at the initialize reply. "
             "RSS is VmRSS from /proc after initialize + tools/list. Then, in a loop of their own "
             f"({calls} alternating starts each), the first tool call: what a start leaves for it (the tool's module, "
             "the HTTP client, the first connection), echo's raw fetch of the same record against our get_contact.",
             "",
             "Slowest imports at start-up (cumulative, "
             "`python -X importtime -c 'import sheepcrm_mcp.cli, sheepcrm_mcp.assembly'`):",
             "", "| module | time |", "|---|---|", *import_profile()]
    return rows, notes
