"""5. Start-up and memory: process start to the initialize response over stdio, and idle RSS after
initialize + tools/list; `sheepcrm-mcp` (pointed at an already running sandbox) vs the bare echo server."""

from __future__ import annotations

import compileall
import json
import subprocess
import sys
import time
from typing import Any

from bench.common import REPO, Row, echo_command, p50, rss_mb, server_command, server_env, stop

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


def once(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds to the initialize response, idle RSS MB after tools/list, tools listed)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        _send(proc, INIT)
        reply = _reply(proc, 1)
        started = time.perf_counter() - t0
        if "result" not in reply:
            raise RuntimeError(f"initialize failed: {reply}")
        _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
        tools = len(_reply(proc, 2)["result"]["tools"])
        time.sleep(0.2)  # idle
        return started, rss_mb(proc.pid), tools
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
    n = 2 if quick else 7
    env = server_env(sb)
    # Like for like: sheepcrm-mcp runs no pydantic plugins (it sets PYDANTIC_DISABLE_PLUGINS unless set), so neither
    # does echo; looking for them reads every installed package's metadata.
    echo_env = {**env, "PYDANTIC_DISABLE_PLUGINS": env.get("PYDANTIC_DISABLE_PLUGINS", "__all__")}
    # As installed (pip compiles the bytecode): sources changed since their .pyc was written, or a run under
    # PYTHONDONTWRITEBYTECODE, would otherwise be compiled again at every start. Then one start each untimed,
    # which writes our tool cache after a change of source.
    for folder in SOURCES:
        compileall.compile_dir(REPO / folder, quiet=1)
    once(server_command(), env)
    once(echo_command(), echo_env)
    ours, echo = [], []
    for _ in range(n):  # alternate so both see the same machine state
        ours.append(once(server_command(), env))
        echo.append(once(echo_command(), echo_env))
    start, rss, tools = p50([o[0] for o in ours]), p50([o[1] for o in ours]), ours[0][2]
    e_start, e_rss = p50([e[0] for e in echo]), p50([e[1] for e in echo])
    rows = [
        Row("start-up to initialize response, stdio (p50)", f"{start:.3f} s", f"{e_start:.3f} s",
            f"{start / e_start:.2f}x", f"<= {TARGET_START}x", start / e_start <= TARGET_START),
        Row(f"idle RSS after initialize + tools/list ({tools} tools)", f"{rss:.1f} MB", f"{e_rss:.1f} MB",
            f"{rss / e_rss:.2f}x", f"<= {TARGET_RSS:.0f} MB", rss <= TARGET_RSS),
    ]
    notes = [f"Start-up: {n} alternating starts each, from Popen to the initialize reply (2025-11-25 handshake); "
             "the sandbox was already running; bytecode compiled and one untimed start each first. "
             "RSS is VmRSS from /proc after initialize + tools/list.", "",
             "Slowest imports at start-up (cumulative, "
             "`python -X importtime -c 'import sheepcrm_mcp.cli, sheepcrm_mcp.assembly'`):",
             "", "| module | time |", "|---|---|", *import_profile()]
    return rows, notes
