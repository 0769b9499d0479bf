"""Hosted mode (SHEEPCRM_AUTH=oauth) on three replicas behind HAProxy sharing one Redis, with the project's OpenID
provider: sign-ins, page sessions, pending approvals, rate limits and the audit live in Redis, so any replica
serves any step. A helpdesk change approved through a sign-in that starts on one replica and comes back to
another (scripted, and in Chromium through the balancer); a replica killed mid-sign-in; members under load across
replicas with their isolation checked; Redis down."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store
from tests.cluster.helpers import Cluster, cluster, prometheus
from tests.helpers import CANARY_KEY, PAGE, browse, hosted_session, running_idp, sign_in

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
MEMBERS = 6  # members of the sandbox signed in at once for the load test


def member_accounts(sb: SandboxServer) -> dict[str, dict[str, Any]]:
    """The provider's accounts: helpdesk, and MEMBERS members who are people of the sandbox (their real emails)."""
    accounts: dict[str, dict[str, Any]] = {
        "helpdesk": {"sub": "u-helpdesk", "password": "helpdesk-pw", "name": "Hana Helpdesk",
                     "email": "helpdesk@sheepcrm.test", "email_verified": True, "roles": ["helpdesk"]},
    }
    seen: dict[str, int] = {}
    people = [r for r in sb.store.by_type("person") if r.data.get("email") and r.data["email"][0]]
    for r in people:
        for e in r.data["email"]:
            if e:
                seen[e.lower()] = seen.get(e.lower(), 0) + 1
    chosen = [r for r in people if seen[r.data["email"][0].lower()] == 1 and "@" in r.data["email"][0]][:MEMBERS]
    for n, r in enumerate(chosen):
        accounts[f"m{n}"] = {"sub": f"u-m{n}", "password": f"m{n}-pw", "name": r.display_value,
                             "email": r.data["email"][0], "email_verified": True, "roles": ["member"], "uri": r.uri}
    return accounts


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, SandboxServer, str, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("hosted-cluster")
    with SandboxServer(key=CANARY_KEY) as sb:
        accounts = member_accounts(sb)
        (tmp / "accounts.json").write_text(json.dumps(accounts))
        with running_idp(IDP_ACCOUNTS_FILE=str(tmp / "accounts.json")) as idp, cluster(
            sb, tmp,
            SHEEPCRM_AUTH="oauth", SHEEPCRM_OAUTH_ISSUER=idp, SHEEPCRM_OAUTH_RESOURCE="{lb}/mcp",
            SHEEPCRM_API_KEY_HELPDESK=sb.key, SHEEPCRM_API_KEY_MEMBER=sb.key, SHEEPCRM_CONFIRM="page",
            SHEEPCRM_OAUTH_CLIENT_ID=str(PAGE["oauth_client_id"]),
            SHEEPCRM_OAUTH_CLIENT_SECRET=str(PAGE["oauth_client_secret"]),
            SHEEPCRM_OAUTH_SIGNIN_SCOPE=str(PAGE["oauth_signin_scope"]), SHEEPCRM_METRICS="1",
        ) as c:
            yield c, sb, idp, accounts


def open_task(sb: SandboxServer, used: set[str] = set()) -> str:  # noqa: B006 - one set for the module
    for task in sb.store.by_type("journal"):
        if Store.task_status(task) == "open" and task.uid not in used:
            used.add(task.uid)
            return task.uid
    raise AssertionError("no open task left")


async def ask(base: str, token: str, uid: str) -> dict[str, Any]:
    async with hosted_session(base, token) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert not result.is_error, result.content
    return dict(result.structured_content or {})


def at(url: str, replica: str) -> str:
    """The same address at one replica (the browser still names the balancer in Host)."""
    return re.sub(r"^https?://[^/]+", replica, url)


def browser(c: Cluster) -> httpx.Client:
    """The person's browser: at a replica it names the balancer in Host, as behind the balancer; the provider is
    reached as it is."""

    def name_the_balancer(request: httpx.Request) -> None:
        if request.url.port != urlsplit(c.lb).port and f"{request.url.host}:{request.url.port}" in {
            urlsplit(c.replica(i)).netloc for i in range(1, c.replicas + 1)
        }:
            request.headers["Host"] = urlsplit(c.lb).netloc

    return httpx.Client(timeout=15, event_hooks={"request": [name_the_balancer]})


def puts(sb: SandboxServer, uid: str) -> int:
    return sum(1 for e in sb.request_log if e.method == "PUT" and uid in e.path + e.query)


async def test_a_sign_in_started_on_one_replica_comes_back_to_another(
    hosted: tuple[Cluster, SandboxServer, str, dict[str, Any]]
) -> None:
    c, sb, idp, _ = hosted
    uid = open_task(sb)
    token = sign_in(idp, "helpdesk", c.lb + "/mcp")
    answer = await ask(c.lb, token, uid)
    link = re.search(re.escape(c.lb) + r"/approve/[\w-]+", answer["message"])
    assert answer["status"] == "approval_required" and link, answer
    with browser(c) as person:
        started = person.get(at(link.group(0), c.replica(1)))  # the sign-in begins on replica 1
        assert started.status_code == 303
        back = browse(person, started.headers["location"], "helpdesk", until="/approve/callback")
        arrived = person.get(at(back, c.replica(2)))  # the provider sends the person back to replica 2
        assert arrived.status_code == 303, arrived.text
        page = person.get(at(link.group(0), c.replica(3)))  # the page itself on replica 3
        assert page.status_code == 200 and "Asked for by <strong>you</strong>" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        done = person.post(at(link.group(0), c.replica(1)), data={"csrf": csrf.group(1), "action": "approve"},
                           headers={"Origin": c.lb})
        assert done.status_code == 200 and 'id="status">approved<' in done.text
        again = person.get(at(back, c.replica(3)))  # the same sign-in replayed on yet another replica
        assert again.status_code == 400
    assert puts(sb, uid) == 0
    assert (await ask(c.lb, token, uid))["status"] == "applied" and puts(sb, uid) == 1
    audit = c.audit()  # the one audit all replicas share, in Redis
    trail = [x["outcome"] for x in audit if x["arguments"].get("uid") == uid]
    assert trail == ["approval_required", "attempt", "succeeded"], trail
    assert any(x["outcome"] == "page_approved" and x["approved_by"]["sub"] == "u-helpdesk" for x in audit)


async def test_a_replica_killed_mid_sign_in_loses_nothing(
    hosted: tuple[Cluster, SandboxServer, str, dict[str, Any]]
) -> None:
    c, sb, idp, _ = hosted
    uid = open_task(sb)
    token = sign_in(idp, "helpdesk", c.lb + "/mcp")
    link = re.search(re.escape(c.lb) + r"/approve/[\w-]+", (await ask(c.lb, token, uid))["message"])
    assert link
    with browser(c) as person:
        started = person.get(at(link.group(0), c.replica(1)))
        back = browse(person, started.headers["location"], "helpdesk", until="/approve/callback")
        c.run("kill-replica", "1")  # the replica that began the sign-in is gone before the person comes back
        try:
            arrived = person.get(at(back, c.lb))
            assert arrived.status_code == 303, arrived.text
            page = person.get(at(link.group(0), c.lb))
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert page.status_code == 200 and csrf, page.text
            c.run("kill-replica", "2")  # a restart of the replica holding nothing: the page session lives on
            c.run("start-replica", "2")
            done = person.post(at(link.group(0), c.replica(2)), data={"csrf": csrf.group(1), "action": "approve"},
                               headers={"Origin": c.lb})
            assert done.status_code == 200 and 'id="status">approved<' in done.text
        finally:
            c.run("start-replica", "1")
    assert (await ask(c.lb, token, uid))["status"] == "applied" and puts(sb, uid) == 1


@pytest.mark.skipif(shutil.which("chromium") is None and not __import__("os").environ.get("CI"),
                    reason="Chromium is not installed")
async def test_helpdesk_change_approved_in_chromium_across_replicas(
    hosted: tuple[Cluster, SandboxServer, str, dict[str, Any]]
) -> None:
    from playwright.async_api import async_playwright

    from tests.helpers import launch_chromium

    c, sb, idp, _ = hosted
    uid = open_task(sb)
    token = sign_in(idp, "helpdesk", c.lb + "/mcp")
    link = re.search(re.escape(c.lb) + r"/approve/[\w-]+", (await ask(c.lb, token, uid))["message"])
    assert link
    served: dict[str, str] = {}
    async with async_playwright() as pw:
        chromium = await launch_chromium(pw)
        page = await chromium.new_page()

        def note(response: Any) -> None:  # which replica answered each step (HAProxy's X-Served-By)
            path = urlsplit(response.url).path
            if path.startswith("/approve/"):
                served.setdefault("callback" if path.endswith("/callback") else "start", response.headers.get(
                    "x-served-by", "?"))

        page.on("response", note)
        await page.goto(link.group(0))
        await page.wait_for_selector("#login-form")
        await page.fill("#username", "helpdesk")
        await page.fill("#password", "helpdesk-pw")
        await page.click("#submit")
        await page.wait_for_selector("#who")
        assert "Hana Helpdesk" in await page.inner_text("#who")
        await page.click("#approve")
        await page.wait_for_selector("#status")
        assert (await page.inner_text("#status")) == "approved"
        await chromium.close()
    assert served["start"] != served["callback"], served  # begun on one replica, finished on another
    assert (await ask(c.lb, token, uid))["status"] == "applied" and puts(sb, uid) == 1


async def test_members_under_load_across_replicas_see_only_themselves(
    hosted: tuple[Cluster, SandboxServer, str, dict[str, Any]], tmp_path: Path
) -> None:
    c, _, idp, accounts = hosted
    members = {name: a for name, a in accounts.items() if name.startswith("m")}
    assert len(members) == MEMBERS
    tokens = {name: sign_in(idp, name, c.lb + "/mcp") for name in members}
    facts = {name: {a["uri"], a["email"], a["uri"].rstrip("/").rsplit("/", 1)[1]} for name, a in members.items()}
    totals = {"calls": 0, "refused": 0, "leaks": 0}
    leaks: list[tuple[str, str]] = []
    rounds = 8

    async def member(name: str) -> None:
        others = set().union(*(f for n, f in facts.items() if n != name))
        mine = members[name]
        async with hosted_session(c.lb, tokens[name]) as client:
            for n in range(rounds):
                other = sorted(others)[n % len(others)]
                calls: list[tuple[str, dict[str, Any], bool]] = [
                    ("my_membership", {}, False), ("my_bookings", {"when": "all"}, False),
                    ("my_membership", {"uri": other}, True), ("my_bookings", {"email": other}, True),
                    ("upcoming_events", {"person": other}, True),
                ]
                for tool, args, refuse in calls:
                    result = await client.call_tool(tool, args)
                    text = result.model_dump_json()
                    totals["calls"] += 1
                    if refuse:
                        assert result.is_error, (name, tool, args)
                        totals["refused"] += 1
                    elif tool == "my_membership":
                        assert mine["uri"] in text, (name, text[:300])
                    found = [o for o in others if o in text and o not in json.dumps(args)]
                    leaks.extend((name, o) for o in found)

    async with anyio.create_task_group() as tg:
        for name in members:
            tg.start_soon(member, name)
    totals["leaks"] = len(leaks)
    print(f"\nmember isolation under load across {c.replicas} replicas: {totals['calls']} calls, "
          f"{totals['refused']} refused, {totals['leaks']} leaks ({MEMBERS} members at once)")
    assert leaks == [] and totals["calls"] == MEMBERS * rounds * 5 and totals["refused"] == MEMBERS * rounds * 3
    targets = [c.replica(i).removeprefix("http://") for i in range(1, c.replicas + 1)]
    with prometheus(targets, tmp_path) as query:
        import time

        expr = 'sum(sheepcrm_mcp_tool_calls_total{profile="member",tool="my_bookings"})'
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                found = query(expr)
            except httpx.HTTPError:
                found = []
            if found and float(found[0]["value"][1]) >= MEMBERS * rounds * 2:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("prometheus never counted the members' calls")
        spread = query('sheepcrm_mcp_tool_calls_total{profile="member",tool="my_bookings"}')
        assert len(spread) >= 2  # more than one replica answered members


async def test_redis_down_refuses_writes_and_sign_ins_say_why_reads_go_on(
    hosted: tuple[Cluster, SandboxServer, str, dict[str, Any]]
) -> None:
    c, sb, idp, _ = hosted
    uid = open_task(sb)
    helpdesk = sign_in(idp, "helpdesk", c.lb + "/mcp")
    member = sign_in(idp, "m0", c.lb + "/mcp")
    link = re.search(re.escape(c.lb) + r"/approve/[\w-]+", (await ask(c.lb, helpdesk, uid))["message"])
    assert link
    c.run("stop-redis")
    try:
        async with hosted_session(c.lb, helpdesk) as client:
            write = await client.call_tool("update_task", {"uid": open_task(sb), "action": "complete"})
            read = await client.call_tool("get_task", {"uid": uid})
        assert write.is_error and "Redis" in str(write.content) and not read.is_error
        async with hosted_session(c.lb, member) as client:
            mine = await client.call_tool("my_membership", {})
        assert not mine.is_error
        with browser(c) as person:
            opened = person.get(at(link.group(0), c.lb))
            assert opened.status_code == 503 and "Redis" in opened.text, opened.text
    finally:
        c.run("start")
    with browser(c) as person:  # back: the approval waited in Redis, and signing in works again
        assert person.get(at(link.group(0), c.lb)).status_code == 303
