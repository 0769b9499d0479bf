"""Replicas behind a balancer share approvals, the audit and limits in one real Redis.

scripts/cluster.sh starts Redis (Debian's redis-server), three `sheepcrm-mcp --transport http --stateless`
replicas and HAProxy in front of them; the replicas write to a sandbox this test owns, so every PUT is
counted where it lands. A client that cannot show confirmations (mode="legacy") is told approval is waiting;
the replica opens the person's browser at a one-time launch link (tests/person_browser.py records it), which
any replica serves, since the approval lives in Redis.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp.types as mt
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.cluster.helpers import (
    Cluster,
    approve_on_page,
    call,
    cluster,
    open_page,
    preview,
    prometheus,
    puts_for,
    text_of,
    uid_of,
)
from tests.helpers import check_launch_contest, http_session

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def people(sb: SandboxServer, n: int, skip: int = 0) -> list[str]:
    return [r.uri for r in sb.store.by_type("person")][skip : skip + n]


async def preview_and_approve(c: Cluster, args: dict[str, Any], page_via: str, preview_via: str | None = None) -> None:
    approve_on_page(await preview(c, args, preview_via or c.lb), page_via, public=c.lb)


def trail(c: Cluster, args: dict[str, Any]) -> list[str]:
    return [e["outcome"] for e in c.audit() if e["tool"] == "update_contact" and e["arguments"] == args]


async def test_preview_on_a_approve_on_b_apply_through_c(running: Cluster, cluster_sandbox: SandboxServer) -> None:
    c, sb = running, cluster_sandbox
    [uri] = people(sb, 1)
    args = {"uri": uri, "phone": "+44 20 7946 0100"}
    launch = await preview(c, args, via=c.replica(1))
    page_url = approve_on_page(launch, via=c.replica(2), public=c.lb)  # created on A, served and approved on B
    assert puts_for(sb, uid_of(uri)) == 0  # approving writes nothing by itself
    done = await call(c.replica(3), "update_contact", args)
    assert done.structured_content["status"] == "applied", text_of(done)
    again = await call(c.replica(1), "update_contact", args)
    assert again.structured_content["status"] == "no_change", text_of(again)
    assert puts_for(sb, uid_of(uri)) == 1
    assert trail(c, args) == ["approval_required", "attempt", "succeeded"]
    # without the browser's cookie the page is a 404 on every replica, bearer token or not
    for base in (c.lb, c.replica(1), c.replica(3)):
        url = page_url.replace(c.replica(2), base)
        assert httpx.get(url, headers={"Host": c.lb.split("://")[1]}).status_code == 404
        assert httpx.post(url, data={"action": "approve", "csrf": "x"}, headers={"Origin": c.lb}).status_code == 404
    used_again = httpx.get(launch)  # the launch link again, after the write: this browser is told, on any replica
    assert used_again.status_code == 409 and "already approved from another browser window" in used_again.text
    approval = launch.split("/approve/", 1)[1].split("/", 1)[0]
    assert [e["outcome"] for e in c.audit() if e["arguments"] == {"approval": approval}] == ["contested"]
    # the person's browser, but a form posted from another origin: refused
    other = {"uri": uri, "phone": "+44 20 7946 0101"}
    browser, url = open_page(await preview(c, other, via=c.replica(3)), via=c.replica(1), public=c.lb)
    try:
        assert browser.get(url).status_code == 200
        evil = browser.post(url, data={"action": "approve", "csrf": "x"}, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403
    finally:
        browser.close()


async def test_one_approval_raced_on_two_replicas_writes_once(running: Cluster, cluster_sandbox: SandboxServer) -> None:
    c, sb = running, cluster_sandbox
    [uri] = people(sb, 1, skip=1)
    before = puts_for(sb, uid_of(uri))
    statuses: Counter[str] = Counter()
    for i in range(20):
        args = {"uri": uri, "phone": f"+44 20 7946 1{i:03d}"}
        await preview_and_approve(c, args, page_via=c.lb)
        results: list[mt.CallToolResult] = []

        async def one(base: str, args: dict[str, Any] = args, results: list[mt.CallToolResult] = results) -> None:
            results.append(await call(base, "update_contact", args))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, c.replica(1))
            tg.start_soon(one, c.replica(2))
        got = sorted(r.structured_content["status"] for r in results if r.structured_content)
        statuses.update(got)
        assert got.count("applied") == 1, [text_of(r) for r in results]
    assert puts_for(sb, uid_of(uri)) - before == 20  # 20 approvals, 20 writes, never 40
    assert statuses["applied"] == 20


async def test_killing_a_replica_under_load_loses_nothing(running: Cluster, cluster_sandbox: SandboxServer) -> None:
    c, sb = running, cluster_sandbox
    targets = people(sb, 12, skip=2)
    calls = [{"uri": uri, "phone": f"+44 20 7946 2{n:03d}"} for n, uri in enumerate(targets)]
    for args in calls:  # approvals made before the replica goes away
        await preview_and_approve(c, args, page_via=c.lb)
    puts_before = {uri: puts_for(sb, uid_of(uri)) for uri in targets}
    outcome: dict[str, str] = {}
    reconnects = 0
    reads_ok = 0
    killed = anyio.Event()

    async def retrying(tool: str, args: dict[str, Any]) -> mt.CallToolResult:
        nonlocal reconnects
        for _ in range(10):  # a client whose replica went away reconnects (through the balancer) and carries on
            try:
                return await call(c.lb, tool, args)
            except Exception:
                reconnects += 1
                await anyio.sleep(0.3)
        raise AssertionError(f"{tool} never got through")

    async def writer(args: dict[str, Any]) -> None:
        nonlocal reads_ok
        for _ in range(3):
            read = await retrying("get_contact", {"uri": args["uri"]})
            reads_ok += not read.is_error
        result = await retrying("update_contact", args)
        outcome[args["uri"]] = (result.structured_content or {}).get("status", text_of(result))

    async def killer() -> None:
        await anyio.sleep(1.0)
        await anyio.to_thread.run_sync(lambda: c.run("kill-replica", "2"))
        killed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(killer)
        limiter = anyio.CapacityLimiter(4)

        async def bounded(args: dict[str, Any]) -> None:
            async with limiter:
                await writer(args)

        for args in calls:
            tg.start_soon(bounded, args)
    assert killed.is_set()
    await anyio.to_thread.run_sync(lambda: c.run("start-replica", "2"))
    # no lost approval: every approved change was applied once ("no_change" only if an answer was lost in the kill)
    assert set(outcome.values()) <= {"applied", "no_change"}, outcome
    assert {uri: puts_for(sb, uid_of(uri)) - puts_before[uri] for uri in targets} == dict.fromkeys(targets, 1)
    assert reads_ok == 3 * len(calls)
    # no lost or duplicated audit line: one attempt and one outcome per write, each entry once, in order
    entries = c.audit()
    assert len({e["id"] for e in entries}) == len(entries)
    for args in calls:
        assert trail(c, args) == ["approval_required", "attempt", "succeeded"], args


async def test_redis_down_refuses_writes_reads_go_on(running: Cluster, cluster_sandbox: SandboxServer) -> None:
    c, sb = running, cluster_sandbox
    [uri] = people(sb, 1, skip=20)
    args = {"uri": uri, "phone": "+44 20 7946 3000"}
    audit_before = len(c.audit())
    puts_before = len([e for e in sb.request_log if e.method == "PUT"])
    c.run("stop-redis")
    try:
        refused = await call(c.lb, "update_contact", args)
        assert refused.is_error
        message = text_of(refused)
        assert "shared store" in message and "unreachable" in message and "nothing was written" in message, message
        read = await call(c.lb, "get_contact", {"uri": uri})
        assert not read.is_error, text_of(read)
        assert len([e for e in sb.request_log if e.method == "PUT"]) == puts_before
        tail = c.run("status", check=False)
        assert tail.returncode == 3  # the script sees Redis down
    finally:
        c.run("start")  # brings Redis back (its AOF kept the stream)
    assert len(c.audit()) == audit_before  # nothing was recorded while it was down, nothing lost either
    await preview_and_approve(c, args, page_via=c.replica(1))
    done = await call(c.lb, "update_contact", args)
    assert done.structured_content["status"] == "applied", text_of(done)
    assert puts_for(sb, uid_of(uri)) == 1
    assert trail(c, args) == ["approval_required", "attempt", "succeeded"]


async def test_a_create_repeated_on_other_replicas_creates_once(
    running: Cluster, cluster_sandbox: SandboxServer
) -> None:
    """create_contact's memory lives in Redis: approved on one replica, run on a second, repeated on a third."""
    c, sb = running, cluster_sandbox
    args = {"first_name": "Jack", "last_name": "Swigert", "email": "jack.swigert@example.org"}
    seen = len(c.launches())
    first = await call(c.replica(1), "create_contact", args)
    assert first.structured_content["status"] == "approval_required", text_of(first)
    [launch] = c.launches()[seen:]
    approve_on_page(launch, via=c.replica(2), public=c.lb)
    done = await call(c.replica(2), "create_contact", args)
    assert done.structured_content["status"] == "applied", text_of(done)
    again = await call(c.replica(3), "create_contact", args)
    assert again.structured_content["status"] == "no_change" and "already created" in text_of(again)
    [record] = sb.store.contacts_by_email(args["email"])
    assert record.uri in text_of(again)
    assert [e.path for e in sb.request_log if e.method == "POST"] == ["/api/v1/demo/person/"]


async def test_rate_limits_are_shared_by_replicas(running: Cluster) -> None:
    from sheepcrm_mcp.server.redis_store import RedisLimiter, connect

    url = running.redis_url
    a, b = connect(url), connect(url)  # two processes' clients
    try:
        one, two = RedisLimiter(a, url), RedisLimiter(b, url)
        user = f"user-{anyio.current_time()}"
        waits = [await (one if i % 2 else two).hit(user, "get_contact", 5, 60.0) for i in range(7)]
        assert waits[:5] == [0.0] * 5 and all(0 < w <= 60 for w in waits[5:]), waits
        assert await one.hit(user, "search_contacts", 5, 60.0) == 0.0  # per tool
        assert await two.hit(f"{user}-other", "get_contact", 5, 60.0) == 0.0  # per user
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_approvals_follow_the_in_process_interface(running: Cluster) -> None:
    """The same calls give the same answers on both stores: one-time launch links, one browser, single use; a launch
    link used twice contests the approval, atomically with the launch token's use."""
    from sheepcrm_mcp.server.approvals.pending import ApprovalRequest
    from sheepcrm_mcp.server.approvals.store import ApprovalStore
    from sheepcrm_mcp.server.redis_store import RedisApprovals, connect

    client = connect(running.redis_url)
    try:
        for store in (ApprovalStore(), RedisApprovals(client, running.redis_url)):
            tag = f"{type(store).__name__}-{anyio.current_time()}"
            item = await store.create(ApprovalRequest("update_task", tag, "state", "summary", ["line"]))
            again = await store.create(ApprovalRequest("update_task", tag, "state", "summary", ["line"]))
            assert again.id == item.id  # the same request reuses its pending approval
            first = await store.new_launch(item.id)
            second = await store.new_launch(item.id)
            assert await store.launch(item.id, first) is None  # a newer link replaces the older one
            cookie = await store.launch(item.id, second)
            assert isinstance(cookie, str)  # (used again, it is contested: check_launch_contest below)
            seen = await store.get(item.id)
            assert seen is not None and seen.held_by(cookie) and seen.status == "pending"
            assert cookie not in seen.browser  # kept as a digest only
            assert await store.decide(item.id, "another-browser", approve=True) == "browser"
            assert await store.decision(item.id) == "pending"
            assert await store.consume("update_task", tag, "state") is None  # not approved yet
            assert await store.decide(item.id, cookie, approve=True, by={"sub": "first"}) == "approved"
            assert await store.decision(item.id) == "approved"
            # A later decision changes nothing, not even who is on record as having decided.
            assert await store.decide(item.id, cookie, approve=False, by={"sub": "second"}) == "approved"
            decided = await store.get(item.id)
            assert decided is not None and decided.approver == {"sub": "first"}
            assert await store.consume("update_task", tag, "other-state") is None
            used = await store.consume("update_task", tag, "state")
            assert not isinstance(used, str) and used is not None and used.id == item.id
            assert await store.consume("update_task", tag, "state") is None
            assert await store.decision(item.id) == "used"
            assert await store.get("no-such-id") is None and await store.launch("no-such-id", second) is None
            await check_launch_contest(store, tag)
            # A call that ended without its approval withdraws it: no decision approves it, no later call spends it.
            gone = await store.create(ApprovalRequest("update_task", tag + "-w", "state", "summary", ["line"]))
            link = await store.new_launch(gone.id)
            held = await store.launch(gone.id, link)
            assert isinstance(held, str)
            await store.withdraw(gone.id)
            assert await store.decide(gone.id, held, approve=True) == "withdrawn"
            assert await store.consume("update_task", tag + "-w", "state") is None
            fresh = await store.create(ApprovalRequest("update_task", tag + "-w", "state", "summary", ["line"]))
            assert fresh.id != gone.id and fresh.status == "pending"
    finally:
        await client.aclose()


async def test_redis_ledger_follows_the_one_machine_interface(running: Cluster, tmp_path: Path) -> None:
    """create_contact's memory: one claim wins across processes, values expire, forget forgets."""
    from sheepcrm_mcp.server.redis_store import RedisLedger, connect
    from sheepcrm_mcp.server.stores import FileLedger

    a, b = connect(running.redis_url), connect(running.redis_url)
    try:
        here = tmp_path / "ledger.json"
        redis = (RedisLedger(a, running.redis_url), RedisLedger(b, running.redis_url))
        pairs = ((FileLedger(here), FileLedger(here)), redis)
        for one, two in pairs:
            key = f"test-{type(one).__name__}-{anyio.current_time()}"
            assert await one.claim(key, {"state": "sending"}, 60) is None
            assert await two.claim(key, {"state": "sending", "by": "b"}, 60) == {"state": "sending"}
            await two.put(key, {"state": "created", "uri": "/demo/person/a/"}, 60)
            assert await one.get(key) == {"state": "created", "uri": "/demo/person/a/"}
            await one.forget(key)
            assert await two.get(key) is None
            await one.put(key, {"at": 1}, 0.05)
            await anyio.sleep(0.1)
            assert await two.get(key) is None
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_sign_ins_in_progress_are_capped_like_the_in_process_ones(running: Cluster) -> None:
    """The approval page's sign-ins in Redis: per approval the oldest is dropped, per address a start past the
    cap is refused, a taken one frees its place (what tests/server/test_signins.py checks in the process)."""
    from sheepcrm_mcp.server.approvals.signins import RedisSignIns
    from sheepcrm_mcp.server.redis_store import connect
    from tests.helpers import check_sign_in_caps

    client = connect(running.redis_url)
    try:
        await check_sign_in_caps(RedisSignIns(client), f"r{anyio.current_time()}")
    finally:
        await client.aclose()


def test_doctor_checks_the_shared_store(running: Cluster, tmp_path: Path) -> None:
    """doctor says whether Redis answers (by host and port: never the URL, which may hold a password)."""
    from tests.helpers import as_person, clean_env, own_lines

    secret = "doctor-redis-password-" + "p" * 12
    for url, good in ((running.redis_url, True), (f"redis://:{secret}@127.0.0.1:9/0", False)):
        env = clean_env(SHEEPCRM_REDIS_URL=url, SHEEPCRM_PUBLIC_URL="http://127.0.0.1:8765")
        command, person = as_person(own_lines(env), tmp_path / "person")  # the shared store: the person's own file
        done = subprocess.run([*command, "doctor", "--sandbox"], env={**env, **person}, capture_output=True,
                              text=True, timeout=60)
        port = running.env["REDIS_PORT"] if good else "9"
        assert (f"ok   Redis at 127.0.0.1:{port} answers" in done.stdout) == good, done.stdout
        assert (f"FAIL Redis at 127.0.0.1:{port} does not answer" in done.stdout) == (not good), done.stdout
        assert (done.returncode == 0) == good and secret not in done.stdout + done.stderr


async def test_a_2026_confirmation_answered_on_another_replica(cluster_sandbox: SandboxServer, tmp_path: Path) -> None:
    """On 2026-07-28 the person's answer comes back in a second request, which the balancer sends to the next
    replica; its request state was sealed with a per-process key, so the answer failed there. Every replica now
    has the deployment's key (SHEEPCRM_REQUEST_STATE_KEY). The client's form is the person's own here: their own
    settings file says so (SHEEPCRM_HTTP_CLIENT_APPROVALS=true); without it the approval page decides."""
    uid = cluster_sandbox.store.demo_facts()["my_open_task_uid"]
    questions: list[str] = []

    async def person_accepts(context: Any, params: Any) -> mt.ElicitResult:
        questions.append(params.message)
        return mt.ElicitResult(action="accept", content={"confirm": True})

    before = len([r for r in cluster_sandbox.request_log if r.method == "PUT"])
    with cluster(cluster_sandbox, tmp_path, replicas=2, own_extra="SHEEPCRM_HTTP_CLIENT_APPROVALS=true\n") as two:
        async with http_session(two.lb, mode="auto", elicitation_callback=person_accepts) as client:
            result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert questions and result.structured_content, text_of(result)
    assert result.structured_content["status"] == "applied", text_of(result)
    assert len([r for r in cluster_sandbox.request_log if r.method == "PUT"]) == before + 1


async def test_prometheus_scrapes_every_replica_and_counts_the_workload(running: Cluster, tmp_path: Path) -> None:
    """Debian's prometheus scrapes /metrics of the three replicas; after a known workload through the balancer,
    the sum over replicas is exactly that workload, and the balancer spread it."""
    import time

    c = running
    targets = [c.replica(i).removeprefix("http://") for i in range(1, c.replicas + 1)]
    total = 'sum(sheepcrm_mcp_tool_calls_total{tool="list_tasks",outcome="ok"}) or vector(0)'
    with prometheus(targets, tmp_path) as query:

        def until(check: Any, what: str) -> Any:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    found = check()
                except httpx.HTTPError:
                    found = None
                if found:
                    return found
                time.sleep(0.5)
            raise AssertionError(f"prometheus never saw {what}")

        until(lambda: len([r for r in query("up") if r["value"][1] == "1"]) == c.replicas, "every replica up")
        before = float(until(lambda: query(total), "the first scrape")[0]["value"][1])
        calls = 30
        async with http_session(c.lb, mode="legacy") as client:  # one session: the balancer still spreads requests
            for _ in range(calls):
                assert not (await client.call_tool("list_tasks", {})).is_error
        for _ in range(calls // 3):  # new sessions too
            assert not (await call(c.lb, "list_tasks", {})).is_error
        want = before + calls + calls // 3
        until(lambda: float(query(total)[0]["value"][1]) == want, f"{want} list_tasks calls")
        spread = query('sheepcrm_mcp_tool_calls_total{tool="list_tasks",outcome="ok"}')
        assert len([r for r in spread if float(r["value"][1]) > 0]) >= 2, spread  # more than one replica answered
        assert query('sum(sheepcrm_mcp_upstream_events_total{event="rate_limited"})')[0]["value"][1] == "0"
