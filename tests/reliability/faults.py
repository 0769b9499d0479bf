"""The fault sessions' machinery (tests/reliability/test_fault_sessions*.py): scripted sessions of mixed tool calls
against a sandbox that injects one fault kind at 20 %.

For every fault kind (plus a no-fault control and an unknown-outcome variant where the write commits but the answer
is lost) WORKERS scripted sessions (more for kinds that mostly wait), each with its own server (own client, breaker
and audit log), run RELIABILITY_FAULT_CALLS calls in all (default 500) concurrently against one sandbox. Each call is
wrapped in anyio.fail_after(the longest a call may legitimately take); per call we record the result, the duration,
the PUTs the sandbox received for the call's write target and the audit lines the call appended."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from sheepcrm_mcp.sandbox.app import LoggedRequest
from sheepcrm_mcp.sandbox.faults import FaultPlan
from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests import manifest
from tests.helpers import CANARY_KEY, approve, open_session
from tests.reliability.helpers import figure, out_of_scope, percentile, result_text

CALLS = int(os.environ.get("RELIABILITY_FAULT_CALLS", "500"))
WORKERS = 4
# Kinds whose calls mostly wait (hung answers, added latency) run more sessions side by side: the waits overlap,
# the calls stay CALLS. CPU-bound kinds keep WORKERS: more sessions in one process only queue for the interpreter.
WAITING = {"timeout": 10, "slow": 10}
RATE = 0.2
WRITE_SHARE = 0.2
PROFILES: tuple[manifest.Profile, ...] = ("staff", "member")
KINDS: dict[str, list[str]] = {
    "none": [],
    "429": [f"429=1:{RATE}"],
    "500": [f"500:{RATE}"],
    "503": [f"503:{RATE}"],
    "timeout": [f"timeout=5:{RATE}"],  # hangs 5 s; the client gives up after 1 s
    "drop": [f"drop:{RATE}"],
    "409": [f"409:{RATE}"],
    "slow": [f"latency=300:{RATE}"],
    "unknown_outcome": [f"drop@after:{RATE / 2}", f"500@after:{RATE / 2}"],  # write commits, answer lost
}
# The kinds split over the three test files (one file runs whole on one xdist worker), so the run uses both cores.
GROUPS: dict[str, tuple[str, ...]] = {
    "none_429_500": ("none", "429", "500"),
    "transport": ("timeout", "drop", "slow"),
    "503_409_lost": ("503", "409", "unknown_outcome"),
}
RETRIED = ("429", "503", "timeout", "drop")  # DESIGN: reads retry 429/502/503/504 and transport errors
OVER = {"timeout": 1.0, "cache_ttl": 0, "retry_wait_max": 0.2}  # cache off: every call reaches the sandbox
UPSTREAM_PER_CALL = 7  # most upstream requests one tool call makes (update_contact: 6 GETs and a PUT)


def call_limit() -> float:
    """The longest one call may take: every upstream read exhausts its attempts, plus one write timeout."""
    attempts = 4  # Settings.retry_attempts default
    per_get = attempts * OVER["timeout"] + (attempts - 1) * OVER["retry_wait_max"]
    return UPSTREAM_PER_CALL * per_get + OVER["timeout"] + 1.0


@dataclass
class Call:
    tool: str
    args: dict[str, Any]
    write: bool
    target: tuple[str, str] | None  # (PUT path, person_uri or "") identifying this call's writes
    profile: manifest.Profile = "staff"
    ok: bool = False
    text: str = ""
    status: str | None = None
    seconds: float = 0.0
    hung: bool = False
    protocol_error: str | None = None
    puts: int = 0
    audit: list[dict[str, Any]] = field(default_factory=list)


def script(facts: dict[str, Any], mine: dict[manifest.Kind, list[str]], n: int, seed: str, bucket: str) -> list[Call]:
    """n calls of every tool's manifest reads (both profiles), about WRITE_SHARE of them approved writes of
    every write tool, each aimed at this worker's own records."""
    rnd = random.Random(seed)
    reads = [
        (profile, tool, args) for profile in PROFILES for tool, args in manifest.calls(facts, profile, writes=False)
    ]
    writers = [(tool, entry.write) for tool, entry in manifest.entries("staff").items() if entry.write is not None]
    turns: dict[str, int] = {}
    calls: list[Call] = []
    for _ in range(n):
        if rnd.random() >= WRITE_SHARE:
            profile, tool, args = rnd.choice(reads)
            calls.append(Call(tool, dict(args), False, None, profile))
            continue
        tool, write = rnd.choice(writers)
        target = rnd.choice(mine[write.kind])
        turn = turns[target] = turns.get(target, -1) + 1
        aimed = write.aim(facts, bucket, target, turn)
        calls.append(Call(tool, aimed.args, True, aimed.put))
    return calls


def is_put_for(entry: LoggedRequest, target: tuple[str, str]) -> bool:
    path, person = target
    if entry.method != "PUT" or entry.path != path:
        return False
    return not person or f"person_uri={person.replace('/', '%2F')}" in entry.query


async def run_worker(sb: SandboxServer, calls: list[Call], audit_dir: Path) -> dict[str, Any]:
    """One staff session and one member session (own servers, breakers and audit logs) running `calls`."""
    limit = call_limit()
    async with (
        open_session(sb, audit_dir, profile="staff", elicitation=approve, **OVER) as staff,
        open_session(sb, audit_dir / "member", profile="member", **OVER) as member,
    ):
        rt = staff.runtime  # type: ignore[attr-defined]
        sessions = {"staff": staff, "member": member}
        for call in calls:
            client = sessions[call.profile]
            first_request, first_audit = len(sb.request_log), len(await rt.audit.entries())
            started = time.perf_counter()
            try:
                with anyio.fail_after(limit):
                    result = await client.call_tool(call.tool, call.args)
                call.ok = not result.is_error
                call.text = result_text(result)
                if result.structured_content and not result.is_error:
                    call.status = result.structured_content.get("status")
            except TimeoutError:
                call.hung = True
            except Exception as exc:  # a JSON-RPC error or a broken session
                call.protocol_error = f"{type(exc).__name__}: {exc}"
            call.seconds = time.perf_counter() - started
            if call.target is not None:
                target = call.target
                call.puts = sum(1 for e in sb.request_log[first_request:] if is_put_for(e, target))
            call.audit = (await rt.audit.entries())[first_audit:]
        return {"breaker_failures": rt.client.breaker.failures}


async def run_kind(kind: str, faults: list[str], tmp: Path) -> dict[str, Any]:
    with SandboxServer(key=CANARY_KEY, faults=faults, fault_seed=11) as sb:
        facts = sb.store.demo_facts()
        workers = WAITING.get(kind, WORKERS)
        mine = manifest.write_targets(sb.store, workers, per=2 if workers <= WORKERS else 1)
        scripts = [script(facts, mine[w], CALLS // workers, f"{kind}:{w}", sb.bucket) for w in range(workers)]
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for w in range(workers):
                tg.start_soon(run_worker, sb, scripts[w], tmp / kind / f"w{w}")
        wall = time.perf_counter() - started
        log = list(sb.request_log)
        all_targets = {c.target for s in scripts for c in s if c.target}
        puts_in_log = sum(1 for e in log if e.method == "PUT")
        puts_for_targets = sum(1 for e in log if any(is_put_for(e, t) for t in all_targets))
        return {
            "calls": [c for s in scripts for c in s],
            "wall": wall,
            "requests": len(log),
            "faulted": injected(sb.faults),
            "puts_in_log": puts_in_log,
            "puts_for_targets": puts_for_targets,
            "out_of_scope": out_of_scope(log, sb.bucket),
            "store": sb.store,
        }


def injected(plan: FaultPlan | None) -> int:
    """Requests a fault (latency included) was applied to, replayed from the plan's deterministic rolls."""
    if plan is None:
        return 0
    return sum(
        plan.roll(i, n) < rule.rate for i, rule in enumerate(plan.rules) for n in range(plan._counters[i])
    )


def summarise(kind: str, run: dict[str, Any]) -> dict[str, Any]:
    calls: list[Call] = run["calls"]
    reads = [c for c in calls if not c.write]
    writes = [c for c in calls if c.write]
    durations = [c.seconds for c in calls]
    audit_lines = sum(len(c.audit) for c in calls)
    return {
        "calls": len(calls),
        "requests": run["requests"],
        "faulted_requests": run["faulted"],
        "reads": len(reads),
        "read_success": round(sum(c.ok for c in reads) / len(reads), 4),
        "writes": len(writes),
        "writes_applied": sum(1 for c in writes if c.status == "applied"),
        "writes_no_change": sum(1 for c in writes if c.status == "no_change"),
        "writes_failed": sum(1 for c in writes if not c.ok),
        "write_attempts": sum(1 for c in writes if c.puts),
        "max_puts_per_write": max((c.puts for c in writes), default=0),
        "puts_in_log": run["puts_in_log"],
        "audit_lines": audit_lines,
        "audit_lines_without_put": sum(1 for c in writes if c.audit and not c.puts),
        "audit_attempt_lines": sum(1 for c in calls for e in c.audit if e["outcome"] == "attempt"),
        "circuit_open_errors": sum(1 for c in calls if "not calling it for another" in c.text),
        "hangs": sum(c.hung for c in calls),
        "protocol_errors": sum(1 for c in calls if c.protocol_error),
        "unexpected": sum(1 for c in calls if "failed unexpectedly" in c.text or "Traceback" in c.text),
        "out_of_scope": len(run["out_of_scope"]),
        "p50_ms": round(percentile(durations, 50) * 1000, 1),
        "p95_ms": round(percentile(durations, 95) * 1000, 1),
        "max_s": round(max(durations), 2),
        "limit_s": round(call_limit(), 1),
        "wall_s": round(run["wall"], 1),
    }


def check(kind: str, run: dict[str, Any]) -> list[str]:
    """What went wrong in one kind's run (empty: nothing); its figures are printed."""
    problems: list[str] = []
    s = summarise(kind, run)
    figure(f"faults[{kind}]", **s)
    calls: list[Call] = run["calls"]
    writes = [c for c in calls if c.write]
    # nothing hangs, nothing leaks as a protocol error or traceback, nothing leaves the bucket
    for name in ("hangs", "protocol_errors", "unexpected", "out_of_scope"):
        if s[name]:
            examples = [c.protocol_error or c.text[:200] for c in calls if c.hung or c.protocol_error][:3]
            problems.append(f"{kind}: {name} = {s[name]} {examples or run['out_of_scope'][:3]}")
    # every failure is an isError result with a message a person can act on
    for c in calls:
        if not c.ok and not c.hung and not c.protocol_error and len(c.text) < 20:
            problems.append(f"{kind}: {c.tool} failed without an explanation: {c.text!r}")
    # writes: each attempted at most once, every PUT belongs to one call; an attempt line before each
    # write and its outcome line after
    if s["max_puts_per_write"] > 1:
        problems.append(f"{kind}: a write was sent {s['max_puts_per_write']} times")
    if run["puts_in_log"] != sum(c.puts for c in writes) or run["puts_for_targets"] != run["puts_in_log"]:
        problems.append(f"{kind}: {run['puts_in_log']} PUTs reached the sandbox, calls account for "
                        f"{sum(c.puts for c in writes)}")
    for c in writes:
        outcomes = [e["outcome"] for e in c.audit]
        if c.puts and (len(outcomes) != 2 or outcomes[0] != "attempt" or outcomes[1] == "attempt"):
            problems.append(f"{kind}: {c.tool} {c.args} wrote once but was audited as {outcomes}")
        if not c.puts and outcomes not in ([], ["conflict"], ["failed"], ["attempt", "failed"]):
            problems.append(f"{kind}: {c.tool} sent nothing but was audited as {outcomes}")
        if c.status == "applied" and not c.puts:
            problems.append(f"{kind}: {c.tool} says applied without a write")
        if c.puts and c.ok and c.status not in ("applied", "partial"):
            problems.append(f"{kind}: {c.tool} wrote but answered {c.status}")
    if kind != "none" and s["faulted_requests"] == 0:
        problems.append(f"{kind}: no fault was injected")
    # reads: retried kinds (and faults that never touch reads) succeed within the retry budget
    if kind in RETRIED and s["read_success"] < 0.98:
        problems.append(f"{kind}: only {s['read_success']:.1%} of reads succeeded within the retry budget")
    if kind in ("none", "409", "unknown_outcome") and s["read_success"] < 1:
        problems.append(f"{kind}: reads failed without a read fault: {s['read_success']:.2%}")
    if kind == "slow":  # added latency may push a many-page read past its deadline: rarely, and it must say so
        late = [c.text[:120] for c in calls if not c.write and not c.ok and "did not answer within" not in c.text]
        if late or s["read_success"] < 0.99:
            problems.append(f"slow: {s['read_success']:.2%} of reads succeeded; other failures: {late[:3]}")
    if kind == "500":  # not retried by design (DESIGN: 429/502/503/504); each failure must say so
        bad = [c.text[:120] for c in calls if not c.write and not c.ok and "HTTP 500" not in c.text
               and "not calling it for another" not in c.text and "did not answer within" not in c.text]
        if bad:
            problems.append(f"500: read failures that do not name HTTP 500: {bad[:3]}")
    if kind == "none" and (s["writes_failed"] or s["read_success"] < 1):
        problems.append(f"none: failures without faults: {[c.text[:120] for c in calls if not c.ok][:3]}")
    if kind == "unknown_outcome":
        lost = [c for c in writes if c.puts and any(e.get("outcome") == "succeeded" for e in c.audit)]
        if not any(c.status == "applied" for c in lost):
            problems.append("unknown_outcome: no write whose answer was lost was read back as applied")
    return problems


async def run_kinds(kinds: tuple[str, ...], tmp: Path) -> None:
    """Run `kinds` concurrently, each against its own sandbox, and fail naming every problem found."""
    runs: dict[str, dict[str, Any]] = {}

    async def one(kind: str) -> None:
        runs[kind] = await run_kind(kind, KINDS[kind], tmp)

    async with anyio.create_task_group() as tg:
        for kind in kinds:
            tg.start_soon(one, kind)
    problems = [problem for kind in kinds for problem in check(kind, runs[kind])]
    assert not problems, "\n".join(problems[:40])
