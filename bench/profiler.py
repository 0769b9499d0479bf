"""Where a server's CPU goes per call: `python -m bench.profiler [--target ours,fetch] [--tools ...] [--calls N]`.

The server runs as the throughput section runs it (streamable HTTP, stateful, its own process, reads never cached,
the sandbox in a process of its own), but under cProfile (bench/profiled.py). The bench's 32 sessions are opened and
each makes one call first; then the profile is switched on, every session makes N calls of one tool, and it is
switched off and written. So a profile holds only steady-state calls: no start-up, no session set-up.

For each tool it prints (and writes to --out, with the .pstats for `python -m pstats`):
- the server's CPU per call over the profiled window (from /proc; cProfile's own cost makes this several times the
  unprofiled figure, so compare profiles with each other, and CPU per call with the throughput section);
- Python function calls per call: a count, which the machine's load does not move (times do);
- own time per call grouped by where the code lives (our package, the SDK, httpx/httpcore, anyio, pydantic, ...);
- the top functions by own time and by cumulative time, and the top functions of our own code by own time.

cProfile sees the main thread only (uvicorn's event loop, where every request is answered). Cumulative times of
coroutines count each resumption as a call; own time is the steadier measure.

`--target fetch` profiles the bare SDK server's `fetch` tool (bench/echo_server.py), the throughput section's
like-for-like baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import pstats
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from bench.common import (
    REPO,
    Proc,
    as_person_http,
    authorized,
    cpu_seconds,
    echo_command,
    listening,
    sandbox_process,
    server_env,
)
from bench.throughput import CLIENTS

HERE = Path(__file__).resolve().parent
OURS = ("sheepcrm_mcp", "server", "tools", "sheepcrm")  # our package, as its folders or through the symlinks


@contextmanager
def profiled_process(target: str, env: dict[str, str], out: Path) -> Iterator[Proc]:
    """The server for `target` ("ours" or "fetch") over HTTP, under bench/profiled.py writing to `out`."""
    wrapper = [sys.executable, str(HERE / "profiled.py"), str(out)]
    if target == "ours":
        person, env = as_person_http(env)  # [python, -I, person_browser.py, launches]
        cmd = [person[0], "-I", *wrapper[1:], *person[2:]]
    else:
        cmd = [*wrapper, *echo_command()[1:]]  # -m bench.echo_server
    with listening([*cmd, "--transport", "http"], env, 30.0) as (port, pid):
        yield Proc(f"http://127.0.0.1:{port}/mcp", pid)


async def profile_calls(proc: Proc, out: Path, n: int, tool: str, args: dict[str, Any], per_client: int) -> float:
    """CLIENTS sessions, each warmed with one call; then `per_client` calls each inside profile window `n` (written
    to out/<n>.pstats). Returns the server's CPU seconds over the window."""
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client(await authorized(stack, proc.url), mode="legacy"))
            for _ in range(CLIENTS)
        ]
        for c in clients:
            await c.call_tool(tool, args)
        errors = 0

        async def worker(c: Client) -> None:
            nonlocal errors
            for _ in range(per_client):
                errors += bool((await c.call_tool(tool, args)).is_error)

        os.kill(proc.pid, signal.SIGUSR1)
        before = cpu_seconds(proc.pid)
        async with anyio.create_task_group() as tg:
            for c in clients:
                tg.start_soon(worker, c)
        used = cpu_seconds(proc.pid) - before
        os.kill(proc.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 60
        while not (out / f"{n}.pstats").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the profiled server wrote no profile {n} in {out}")
            await anyio.sleep(0.05)
        if errors:
            raise RuntimeError(f"{errors} {tool} calls failed while profiled")
    return used


def where(filename: str) -> str:
    """The part of the code a function belongs to, by its file."""
    path = filename.replace("\\", "/")
    if "site-packages/" in path:
        top = path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        return {"mcp_types": "mcp", "httpcore": "httpx", "h11": "httpx", "pydantic_core": "pydantic",
                "sse_starlette": "starlette", "opentelemetry": "opentelemetry"}.get(top, top)
    if path.startswith(str(REPO)) and path[len(str(REPO)) + 1:].split("/", 1)[0] in OURS:
        return "ours"
    if path.startswith(("~", "<")):
        return "builtins"
    return "stdlib"


def report(stats: pstats.Stats, calls: int, cpu: float, top: int, label: str) -> str:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    own: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, _), (_, _, tt, _, _) in raw.items():
        own[where(filename)] += tt
        total += tt
    lines = [
        f"## {label}: {calls} calls profiled",
        "",
        f"server CPU per call while profiled: {cpu / calls * 1000:.2f} ms (/proc; cProfile's own cost included)",
        f"profiled own time per call: {total / calls * 1000:.2f} ms",
        # A count does not move with the machine's load, as times do: the steadiest before/after measure.
        f"Python function calls per call: {stats.total_calls / calls:,.0f}",  # type: ignore[attr-defined]
        "",
        "own time per call by where the code lives:",
        *[f"  {part:<16} {t / calls * 1000:7.3f} ms  {t / total:6.1%}" for part, t in
          sorted(own.items(), key=lambda kv: -kv[1])],
        "",
    ]
    for order, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        text = io.StringIO()
        stats.stream = text  # type: ignore[attr-defined]
        stats.sort_stats(order).print_stats(top)
        lines += [f"top {top} by {title}:", _table(text.getvalue()), ""]
    ours = sorted(((k, v) for k, v in raw.items() if where(k[0]) == "ours"), key=lambda kv: -kv[1][2])[:top]
    lines.append(f"our code, top {top} by own time (ms per call own / cumulative; entries per call, a coroutine "
                 "counted again at each resumption):")
    for (filename, line, name), (_, nc, tt, ct, _) in ours:
        short = filename[len(str(REPO)) + 1:] if filename.startswith(str(REPO)) else filename
        per = f"{tt / calls * 1000:7.3f} / {ct / calls * 1000:7.3f}  {nc / calls:6.1f}"
        lines.append(f"  {per}  {short}:{line}({name})")
    return "\n".join(lines)


def _table(printed: str) -> str:
    """pstats' table without its header lines (the profile file name, the sort order)."""
    rows = printed.splitlines()
    start = next((i for i, r in enumerate(rows) if r.lstrip().startswith("ncalls")), 0)
    return "\n".join(r.replace(str(REPO) + "/", "") for r in rows[start:] if r.strip())


async def run(targets: list[str], tools: list[str], per_client: int, top: int, out: Path) -> str:
    sections: list[str] = []
    with ExitStack() as stack:
        upstream = stack.enter_context(sandbox_process())
        from sheepcrm_mcp.sandbox.runner import SandboxServer

        with SandboxServer(size="demo", seed=1) as sb:  # the same seed: the same uris as the sandbox process
            facts = sb.store.demo_facts()
        cases = {"get_contact": {"uri": facts["jane_uri"]}, "search_contacts": {"query": "austen"},
                 "fetch": {"uri": facts["jane_uri"]}}
        for target in targets:
            folder = out / target
            for old in folder.glob("*.pstats"):
                old.unlink()
            proc = stack.enter_context(profiled_process(target, server_env(upstream), folder))
            names = tools if target == "ours" else ["fetch"]
            for n, tool in enumerate(names, 1):
                print(f"bench.profiler: {target} {tool} x{per_client * CLIENTS} ...", file=sys.stderr)
                cpu = await profile_calls(proc, folder, n, tool, cases[tool], per_client)
                stats = pstats.Stats(str(folder / f"{n}.pstats"))
                text = report(stats, per_client * CLIENTS, cpu, top, f"{target}: {tool}")
                (folder / f"{tool}.txt").write_text(text + "\n")
                os.replace(folder / f"{n}.pstats", folder / f"{tool}.pstats")
                sections.append(text)
    return "\n\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profiler", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="ours,fetch", help="ours, fetch (the bare SDK tool), or both (the default)")
    p.add_argument("--tools", default="get_contact,search_contacts", help="our tools to profile, one window each")
    p.add_argument("--calls", type=int, default=10, help=f"calls per session ({CLIENTS} sessions); default 10")
    p.add_argument("--top", type=int, default=25, help="functions listed per table")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "sheepcrm-profile",
                   help="folder for the reports and .pstats files")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    targets = [t.strip() for t in args.target.split(",") if t.strip()]
    if set(targets) - {"ours", "fetch"}:
        p.error("--target takes ours, fetch or both")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if set(tools) - {"get_contact", "search_contacts"}:
        p.error("--tools takes get_contact and/or search_contacts")
    print(asyncio.run(run(targets, tools, args.calls, args.top, args.out)))
    print(f"\nbench.profiler: reports and .pstats files in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
