"""The approval page for clients without elicitation, exercised over real HTTP and in a real browser.

The server opens the person's browser at a one-time launch link (tests capture it as `client.opened`:
that link is for the person, never the model); the first visit binds the page to that browser.
"""

from __future__ import annotations

import html
import os
import re
import stat
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import sheepcrm_mcp.server.approvals.page as approval_page
import sheepcrm_mcp.server.approvals.pending as pending
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.approvals.store import ApprovalStore
from tests.helpers import (
    CHROMIUM,
    ask,
    audit_lines,
    check_launch_contest,
    launch_chromium,
    launch_link,
    person_decides,
    puts,
    task_status,
)


class Browser:
    """The person's browser: keeps its cookies, follows the launch link's redirect."""

    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=True, timeout=10)
        self.page_url = ""

    def open(self, launch: str) -> httpx.Response:
        response = self.http.get(launch)
        self.page_url = str(response.url)
        return response

    def parts(self) -> tuple[str, str]:
        """The page's origin and its CSRF token."""
        html = self.http.get(self.page_url).text
        match = re.search(r'name="csrf" value="([^"]+)"', html)
        assert match, html
        origin = re.match(r"https?://[^/]+", self.page_url)
        assert origin
        return origin.group(0), match.group(1)

    def decide(self, action: str, *, origin: str | None = None, csrf: str | None = None,
               extra: dict[str, str] | None = None) -> httpx.Response:
        real_origin, real_csrf = self.parts()
        headers = {"Origin": origin if origin is not None else real_origin}
        if origin == "":
            headers = {}
        data = {"action": action, "csrf": csrf if csrf is not None else real_csrf, **(extra or {})}
        return self.http.post(self.page_url, data=data, headers=headers)

    def open_file(self, target: str) -> httpx.Response:
        """Open the private launch file the server opened a browser on, as a browser does: post its form (from a
        file, Origin: null), then follow the page's refresh to the approval page."""
        text = Path(urlsplit(target).path).read_text()
        action = re.search(r'action="([^"]+)"', text)
        token = re.search(r'name="launch" value="([^"]+)"', text)
        assert action and token, text
        posted = self.http.post(html.unescape(action.group(1)), data={"launch": html.unescape(token.group(1))},
                                headers={"Origin": "null"})
        refresh = re.search(r'content="0;url=([^"]+)"', posted.text)
        if refresh is None:
            return posted
        self.page_url = str(posted.url.join(html.unescape(refresh.group(1))))
        return self.http.get(self.page_url)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_approve_then_the_same_call_runs_once(sandbox: SandboxServer, connect: Any, mode: str) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    async with connect(sandbox, mode=mode) as client:
        first = await ask(client, args)
        assert first["status"] == "approval_required" and len(client.opened) == 1
        browser = Browser()
        page = browser.open(client.opened[-1])
        assert page.status_code == 200 and "Call about renewal" in page.text
        assert "&quot;open&quot; → &quot;done&quot;" in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert browser.decide("approve").status_code == 200
        assert task_status(sandbox, uid) == "open" and puts(sandbox) == 0  # approving alone writes nothing
        second = await ask(client, args)
        assert second["status"] == "applied" and task_status(sandbox, uid) == "done" and puts(sandbox) == 1
        # the approval is spent: reopen by hand, and the same request needs a new approval
        sandbox.store.uncomplete_task(uid)
        third = await ask(client, args)
        assert third["status"] == "approval_required" and len(client.opened) == 2
        assert client.opened[1] != client.opened[0]
    assert puts(sandbox) == 1


async def test_reject(sandbox: SandboxServer, connect: Any) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        await ask(client, {"uid": uid, "action": "complete"})
        person = Browser()
        person.open(client.opened[-1])
        answer = person.decide("reject")
        assert answer.status_code == 200 and "rejected" in answer.text
        again = await ask(client, {"uid": uid, "action": "complete"})
        # Once the assistant has been told, the page still says rejected (it said "approved and made" before).
        assert 'id="status">rejected<' in person.http.get(person.page_url).text
    assert again["status"] == "not_approved" and "rejected" in again["message"]
    assert task_status(sandbox, uid) == "open" and puts(sandbox) == 0


async def test_changed_arguments_need_a_new_approval(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    async with connect(sandbox) as client:
        await ask(client, {"uri": jane, "phone": "+44 1111"})
        assert person_decides(client.opened[-1]).status_code == 200
        other = await ask(client, {"uri": jane, "phone": "+44 2222"})
    assert other["status"] == "approval_required" and puts(sandbox) == 0


async def test_record_changed_after_approval_needs_a_new_one(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    async with connect(sandbox) as client:
        await ask(client, {"uri": jane, "phone": "+44 1111"})
        assert person_decides(client.opened[-1]).status_code == 200
        sandbox.store.update(jane, {"postal_code": "ZZ1 1ZZ"}, message="someone else")
        again = await ask(client, {"uri": jane, "phone": "+44 1111"})
    assert again["status"] == "approval_required" and puts(sandbox) == 0


async def test_expired_approval(sandbox: SandboxServer, connect: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        await ask(client, {"uid": uid, "action": "complete"})
        assert person_decides(client.opened[-1]).status_code == 200
        monkeypatch.setattr(pending, "TTL_SECONDS", 0.0)
        again = await ask(client, {"uid": uid, "action": "complete"})
        assert again["status"] == "not_approved" and "expired" in again["message"]
        monkeypatch.setattr(pending, "TTL_SECONDS", 600.0)
        await ask(client, {"uid": uid, "action": "complete"})
        browser = Browser()
        browser.open(client.opened[-1])
        origin, csrf = browser.parts()
        monkeypatch.setattr(pending, "TTL_SECONDS", 0.0)
        time.sleep(0.01)
        late = browser.http.post(browser.page_url, data={"action": "approve", "csrf": csrf}, headers={"Origin": origin})
        assert late.status_code == 410
    assert task_status(sandbox, uid) == "open" and puts(sandbox) == 0


@pytest.mark.parametrize(
    ("origin", "csrf", "extra", "action", "code"),
    [
        ("http://evil.example", None, None, "approve", 403),
        ("", None, None, "approve", 403),
        (None, "forged", None, "approve", 403),
        (None, "", None, "approve", 403),
        (None, None, {"confirm": "yes"}, "approve", 400),  # extra fields are refused
        (None, None, None, "Approve", 400),  # only the exact button values count
        (None, None, None, "1", 400),
    ],
)
async def test_forged_submissions_are_refused(
    sandbox: SandboxServer, connect: Any, origin: str | None, csrf: str | None, extra: dict[str, str] | None,
    action: str, code: int,
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        await ask(client, {"uid": uid, "action": "complete"})
        browser = Browser()
        browser.open(client.opened[-1])
        assert browser.decide(action, origin=origin, csrf=csrf, extra=extra).status_code == code
        again = await ask(client, {"uid": uid, "action": "complete"})
    assert again["status"] == "approval_required" and puts(sandbox) == 0


async def test_page_answers_only_the_browser_that_opened_it(sandbox: SandboxServer, connect: Any) -> None:
    """A launch link works once; the page and its form answer only the browser that used it; every
    wrong address, host or cookie gets the same 404."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        await ask(client, {"uid": uid, "action": "complete"})
        launch = client.opened[-1]
        assert launch.startswith("http://127.0.0.1:")
        base, secret, approval_id, _, token = launch.rsplit("/", 4)
        assert len(secret) >= 24 and len(approval_id) >= 16 and len(token) >= 24
        person = Browser()
        assert person.open(launch).status_code == 200
        page = person.page_url
        assert "/open/" not in page
        port = base.rsplit(":", 1)[1]
        misses = [  # (the launch link used again is a contest: see test_a_model_browser_opening_the_launch_first...)
            httpx.get(page),  # the page without the person's cookie
            httpx.post(page, data={"action": "approve", "csrf": "x"}, headers={"Origin": base}),
            httpx.get(f"{base}/wrong-secret/{approval_id}"),
            httpx.get(f"{base}/{secret}/unknown"),
            httpx.get(f"{base}/"),
            httpx.get(f"{base}/{secret}"),
            httpx.delete(page),
            person.http.get(page, headers={"Host": f"localhost:{port}"}),  # DNS rebinding: a foreign Host
            person.http.get(page, headers={"Host": f"evil.example:{port}"}),
        ]
        assert [r.status_code for r in misses] == [404] * len(misses)
        assert len({r.text for r in misses}) == 1  # all alike: nothing tells a prober what exists
        assert person.http.get(page).status_code == 200
        # The same call repeated while the person decides ("did it work?") opens nothing new: their tab stays valid.
        again = await ask(client, {"uid": uid, "action": "complete"})
        assert again["status"] == "approval_required" and client.opened == [launch]
        assert "already open" in again["message"] and "Wait until the person tells you" in again["message"]
        assert person.http.get(page).status_code == 200
        assert person.decide("approve").status_code == 200
        done = await ask(client, {"uid": uid, "action": "complete"})
    assert done["status"] == "applied" and puts(sandbox) == 1


async def test_a_repeat_before_the_first_tab_loads_keeps_that_tab(sandbox: SandboxServer, connect: Any) -> None:
    """The assistant repeats the write before the person's browser has loaded the first tab (it is still starting,
    or the tab waits behind a profile picker). Before, the repeat wrote a new launch file with a new one-time token
    and opened a second tab: the first tab then showed "Not found", and whichever tab loaded last took the page from
    the other. Now the repeat opens nothing and the first tab, loading late, is the one that works."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    async with connect(sandbox) as client:
        first = await ask(client, args)
        assert first["status"] == "approval_required" and len(client.opened) == 1
        for _ in range(2):  # "did it work?", twice, before the tab has loaded
            again = await ask(client, args)
            assert again["status"] == "approval_required" and "already open" in again["message"]
            assert "Wait until the person tells you they have approved or rejected it" in again["message"]
        assert len(client.opened) == 1  # no second tab
        person = Browser()
        page = person.open(client.opened[0])  # the first tab loads now
        assert page.status_code == 200 and "&quot;open&quot; → &quot;done&quot;" in page.text
        # The page names the bucket and the clock time the request expires, as the hosted page does.
        bucket = client.runtime.client.bucket
        assert f"in sheepCRM bucket <strong>{bucket}</strong>" in page.text, page.text
        assert re.search(r"this request expires at <strong>\d\d:\d\d \(", page.text), page.text
        assert person.decide("approve").status_code == 200
        assert puts(sandbox) == 0
        done = await ask(client, args)
    assert done["status"] == "applied" and task_status(sandbox, uid) == "done" and puts(sandbox) == 1


async def test_a_launch_no_browser_showed_is_tried_again(sandbox: SandboxServer, connect: Any) -> None:
    """When the opener fails, no tab holds the launch: the repeat opens one (and the unused file is gone)."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    tried: list[str] = []
    async with connect(sandbox) as client:
        client.runtime.page.opener = lambda target: tried.append(target) and False
        refused = await client.call_tool("update_task", args)
        assert refused.is_error and "cannot open a browser" in str(refused.content)
        assert len(tried) == 1 and not Path(tried[0].removeprefix("file://")).exists()
        client.runtime.page.opener = lambda target: client.opened.append(launch_link(target)) is None
        assert (await ask(client, args))["status"] == "approval_required" and len(client.opened) == 1
        assert person_decides(client.opened[0]).status_code == 200
        done = await ask(client, args)
    assert done["status"] == "applied" and puts(sandbox) == 1


# --- a model with a browser that runs as the person ---------------------------------------------------------------
# It cannot list the launch folder (test_launch_secrecy.py), but it may find a launch file's exact name elsewhere (the
# opener's command line in /proc) and open it before the person's browser, still starting, does. Before, the file was
# deleted on its first use: the model's browser took the page and approved, and the person's browser showed "file
# not found", with nothing to tell them. Now the file stays until the approval expires; its token presented a second
# time cancels an approval not yet spent, tells the person, and is on record.


def opened_files(client: Any) -> list[str]:
    """The launch files (file:// addresses) the server opens "the person's browser" on, from now on."""
    files: list[str] = []
    client.runtime.page.opener = lambda target: files.append(target) is None
    return files


async def test_the_launch_folder_cannot_be_listed_and_a_launch_file_has_an_unguessable_name(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the folder was 0700: the person's own browser (and a model's browser running as them) listed it at
    file:///.../approve/ and opened the newest file. Now it is 0300 (create and open by exact name, never list), even
    when an older version left it 0700, and each name holds 128 random bits. Real Chromium, as the folder's owner,
    is shown the same in test_launch_secrecy.py."""
    monkeypatch.setattr("sheepcrm_mcp.server.approvals.page.account_home", lambda: tmp_path / "home")
    older = tmp_path / "home" / ".cache" / "sheepcrm-mcp" / "approve"
    older.mkdir(mode=0o700, parents=True)
    async with connect(sandbox) as client:
        files = opened_files(client)
        await ask(client, {"uid": sandbox.store.demo_facts()["my_open_task_uid"], "action": "complete"})
        path = Path(urlsplit(files[0]).path)
        assert path.parent == older
        info = path.parent.stat()
        assert stat.S_IMODE(info.st_mode) == 0o300 and info.st_uid == os.getuid()  # write and enter, never list
        assert re.fullmatch(r"[0-9a-f]{32}\.html", path.name)  # 128 random bits
        assert 'name="launch"' in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600  # opened by name
        if os.geteuid() != 0:  # root reads any folder; the Chromium test runs as another account
            with pytest.raises(PermissionError):
                os.listdir(path.parent)


async def test_a_model_browser_opening_the_launch_first_gets_the_approval_cancelled(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    async with connect(sandbox) as client:
        files = opened_files(client)
        assert (await ask(client, args))["status"] == "approval_required" and len(files) == 1
        model = Browser()
        assert model.open_file(files[0]).status_code == 200  # first: the model's browser, which found the file
        origin, csrf = model.parts()
        person = Browser()
        told = person.open_file(files[0])  # the person's browser, loading the same file moments later
        assert told.status_code == 409 and 'id="status">contested<' in told.text, told.text
        assert "opened in two places" in told.text and "nothing was changed" in told.text
        assert 'name="csrf"' not in told.text  # no form: nothing to approve here
        tried = model.http.post(model.page_url, data={"action": "approve", "csrf": csrf}, headers={"Origin": origin})
        assert 'id="status">contested<' in tried.text and "opened in two places" in tried.text  # the first tab too
        again = await ask(client, args)
        assert again["status"] == "approval_required" and "must be asked again" in again["message"]
        assert len(files) == 2 and files[1] != files[0]  # a fresh approval, on a new page
        assert (await ask(client, args))["status"] == "approval_required" and len(files) == 2  # said once
        assert person_decides(launch_link(files[1])).status_code == 200  # the person, asked again, approves
        done = await ask(client, args)
    assert done["status"] == "applied" and puts(sandbox) == 1
    contested = [line for line in audit_lines(tmp_path) if line["outcome"] == "contested"]
    assert len(contested) == 1 and "pending" in contested[0]["detail"]


async def test_a_decision_waits_out_the_hold_and_the_persons_browser_cancels_it(
    sandbox: SandboxServer, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's browser approves the moment it has the page; the page holds that decision for HOLD_SECONDS after
    the launch's first use, and the person's browser, opening the file within them, cancels it. Before, the model's
    decision stood at once."""
    monkeypatch.setattr(approval_page, "HOLD_SECONDS", 1.5)
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    async with connect(sandbox) as client:
        files = opened_files(client)
        await ask(client, args)
        model = Browser()
        model.open_file(files[0])
        origin, csrf = model.parts()
        answers: list[httpx.Response] = []
        clicking = threading.Thread(target=lambda: answers.append(model.http.post(
            model.page_url, data={"action": "approve", "csrf": csrf}, headers={"Origin": origin})))
        clicking.start()
        time.sleep(0.3)
        assert clicking.is_alive()  # held, not yet taken
        told = Browser().open_file(files[0])
        clicking.join(10)
        assert told.status_code == 409 and "opened in two places" in told.text
        assert 'id="status">contested<' in answers[0].text, answers[0].text
        again = await ask(client, args)
    assert again["status"] == "approval_required" and "must be asked again" in again["message"]
    assert puts(sandbox) == 0 and task_status(sandbox, uid) == "open"


@pytest.mark.parametrize("applied", [False, True])
async def test_the_persons_browser_arriving_after_the_decision_is_told(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, applied: bool
) -> None:
    """The model's browser approved before the person's browser loaded. Not yet applied: the person's browser cancels
    it and the write never happens. Already applied: the person is told plainly, with what to do, and it is on record.
    Before, their browser found no file."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    async with connect(sandbox) as client:
        files = opened_files(client)
        await ask(client, args)
        model = Browser()
        model.open_file(files[0])
        assert 'id="status">approved<' in model.decide("approve").text
        if applied:
            done = await ask(client, args)
            assert done["status"] == "applied" and puts(sandbox) == 1 and done["undo"]
        told = Browser().open_file(files[0])
        assert told.status_code == 409, told.text
        if applied:
            assert "already approved from another browser window" in told.text and "undo it" in told.text
            undo = re.search(r"The call that reverses it: <code>([^<]+)</code>", told.text)  # the answer's undo
            assert undo and html.unescape(undo.group(1)).startswith(f"{done['undo']['tool']} with ")
            assert all(str(v) in html.unescape(undo.group(1)) for v in done["undo"]["arguments"].values())
            assert "&quot;open&quot; → &quot;done&quot;" in told.text  # what was changed, to set it back
        else:
            assert "had just been approved in another browser window" in told.text and "cancelled" in told.text
            again = await ask(client, args)
            assert again["status"] == "approval_required" and "must be asked again" in again["message"]
    assert puts(sandbox) == (1 if applied else 0)
    contested = [line for line in audit_lines(tmp_path) if line["outcome"] == "contested"]
    assert len(contested) == 1 and ("used" if applied else "approved") in contested[0]["detail"]


async def test_a_launch_token_presented_twice_is_a_contest_in_the_store() -> None:
    await check_launch_contest(ApprovalStore(), "memory")


async def test_store_approvals_are_single_use() -> None:
    store = ApprovalStore()
    item = await store.create(pending.ApprovalRequest("update_task", "args", "state", "summary", ["line"]))
    assert await store.consume("update_task", "args", "state") is None  # not approved yet
    cookie = await store.launch(item.id, await store.new_launch(item.id))
    assert cookie is not None
    assert await store.decide(item.id, "another-browser", approve=True) == "browser"
    assert await store.decide(item.id, cookie, approve=True) == "approved"
    assert await store.consume("update_task", "args", "other-state") is None
    assert await store.consume("update_task", "args", "state") is item
    assert await store.consume("update_task", "args", "state") is None


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed here")
async def test_approval_page_in_a_real_browser(sandbox: SandboxServer, connect: Any, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        await ask(client, {"uid": uid, "action": "complete"})
        async with async_playwright() as pw:
            browser = await launch_chromium(pw)
            page = await browser.new_page()
            await page.goto(client.opened[-1])  # where the server sent the person's browser
            assert '"open" → "done"' in await page.inner_text("body")
            await page.screenshot(path=str(tmp_path / "approval.png"))
            await page.click("#approve")
            await page.wait_for_selector("#status")
            assert (await page.inner_text("#status")) == "approved"
            assert task_status(sandbox, uid) == "open"
            done = await ask(client, {"uid": uid, "action": "complete"})
            assert done["status"] == "applied" and task_status(sandbox, uid) == "done"
            # Another browser (another profile, or a model's own browser) gets no page from the same links; the launch
            # link used again is told it was already approved elsewhere.
            stranger = await browser.new_context()
            probe = await stranger.new_page()
            response = await probe.goto(page.url)
            assert response is not None and response.status == 404
            response = await probe.goto(client.opened[-1])
            assert response is not None and response.status == 409
            assert "already approved from another browser window" in await probe.inner_text("body")
            await browser.close()
    assert puts(sandbox) == 1
