"""Faults: scripted sessions of mixed tool calls against a sandbox that injects one fault kind at 20 %.

For every fault kind (plus a no-fault control and an unknown-outcome variant where the write commits but
the answer is lost) WORKERS scripted sessions, each with its own server (own client, breaker and audit log),
run RELIABILITY_FAULT_CALLS calls in all (default 500) concurrently against one sandbox. Each call is wrapped
in anyio.fail_after(the longest a call may legitimately take); per call we record the result, the duration,
the PUTs the sandbox received for the call's write target and the audit lines the call appended.

Then: a circuit-breaker test (100 % 503 -> fails fast with CircuitOpenError and sends nothing while open;
faults off -> recovers by itself after the cool-down).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.sandbox.app import LoggedRequest
from sheepcrm_mcp.sandbox.faults import FaultPlan
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store
from tests.helpers import CANARY_KEY, settings_for
from tests.reliability.helpers import approve, figure, out_of_scope, percentile, result_text

pytestmark = pytest.mark.reliability

CALLS = int(os.environ.get("RELIABILITY_FAULT_CALLS", "500"))
WORKERS = 4
RATE = 0.2
WRITE_SHARE = 0.2
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
    ok: bool = False
    text: str = ""
    status: str | None = None
    seconds: float = 0.0
    hung: bool = False
    protocol_error: str | None = None
    puts: int = 0
    audit: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Targets:
    people: list[str]  # contact uris to update
    tasks: list[str]  # task uids to complete/reopen
    attendees: list[str]  # person uris at the past event


def targets(store: Store, workers: int) -> list[Targets]:
    facts = store.demo_facts()
    fixed = {v for k, v in facts.items() if k.endswith("_uri")} | set(facts["injection_uris"])
    people = [r.uri for r in store.by_type("person") if r.uri not in fixed]
    keep = {facts["my_open_task_uid"], facts["injection_task_uid"]}
    tasks = [t.uid for t in store.tasks() if t.uid not in keep]
    event = f"/{store.bucket}/booking/{facts['past_event_uid']}/"
    attendees = list(dict.fromkeys(a.data["person_ref"] for a in store.attendance(event)))
    attendees = [a for a in attendees if a not in fixed]
    return [
        Targets(people[w * 4 : w * 4 + 4], tasks[w * 3 : w * 3 + 3], attendees[w * 2 : w * 2 + 2])
        for w in range(workers)
    ]


def script(facts: dict[str, Any], mine: Targets, n: int, seed: str, bucket: str) -> list[Call]:
    """n calls, about WRITE_SHARE of them approved writes on this worker's own targets."""
    rnd = random.Random(seed)
    reads: list[tuple[str, dict[str, Any]]] = [
        ("search_contacts", {"query": "austen"}),
        ("search_contacts", {"last_name": "Dickens"}),
        ("search_contacts", {"email": facts["jane_email"]}),
        ("get_contact", {"uri": facts["jane_uri"]}),
        ("get_contact", {"uri": facts["jane_uri"], "detail": "full"}),
        ("get_contact", {"uri": facts["organisation_uri"]}),
        ("check_membership", {"uri": facts["lapsed_uri"]}),
        ("check_membership", {"email": facts["jane_email"], "detail": "full"}),
        ("list_events", {"state": "all", "limit": 20}),
        ("list_events", {"state": "future"}),
        ("get_event", {"uid": facts["future_event_uid"]}),
        ("get_event", {"uid": facts["past_event_uid"], "detail": "full"}),
        ("list_attendees", {"uid": facts["past_event_uid"], "status": "attended"}),
        ("list_tasks", {"scope": "mine"}),
        ("list_tasks", {"scope": "all", "status": "any", "limit": 50}),
        ("get_task", {"uid": facts["my_open_task_uid"]}),
        ("search_help", {"query": "refund booking"}),
        ("find_segments", {}),
        ("find_segments", {"name": "members"}),
        ("query_segment", {"uid": facts["segment_current_members_uid"]}),
        ("query_segment", {"uid": facts["segment_fellows_uid"], "mode": "members", "limit": 5}),
        ("query_segment", {"uid": facts["segment_current_members_uid"], "mode": "lookup", "q": "austen"}),
        ("get_record_history", {"uri": facts["jane_uri"]}),
    ]
    event = facts["past_event_uid"]
    statuses = ["accepted", "attended", "no-show", "declined", "invited"]
    done: dict[str, bool] = {}
    calls: list[Call] = []
    for i in range(n):
        if rnd.random() >= WRITE_SHARE:
            tool, args = rnd.choice(reads)
            calls.append(Call(tool, dict(args), False, None))
            continue
        kind = rnd.choice(("contact", "task", "attendance"))
        if kind == "contact":
            uri = rnd.choice(mine.people)
            uid = uri.split("/")[3]
            calls.append(
                Call("update_contact", {"uri": uri, "phone": f"01632 {i:06d}"}, True, (f"/api/v1{uri}", ""))
            )
        elif kind == "task":
            uid = rnd.choice(mine.tasks)
            done[uid] = not done.get(uid, False)
            action = "complete" if done[uid] else "reopen"
            upstream = "complete" if done[uid] else "uncomplete"
            path = f"/notifications/v2/{bucket}/task/{uid}/{upstream}"
            calls.append(Call("update_task", {"uid": uid, "action": action}, True, (path, "")))
        else:
            person = rnd.choice(mine.attendees)
            path = f"/events/v2/{bucket}/booking/{event}/attendance"
            args = {"uid": event, "person_uris": [person], "status": rnd.choice(statuses)}
            calls.append(Call("set_attendance", args, True, (path, person)))
    return calls


def is_put_for(entry: LoggedRequest, target: tuple[str, str]) -> bool:
    path, person = target
    if entry.method != "PUT" or entry.path != path:
        return False
    return not person or f"person_uri={person.replace('/', '%2F')}" in entry.query


async def run_worker(sb: SandboxServer, calls: list[Call], audit_dir: Path) -> dict[str, Any]:
    built = build_app(settings_for(sb, audit_dir, **OVER))
    server = built.server
    rt = built
    limit = call_limit()
    try:
        async with Client(server, mode="legacy", elicitation_callback=approve) as client:
            for call in calls:
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
    finally:
        await rt.aclose()


async def run_kind(kind: str, faults: list[str], tmp: Path) -> dict[str, Any]:
    with SandboxServer(key=CANARY_KEY, faults=faults, fault_seed=11) as sb:
        facts = sb.store.demo_facts()
        mine = targets(sb.store, WORKERS)
        scripts = [script(facts, mine[w], CALLS // WORKERS, f"{kind}:{w}", sb.bucket) for w in range(WORKERS)]
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for w in range(WORKERS):
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


@pytest.mark.timeout(600)
async def test_fault_sessions(tmp_path: Path) -> None:
    runs: dict[str, dict[str, Any]] = {}

    async def one(kind: str) -> None:
        runs[kind] = await run_kind(kind, KINDS[kind], tmp_path)

    async with anyio.create_task_group() as tg:
        for kind in KINDS:
            tg.start_soon(one, kind)

    problems: list[str] = []
    for kind, run in runs.items():
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
    assert not problems, "\n".join(problems[:40])


async def test_circuit_breaker_fails_fast_and_recovers(tmp_path: Path) -> None:
    plan = FaultPlan.parse(["503:1.0"])  # the running sandbox consults this very object
    with SandboxServer(key=CANARY_KEY, faults=plan) as sb:
        facts = sb.store.demo_facts()
        built = build_app(settings_for(sb, tmp_path, cache_ttl=0, retry_wait_max=0.05, timeout=1.0))
        server = built.server
        rt = built
        breaker = rt.client.breaker
        args = {"uri": facts["jane_uri"]}
        try:
            async with Client(server, mode="legacy") as client:
                texts: list[str] = []
                for _ in range(breaker.threshold + 1):
                    result = await client.call_tool("get_contact", args)
                    assert result.is_error
                    texts.append(result_text(result))
                    if "not calling it for another" in texts[-1]:
                        break
                assert "not calling it for another" in texts[-1], texts
                assert "HTTP 503" in texts[0], texts[0]
                assert breaker.opened_at is not None
                sent = len(sb.request_log)
                started = time.perf_counter()
                for _ in range(10):
                    result = await client.call_tool("get_contact", args)
                    assert result.is_error
                    assert "not calling it for another" in result_text(result)
                    assert "nothing was changed" in result_text(result)
                fast = (time.perf_counter() - started) / 10
                while_open = len(sb.request_log) - sent
                assert while_open == 0, "requests were sent while the circuit was open"
                assert fast < 0.1
                # the upstream recovers: after the cool-down the next call probes, succeeds and closes it
                plan.rules.clear()
                breaker.cooldown = 0.5
                result = await client.call_tool("get_contact", args)
                assert result.is_error and "not calling it for another" in result_text(result)
                await anyio.sleep(0.6)
                result = await client.call_tool("get_contact", args)
                assert not result.is_error, result_text(result)
                assert breaker.opened_at is None and breaker.failures == 0
        finally:
            await rt.aclose()
        figure(
            "circuit_breaker",
            calls_until_open=len(texts),
            open_call_ms=round(fast * 1000, 2),
            requests_while_open=while_open,
            open_message=texts[-1][:160],
            recovered=True,
        )
