"""1. Per-call overhead: the same read as a direct SheepClient call, as our MCP tool (stdio, HTTP,
in-process) and as the bare SDK `echo` tool on the same transports, interleaved call by call."""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from bench.common import REPO, Row, authorized, echo_command, http_process, ms, p50, p95, server_command, server_env

TARGET_MS = 0.5
TARGET_PCT = 10.0


def bench_settings(sb: Any, **over: Any) -> Any:
    from sheepcrm_mcp.server.settings import Settings

    values: dict[str, Any] = {
        **sb.settings(),
        "cache_ttl": 0,
        "audit_log": Path(tempfile.gettempdir()) / "sheepcrm-bench-audit.jsonl",
    }
    values.update(over)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def stdio(cmd: list[str], env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=cmd[0], args=cmd[1:], env=env, cwd=str(REPO))


def check(result: Any, expect: str) -> None:
    if result.is_error:
        raise RuntimeError(f"tool call failed: {result.content}")
    text = "".join(getattr(c, "text", "") for c in result.content)
    if expect not in text:
        raise RuntimeError(f"unexpected answer (wanted {expect!r}): {text[:200]}")


class Reported(float):
    """A path's own measure of its time (the out-of-process direct read), used instead of the wall time."""


async def measure(paths: dict[str, Callable[[], Awaitable[Any]]], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Call every path once per round, in a shuffled order, `rounds` times; seconds per call."""
    for _ in range(warmup):
        for fn in paths.values():
            await fn()
    times: dict[str, list[float]] = {name: [] for name in paths}
    order = list(paths)
    rng = random.Random(1)
    clock = time.perf_counter
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            fn = paths[name]
            t0 = clock()
            got = await fn()
            elapsed = clock() - t0
            times[name].append(got if isinstance(got, Reported) else elapsed)
    return times


async def run(sb: Any, quick: bool) -> tuple[list[Row], list[str]]:
    from bench.echo_server import build as build_echo
    from sheepcrm_mcp.assembly import build_app
    from sheepcrm_mcp.server.specs import Deps
    from sheepcrm_mcp.sheepcrm import SheepClient
    from sheepcrm_mcp.sheepcrm.scope import parse_uri
    from sheepcrm_mcp.tools.contacts import GetContactInput, get_contact

    rounds, warmup = (40, 5) if quick else (600, 30)
    jane = sb.store.demo_facts()["jane_uri"]
    settings = bench_settings(sb)
    env = server_env(sb)
    cached_env = server_env(sb, SHEEPCRM_CACHE_TTL="300")
    args = {"uri": jane}
    paths: dict[str, Callable[[], Awaitable[Any]]] = {}
    async with AsyncExitStack() as stack:
        direct = SheepClient(settings.client_config())
        stack.push_async_callback(direct.aclose)
        uri = parse_uri(jane, settings.bucket)
        deps = Deps(client=direct, settings=settings)
        request = GetContactInput(uri=jane)
        inproc = build_app(settings)
        inproc_server = inproc.server
        stack.push_async_callback(inproc.aclose)

        clients = {
            "ours_stdio": Client(stdio(server_command(), env), mode="legacy"),
            "echo_stdio": Client(stdio(echo_command(), {"PYTHONPATH": str(REPO)}), mode="legacy"),
            "ours_http": Client(
                await authorized(stack, stack.enter_context(http_process(server_command(), env)).url), mode="legacy"
            ),
            # like for like: ours answers each HTTP request with one JSON body (sheepcrm_mcp/http.py answers_as_json)
            "echo_http": Client(stack.enter_context(http_process([*echo_command(), "--json"])).url, mode="legacy"),
            "ours_inproc": Client(inproc_server, mode="legacy"),
            "cached_stdio": Client(stdio(server_command(), cached_env), mode="legacy"),
            "cached_http": Client(
                await authorized(stack, stack.enter_context(http_process(server_command(), cached_env)).url),
                mode="legacy",
            ),
            "echo_inproc": Client(build_echo(), mode="legacy"),
        }
        for name, client in clients.items():
            await stack.enter_async_context(client)
            if not name.startswith("echo"):
                check(await client.call_tool("get_contact", args), "Jane Austen")
            else:
                check(await client.call_tool("echo", {"text": "hi"}), "hi")

        worker = await anyio.open_process(
            [sys.executable, "-m", "bench.direct_worker", jane], env=env, cwd=str(REPO), stderr=None
        )
        stack.push_async_callback(worker.aclose)
        assert worker.stdin is not None and worker.stdout is not None
        worker_in, worker_out = worker.stdin, BufferedByteReceiveStream(worker.stdout)

        async def direct_proc_call() -> Reported:
            await worker_in.send(b"\n")
            return Reported(float(await worker_out.receive_until(b"\n", 100)))

        paths["direct_proc"] = direct_proc_call

        async def direct_call() -> Any:
            return await direct.record(uri)  # the read get_contact makes

        async def handler_call() -> Any:
            return await get_contact(request, deps)

        paths["direct"] = direct_call
        paths["handler"] = handler_call
        for name, client in clients.items():
            if not name.startswith("echo"):
                paths[name] = lambda c=client: c.call_tool("get_contact", args)
            else:
                paths[name] = lambda c=client: c.call_tool("echo", {"text": "hi"})
        times = await measure(paths, rounds, warmup)

    d = {name: (p50(v), p95(v)) for name, v in times.items()}
    rows: list[Row] = []
    notes = [
        f"Per-call: {rounds} interleaved rounds per path after {warmup} warm-up rounds; legacy (2025-11-25) "
        "sessions; SHEEPCRM_CACHE_TTL=0 so every get_contact reaches the sandbox.",
        "",
        "| path | p50 | p95 |",
        "|---|---|---|",
    ]
    labels = {
        "direct": "direct SheepClient.record (v1, as get_contact), in the bench process",
        "direct_proc": "direct SheepClient.record, from its own process (as the server calls)",
        "handler": "our get_contact handler, no MCP",
        "ours_inproc": "MCP get_contact, in-process",
        "echo_inproc": "bare SDK echo, in-process",
        "ours_stdio": "MCP get_contact, stdio",
        "echo_stdio": "bare SDK echo, stdio",
        "ours_http": "MCP get_contact, HTTP",
        "echo_http": "bare SDK echo, HTTP, one JSON body per answer (json_response=True), as ours answers",
        "cached_stdio": "MCP get_contact, stdio, answered from our read cache (no upstream hop)",
        "cached_http": "MCP get_contact, HTTP, answered from our read cache (no upstream hop)",
    }
    for name, label in labels.items():
        notes.append(f"| {label} | {ms(d[name][0])} | {ms(d[name][1])} |")
    rows.append(
        Row(
            "direct read p50/p95, own process (in bench process)",
            f"{ms(d['direct_proc'][0])} / {ms(d['direct_proc'][1])}",
            f"({ms(d['direct'][0])} / {ms(d['direct'][1])})",
            "-",
            "-",
            None,
        )
    )
    for transport, label in (("stdio", "stdio"), ("http", "HTTP"), ("inproc", "in-process")):
        o, e = d[f"ours_{transport}"], d[f"echo_{transport}"]
        rows.append(
            Row(
                f"MCP call {label} p50/p95: get_contact vs echo",
                f"{ms(o[0])} / {ms(o[1])}",
                f"{ms(e[0])} / {ms(e[1])}",
                f"{o[0] / e[0]:.2f}x",
                "-",
                None,
            )
        )
        if transport == "inproc":
            over = o[0] - d["direct"][0] - e[0]
            rows.append(
                Row(
                    "our overhead in-process p50",
                    f"{over * 1000:.2f} ms",
                    f"echo {ms(e[0])}",
                    f"{100 * over / e[0]:.1f} %",
                    "-",
                    None,
                )
            )
            continue
        over = o[0] - d["direct_proc"][0] - e[0]
        share = 100 * over / e[0]
        ok = over <= TARGET_MS / 1000 and share <= TARGET_PCT
        rows.append(
            Row(
                f"our overhead {label} p50 (MCP - direct - echo)",
                f"{over * 1000:.2f} ms",
                f"echo {ms(e[0])}",
                f"{share:.1f} %",
                f"<= {TARGET_MS} ms, <= {TARGET_PCT:.0f} %",
                ok,
            )
        )
        c = d[f"cached_{transport}"]
        cover = c[0] - e[0]
        rows.append(
            Row(
                f"our overhead {label} p50, no upstream hop (cached - echo)",
                f"{cover * 1000:.2f} ms",
                f"echo {ms(e[0])}",
                f"{100 * cover / e[0]:.1f} %",
                "-",
                None,
            )
        )
        naive = o[0] - d["direct"][0] - e[0]
        rows.append(
            Row(
                f"our overhead {label} p50, direct read in bench process",
                f"{naive * 1000:.2f} ms",
                f"echo {ms(e[0])}",
                f"{100 * naive / e[0]:.1f} %",
                "-",
                None,
            )
        )
    handler_over = d["handler"][0] - d["direct"][0]
    rows.append(
        Row(
            "our handler over the direct read p50 (no MCP)",
            f"{handler_over * 1000:.3f} ms",
            f"direct {ms(d['direct'][0])}",
            f"{100 * handler_over / d['direct'][0]:.1f} %",
            "-",
            None,
        )
    )
    print(f"  overhead: {rounds} rounds done", file=sys.stderr)
    return rows, notes
