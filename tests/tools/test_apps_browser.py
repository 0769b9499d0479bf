"""The MCP Apps as a host renders them: real Chromium, a test host built on @modelcontextprotocol/ext-apps'
AppBridge (.ci/apps-host, bundled by .ci/apps-host.sh), a real MCP session over streamable HTTP to the real
server, and the sandbox behind it.

The host page is served on the server's own origin (Playwright answers /host/*; everything else reaches the
server), holds the session, renders each tool's ui:// resource in an iframe sandboxed to an opaque origin
under the CSP the resource declares, and shows the server's elicitations (a write's approval) to the person
outside the app. Tests act as the person: search, select, tap, approve.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.records import fmt_dt, now_utc
from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, CHROMIUM, HTTP_TOKEN, REPO, launch_chromium, person_decides, serve_http

HOST = REPO / ".ci" / "apps-host"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
DOCS = REPO / "docs"

pytestmark = [
    pytest.mark.slow,  # a browser, a served app and a host page each: a few seconds per test
    pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed here"),
]

# Markup and script planted in CRM names: if any of it ran, it would post {xss: ...} to the host page.
PAYLOADS = (
    "<img src=x onerror=\"parent.postMessage({xss:'img'},'*')\">Ada",
    "<script>parent.postMessage({xss:'script'},'*')</script>Bea",
    "\"><svg onload=\"parent.postMessage({xss:'svg'},'*')\">Cy",
)


@pytest.fixture(scope="module")
def host_bundle() -> Path:
    """The test host, installed and bundled once by the project's own script."""
    subprocess.run(["bash", str(REPO / ".ci" / "apps-host.sh"), "--install"], cwd=REPO, check=True, timeout=600)
    bundle = HOST / "dist" / "host.js"
    assert bundle.is_file()
    return bundle


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await launch_chromium(pw)
        yield chromium
        await chromium.close()


@asynccontextmanager
async def host_page(
    browser: Any, bundle: Path, sb: SandboxServer, tmp: Path, *, viewport: dict[str, int] = PHONE, apps: bool = True,
    elicitation: bool = True, **settings: Any,
) -> AsyncIterator[Any]:
    """The test host connected to a real server over HTTP; yields the page (its tools as `page.tools`)."""
    settings.setdefault("http_client_approvals", True)  # the host is the person's own app: its form asks them
    with serve_http(sb, tmp, **settings) as base:
        context = await browser.new_context(viewport=viewport)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)  # frames too

        async def serve_host(route: Any) -> None:
            name = route.request.url.rsplit("/", 1)[-1]
            if name == "host.js":
                await route.fulfill(body=bundle.read_bytes(), content_type="text/javascript")
            else:
                await route.fulfill(body=(HOST / "host.html").read_bytes(), content_type="text/html")

        await page.route(f"{base}/host/**", serve_host)
        await page.goto(f"{base}/host/index.html")
        await page.wait_for_function("window.hostReady === true")
        page.tools = await page.evaluate(  # type: ignore[attr-defined]
            "([token, apps, elicitation]) => host.connect({token, apps, elicitation})", [HTTP_TOKEN, apps, elicitation]
        )
        page.errors = errors  # type: ignore[attr-defined]
        page.opened = base.opened  # type: ignore[attr-defined]  # approval links the server would open for the person
        try:
            yield page
        finally:
            await context.close()


async def run_tool(page: Any, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The model calls `name`; the host renders its app (or its text when it has none)."""
    out: dict[str, Any] = await page.evaluate("([n, a]) => host.runTool(n, a)", [name, args])
    return out


def app(page: Any) -> Any:
    return page.frame_locator("iframe#app")


def puts(sb: SandboxServer) -> list[str]:
    return [r.path for r in sb.request_log if r.method == "PUT"]


def add_sessions(
    sb: SandboxServer, event_uid: str, n: int, names: tuple[str, ...] = (), statuses: dict[str, str] | None = None
) -> list[str]:
    """`n` more attendance sessions (status accepted, or `statuses` by name) at an event, the last ones named
    `names`; their person uris."""
    store = sb.store
    event = store.uri("booking", event_uid)
    created = fmt_dt(now_utc() - timedelta(days=3))
    ticket = next(s.data for s in store.attendance(event) if s.data.get("ticket_ref"))
    people, rows = [], []
    for i in range(n):
        uid, person = uuid.uuid4().hex[:24], f"/{store.bucket}/person/{uuid.uuid4().hex[:24]}/"
        name = names[i - n + len(names)] if i >= n - len(names) else f"Visitor {i:03d} Example"
        data = {
            "uid": uid, "uri": f"/{store.bucket}/attendance/{uid}/", "attendee_name": name, "display_value": name,
            "attendee_email": f"visitor{i:03d}@example.org", "created": created, "last_updated": created,
            "guest": False, "person_ref": person, "record_state": "updated",
            "status": (statuses or {}).get(name, "accepted"),
            "ticket": ticket["ticket"], "ticket_ref": ticket["ticket_ref"], "booking_ref": event,
        }
        rows.append((data["uri"], "attendance", uid, name, event, f"{900000 + i:06d}", created, created, "updated",
                     json.dumps(data)))
        people.append(person)
    with store.transaction() as db:
        db.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    return people


def status_of(sb: SandboxServer, event_uid: str, person: str) -> set[str]:
    return {
        str(s.data.get("status")) for s in sb.store.attendance(sb.store.uri("booking", event_uid))
        if s.data.get("person_ref") == person and not s.data.get("guest")
    }


async def no_injection_ran(page: Any) -> None:
    assert await page.evaluate("host.xss") == [], "planted markup executed"
    assert page.errors == [], page.errors


async def shot(page: Any, tmp: Path, name: str) -> None:
    """A screenshot of the host's conversation; UPDATE_SCREENSHOTS=1 also writes it to docs/ (the README shows them)."""
    await page.wait_for_timeout(500)  # the app reports its new size; the host resizes the frame
    await page.locator("#chat").screenshot(path=str(tmp / name))  # the conversation: the call and its app
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copy(tmp / name, DOCS / name)


# ---- the check-in board ------------------------------------------------------------------


async def test_check_in_board_marks_people_attended_through_the_gate(
    sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    """A volunteer at the door: 300 sessions on a phone, search, select two, mark attended, approve; the PUTs
    happen once each, only after the approval; the board shows the new state; one undo restores one person."""
    event = sandbox.store.demo_facts()["running_event_uid"]
    already = len(sandbox.store.attendance(sandbox.store.uri("booking", event)))
    added = add_sessions(sandbox, event, 300 - already, names=PAYLOADS)
    async with host_page(browser, host_bundle, sandbox, tmp_path) as page:
        assert {"name": "list_attendees", "ui": "ui://sheepcrm/check-in.html"} in page.tools
        shown = await run_tool(page, "list_attendees", {"uid": event, "limit": 10})
        assert shown["rendered"] and shown["csp"] == {
            "connectDomains": [], "resourceDomains": [], "frameDomains": [], "baseUriDomains": []
        }
        board = app(page)
        await board.locator("#summary").filter(has_text="300 session(s)").wait_for(timeout=20_000)
        assert await board.locator(".row").count() == 300
        assert await page.evaluate("document.getElementById('app').contentDocument") is None  # opaque origin
        # Phone width: nothing wider than the frame, rows big enough to tap.
        frame = page.frames[1]
        assert await frame.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert min(await board.locator(".row label").evaluate_all("ls => ls.map(l => l.offsetHeight)")) >= 44
        # Injected names are shown as text, and none of it ran.
        await board.locator(".row .name", has_text="<img src=x onerror=").wait_for()
        assert await frame.evaluate("document.querySelectorAll('img, svg').length + document.scripts.length") == 1
        await no_injection_ran(page)

        await board.locator("#search").fill("visitor 007")
        assert await board.locator(".row:not([hidden])").count() == 1
        await board.locator(".row:not([hidden]) input[type=checkbox]").check()
        await board.locator("#search").fill("visitor 011")
        await board.locator(".row:not([hidden]) input[type=checkbox]").check()
        await board.locator("#selected").filter(has_text="2 selected").wait_for()
        before = len(puts(sandbox))
        await board.locator("#mark-attended").click()

        approval = page.locator("#approval")
        await approval.wait_for(state="visible")
        preview = await page.locator("#approval-message").inner_text()
        assert "Visitor 007 Example" in preview and '"accepted" → "attended"' in preview
        assert len(puts(sandbox)) == before  # nothing written before the person approves
        await page.locator("#approval-tick").check()
        await page.locator("#approval-accept").click()

        await board.locator("#outcome-message").filter(has_text="done and read back").wait_for(timeout=20_000)
        assert len(puts(sandbox)) == before + 2  # once per person, after the approval
        for person in (added[7], added[11]):
            assert status_of(sandbox, event, person) == {"attended"}
        await board.locator("#summary").filter(has_text="300 session(s)").wait_for()
        await board.locator("#search").fill("visitor 007")
        row = board.locator(".row:not([hidden])")
        await row.locator(".outcome").filter(has_text="attended ✓").wait_for()
        assert await row.evaluate("r => r.closest('details').dataset.status") == "attended"  # the new state, read again
        await board.locator("#search").fill("visitor 0")
        await shot(page, tmp_path, "apps-check-in-phone.png")

        # Undo one person: the same gate again.
        await board.locator("#outcome-list li", has_text="Visitor 007").get_by_role("button", name="Undo").click()
        await approval.wait_for(state="visible")
        assert '"attended" → "accepted"' in await page.locator("#approval-message").inner_text()
        await page.locator("#approval-tick").check()
        await page.locator("#approval-accept").click()
        await board.locator("#outcome-message").filter(has_text="done and read back").wait_for(timeout=20_000)
        assert status_of(sandbox, event, added[7]) == {"accepted"}
        assert status_of(sandbox, event, added[11]) == {"attended"}
        assert len(puts(sandbox)) == before + 3
        await no_injection_ran(page)
        await _no_secrets(page, sandbox)


async def test_a_write_never_carries_a_selection_the_board_no_longer_shows(
    sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    """Two people marked attended, one of them already was: the outcome ends the selection, so the next search's
    No-show asks about (and writes) only the two people ticked for it."""
    event = sandbox.store.demo_facts()["running_event_uid"]
    brown, stone, hill, ford = add_sessions(
        sandbox, event, 4, names=("Leoric Brown", "Leoric Stone", "Isambard Hill", "Isambard Ford"),
        statuses={"Leoric Brown": "attended"},
    )
    async with host_page(browser, host_bundle, sandbox, tmp_path) as page:
        await run_tool(page, "list_attendees", {"uid": event})
        board = app(page)
        await board.locator("#summary").filter(has_text=re.compile(r"^\d+ session\(s\)$")).wait_for(timeout=20_000)
        await board.locator("#search").fill("leoric")
        for box in await board.locator(".row:not([hidden]) input[type=checkbox]").all():
            await box.check()
        await board.locator("#mark-attended").click()
        await page.locator("#approval").wait_for(state="visible")
        await page.locator("#approval-tick").check()
        await page.locator("#approval-accept").click()
        await board.locator("#outcome-list .badge", has_text="already attended").wait_for(timeout=20_000)
        await board.locator("#selected").filter(has_text="0 selected").wait_for()
        assert await board.locator(".row input[type=checkbox]:checked").count() == 0

        await board.locator("#search").fill("isambard")
        for box in await board.locator(".row:not([hidden]) input[type=checkbox]").all():
            await box.check()
        await board.locator("#selected").filter(has_text=re.compile(r"^2 selected$")).wait_for()
        await board.locator("#mark-no-show").click()
        await page.locator("#approval").wait_for(state="visible")
        preview = await page.locator("#approval-message").inner_text()
        assert "Isambard Hill" in preview and "Isambard Ford" in preview and "Leoric" not in preview
        await page.locator("#approval-tick").check()
        await page.locator("#approval-accept").click()
        await board.locator("#outcome-message").filter(has_text="done and read back").wait_for(timeout=20_000)
        assert status_of(sandbox, event, brown) == {"attended"} and status_of(sandbox, event, stone) == {"attended"}
        assert status_of(sandbox, event, hill) == {"no-show"} and status_of(sandbox, event, ford) == {"no-show"}


async def test_the_selected_count_says_how_many_are_not_shown(
    sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    event = sandbox.store.demo_facts()["running_event_uid"]
    add_sessions(sandbox, event, 2, names=("Leoric Brown", "Isambard Hill"))
    async with host_page(browser, host_bundle, sandbox, tmp_path) as page:
        await run_tool(page, "list_attendees", {"uid": event})
        board = app(page)
        await board.locator("#summary").filter(has_text=re.compile(r"^\d+ session\(s\)$")).wait_for(timeout=20_000)
        await board.locator("#search").fill("leoric")
        await board.locator(".row:not([hidden]) input[type=checkbox]").check()
        await board.locator("#search").fill("isambard")
        await board.locator("#selected").filter(has_text="1 selected (1 not shown)").wait_for()
        await board.locator("#clear").click()
        await board.locator("#selected").filter(has_text=re.compile(r"^0 selected$")).wait_for()


async def test_declining_the_approval_writes_nothing(
    sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    event = sandbox.store.demo_facts()["running_event_uid"]
    async with host_page(browser, host_bundle, sandbox, tmp_path) as page:
        await run_tool(page, "list_attendees", {"uid": event})
        board = app(page)
        await board.locator(".row input[type=checkbox]").first.check()
        await board.locator("#mark-no-show").click()
        await page.locator("#approval").wait_for(state="visible")
        await page.locator("#approval-decline").click()
        await board.locator("#outcome-list .badge", has_text="not approved").wait_for(timeout=20_000)
        assert puts(sandbox) == []
        # An app taken over (script run in its frame by hand) gets no further: an extra "approval" argument is
        # refused, and a plain call waits for the person like any other.
        person = await board.locator(".row").first.get_attribute("data-person")
        call = ("([uid, p, extra]) => "
                "bridge.callTool('set_attendance', {uid, person_uris: [p], status: 'attended', ...extra})")
        refused = await page.frames[1].evaluate(call, [event, person, {"confirm": True}])
        assert refused["isError"] and "unknown argument" in refused["content"][0]["text"]
        pending = asyncio.ensure_future(page.frames[1].evaluate(call, [event, person, {}]))
        await page.locator("#approval").wait_for(state="visible")
        assert puts(sandbox) == []
        await page.locator("#approval-decline").click()
        assert (await pending)["structuredContent"]["status"] == "not_approved"
        assert puts(sandbox) == []


async def test_without_form_elicitation_the_person_approves_on_the_page_then_tries_again(
    sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    """A host that cannot show the approval form: the board says approval is waiting (the server opened the
    approval page for the person, not for the app); after the person approves there, Try again writes once."""
    event = sandbox.store.demo_facts()["running_event_uid"]
    async with host_page(browser, host_bundle, sandbox, tmp_path, elicitation=False) as page:
        await run_tool(page, "list_attendees", {"uid": event})
        board = app(page)
        box = board.locator(".row input[type=checkbox]").first
        person = await box.evaluate("b => b.closest('.row').dataset.person")
        await box.check()
        await board.locator("#mark-attended").click()
        await board.locator("#outcome-list .badge", has_text="awaiting approval").wait_for(timeout=20_000)
        assert puts(sandbox) == [] and len(page.opened) == 1
        traffic = json.dumps(await page.evaluate("host.log"))
        assert page.opened[0] not in traffic and "/open/" not in traffic  # the app never sees the approval link
        assert person_decides(page.opened[0]).status_code == 200
        await board.locator("#again").click()
        await board.locator("#outcome-list .badge", has_text="attended ✓").wait_for(timeout=20_000)
        assert len(puts(sandbox)) == 1 and status_of(sandbox, event, person) == {"attended"}


async def test_read_only_board_has_no_write_controls(
    shared_sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    event = shared_sandbox.store.demo_facts()["running_event_uid"]
    async with host_page(browser, host_bundle, shared_sandbox, tmp_path, read_only=True) as page:
        assert "set_attendance" not in {t["name"] for t in page.tools}
        await run_tool(page, "list_attendees", {"uid": event})
        board = app(page)
        await board.locator(".row").first.wait_for()
        assert await board.locator("input[type=checkbox]").count() == 0
        assert await board.locator("#actions").is_hidden()
        assert await board.locator("#mark-attended").is_hidden()


# ---- the membership card and the renewals view --------------------------------------------


async def test_membership_card_shows_the_answer(
    shared_sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    facts = shared_sandbox.store.demo_facts()
    async with host_page(browser, host_bundle, shared_sandbox, tmp_path) as page:
        for who, status in ((facts["jane_uri"], "current"), (facts["lapsed_uri"], "lapsed"),
                            (facts["future_uri"], "future"), (facts["non_member_uri"], "none")):
            shown = await run_tool(page, "check_membership", {"uri": who})
            answer = shown["result"]["structuredContent"]
            assert answer["status"] == status
            card = app(page)
            badge = card.locator(".status")
            await badge.wait_for()
            assert await badge.get_attribute("data-status") == status
            body = await card.locator("#card").inner_text()
            for key in ("name", "plan", "end_date", "summary"):
                if answer.get(key):
                    assert str(answer[key]) in body, key
            if "days_left" in answer:
                assert str(answer["days_left"]) in await card.locator(".days").inner_text()
            if status == "current":
                await shot(page, tmp_path, "apps-membership-card-phone.png")
        await no_injection_ran(page)


async def test_renewals_view_groups_by_week_with_plan_and_email(
    shared_sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    async with host_page(browser, host_bundle, shared_sandbox, tmp_path, viewport=DESKTOP) as page:
        shown = await run_tool(page, "search_contacts", {"renewing_within_days": 60, "limit": 5})
        answer = shown["result"]["structuredContent"]
        view = app(page)
        await view.locator(".week").first.wait_for()
        if answer.get("next_cursor"):  # the view reads every page, so it shows more than the model's five
            await view.locator("#summary").filter(has_not_text="more not loaded").wait_for(timeout=20_000)
        rows = view.locator(".week li")
        first = answer["contacts"][0]
        item = view.locator(f".week li[data-uri='{first['uri']}']")
        assert first["name"] in await item.inner_text()
        if first.get("plan"):
            assert first["plan"] in await item.inner_text()
        if first.get("email"):
            assert first["email"] in await item.locator(".email").inner_text()
        assert await rows.count() >= len(answer["contacts"])
        headings = await view.locator(".week h2").all_inner_texts()
        assert all(h.startswith("Week of ") for h in headings)
        await shot(page, tmp_path, "apps-renewals-desktop.png")
        await no_injection_ran(page)


# ---- safe by construction ------------------------------------------------------------------


async def test_injected_markup_is_blocked_by_the_policy_too(
    shared_sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    """Even markup that reached the document (it cannot: every value is put on screen as text) would not run:
    the app's own policy runs only its own inline script, by hash."""
    facts = shared_sandbox.store.demo_facts()
    async with host_page(browser, host_bundle, shared_sandbox, tmp_path) as page:
        await run_tool(page, "check_membership", {"uri": facts["jane_uri"]})
        await app(page).locator(".status").wait_for()
        frame = page.frames[1]
        blocked = await frame.evaluate(
            """() => new Promise((resolve) => {
                 const seen = [];
                 document.addEventListener('securitypolicyviolation', (e) => seen.push(e.violatedDirective));
                 document.body.insertAdjacentHTML('beforeend',
                   '<img src=x onerror="parent.postMessage({xss:1},\\'*\\')">');
                 const s = document.createElement('script');
                 s.textContent = "parent.postMessage({xss:2},'*')";
                 document.body.append(s);
                 setTimeout(() => resolve(seen), 300);
               })"""
        )
        assert await page.evaluate("host.xss") == []
        assert {"script-src-attr", "script-src-elem"} <= set(blocked), blocked
        assert "img-src" in blocked  # and the image was not fetched either


async def test_a_client_without_apps_gets_text(
    shared_sandbox: SandboxServer, host_bundle: Path, browser: Any, tmp_path: Path
) -> None:
    facts = shared_sandbox.store.demo_facts()
    async with host_page(browser, host_bundle, shared_sandbox, tmp_path, apps=False) as page:
        assert all(t["ui"] is None for t in page.tools)
        shown = await run_tool(page, "check_membership", {"uri": facts["jane_uri"]})
        assert not shown["rendered"]
        assert json.loads(await page.locator("#text").inner_text()) == shown["result"]["structuredContent"]
        assert await page.locator("iframe").count() == 0


async def _no_secrets(page: Any, sb: SandboxServer) -> None:
    """Nothing secret crossed into an app: no API key, no bearer token, no approval address."""
    traffic = json.dumps(await page.evaluate("host.log"))
    assert traffic and '"ui/initialize"' in traffic
    for secret in (CANARY_KEY, HTTP_TOKEN, "/approve", "approval page"):
        assert secret not in traffic, secret
