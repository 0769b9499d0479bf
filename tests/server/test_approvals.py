"""The approval page for clients without elicitation, exercised over real HTTP and in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import sheepcrm_mcp.server.approvals as approvals
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store


def page_parts(url: str) -> tuple[str, str]:
    """The page's origin and its CSRF token."""
    html = httpx.get(url).text
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    origin = re.match(r"https?://[^/]+", url)
    assert origin
    return origin.group(0), match.group(1)


def decide(url: str, action: str, *, origin: str | None = None, csrf: str | None = None) -> httpx.Response:
    real_origin, real_csrf = page_parts(url)
    headers = {"Origin": origin if origin is not None else real_origin}
    if origin == "":
        headers = {}
    data = {"action": action, "csrf": csrf if csrf is not None else real_csrf}
    return httpx.post(url, data=data, headers=headers)


def status(sb: SandboxServer, uid: str) -> str:
    task = sb.store.get_record("task", uid)
    assert task is not None
    return Store.task_status(task)


def puts(sb: SandboxServer) -> int:
    return len([r for r in sb.request_log if r.method == "PUT"])


async def ask(client: Any, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool("update_task" if "action" in args else "update_contact", args)
    assert not result.is_error, result.content
    body: dict[str, Any] = result.structured_content
    return body


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_approve_then_the_same_call_runs_once(sandbox: SandboxServer, connect: Any, mode: str) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    async with connect(sandbox, mode=mode) as client:
        first = await ask(client, args)
        url = first["approval_url"]
        page = httpx.get(url)
        assert page.status_code == 200 and "open → done" in page.text and "Call about renewal" in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert decide(url, "approve").status_code == 200
        assert status(sandbox, uid) == "open" and puts(sandbox) == 0  # approving alone writes nothing
        second = await ask(client, args)
        assert second["status"] == "applied" and status(sandbox, uid) == "done" and puts(sandbox) == 1
        # the approval is spent: reopen by hand, and the same request needs a new approval
        sandbox.store.uncomplete_task(uid)
        third = await ask(client, args)
        assert third["status"] == "approval_required" and third["approval_url"] != url
    assert puts(sandbox) == 1


async def test_reject(sandbox: SandboxServer, connect: Any) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        url = (await ask(client, {"uid": uid, "action": "complete"}))["approval_url"]
        assert decide(url, "reject").status_code == 200
        assert "rejected" in httpx.get(url).text
        again = await ask(client, {"uid": uid, "action": "complete"})
    assert again["status"] == "not_approved" and "rejected" in again["message"]
    assert status(sandbox, uid) == "open" and puts(sandbox) == 0


async def test_changed_arguments_need_a_new_approval(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    async with connect(sandbox) as client:
        url = (await ask(client, {"uri": jane, "phone": "+44 1111"}))["approval_url"]
        assert decide(url, "approve").status_code == 200
        other = await ask(client, {"uri": jane, "phone": "+44 2222"})
    assert other["status"] == "approval_required" and puts(sandbox) == 0


async def test_record_changed_after_approval_needs_a_new_one(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    async with connect(sandbox) as client:
        url = (await ask(client, {"uri": jane, "phone": "+44 1111"}))["approval_url"]
        assert decide(url, "approve").status_code == 200
        sandbox.store.update(jane, {"postal_code": "ZZ1 1ZZ"}, message="someone else")
        again = await ask(client, {"uri": jane, "phone": "+44 1111"})
    assert again["status"] == "approval_required" and puts(sandbox) == 0


async def test_expired_approval(sandbox: SandboxServer, connect: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        url = (await ask(client, {"uid": uid, "action": "complete"}))["approval_url"]
        assert decide(url, "approve").status_code == 200
        monkeypatch.setattr(approvals, "TTL_SECONDS", 0.0)
        again = await ask(client, {"uid": uid, "action": "complete"})
        assert again["status"] == "not_approved" and "expired" in again["message"]
        monkeypatch.setattr(approvals, "TTL_SECONDS", 600.0)
        url2 = (await ask(client, {"uid": uid, "action": "complete"}))["approval_url"]
        origin, csrf = page_parts(url2)
        monkeypatch.setattr(approvals, "TTL_SECONDS", 0.0)
        time.sleep(0.01)
        late = httpx.post(url2, data={"action": "approve", "csrf": csrf}, headers={"Origin": origin})
        assert late.status_code == 410
    assert status(sandbox, uid) == "open" and puts(sandbox) == 0


@pytest.mark.parametrize(
    ("origin", "csrf", "code"),
    [("http://evil.example", None, 403), ("", None, 403), (None, "forged", 403), (None, "", 403)],
)
async def test_forged_submissions_are_refused(
    sandbox: SandboxServer, connect: Any, origin: str | None, csrf: str | None, code: int
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        url = (await ask(client, {"uid": uid, "action": "complete"}))["approval_url"]
        assert decide(url, "approve", origin=origin, csrf=csrf).status_code == code
        again = await ask(client, {"uid": uid, "action": "complete"})
    assert again["status"] == "approval_required" and puts(sandbox) == 0


async def test_page_is_loopback_only_and_secret(sandbox: SandboxServer, connect: Any) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        url = (await ask(client, {"uid": uid, "action": "complete"}))["approval_url"]
        assert url.startswith("http://127.0.0.1:")
        base, secret, approval_id = url.rsplit("/", 2)
        assert len(secret) >= 24 and len(approval_id) >= 16
        assert httpx.get(f"{base}/wrong-secret/{approval_id}").status_code == 404
        assert httpx.get(f"{base}/{secret}/unknown").status_code == 404
        assert httpx.get(url).status_code == 200


async def test_store_approvals_are_single_use() -> None:
    store = approvals.ApprovalStore()
    item = await store.create("update_task", "args", "state", "summary", ["line"])
    assert await store.consume("update_task", "args", "state") is None  # not approved yet
    assert await store.decide(item.id, item.csrf, approve=True) == "approved"
    assert await store.consume("update_task", "args", "other-state") is None
    assert await store.consume("update_task", "args", "state") is item
    assert await store.consume("update_task", "args", "state") is None


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed here")
async def test_approval_page_in_a_real_browser(sandbox: SandboxServer, connect: Any, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    assert CHROMIUM, "CI must install Debian's chromium (see .ci/run)"
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox) as client:
        url = (await ask(client, {"uid": uid, "action": "complete"}))["approval_url"]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                      "--disable-component-update", "--disable-sync", "--disable-quic"],
            )
            page = await browser.new_page()
            await page.goto(url)
            assert "open → done" in await page.inner_text("body")
            await page.screenshot(path=str(tmp_path / "approval.png"))
            await page.click("#approve")
            await page.wait_for_selector("#status")
            assert (await page.inner_text("#status")) == "approved"
            await browser.close()
        assert status(sandbox, uid) == "open"
        done = await ask(client, {"uid": uid, "action": "complete"})
    assert done["status"] == "applied" and status(sandbox, uid) == "done" and puts(sandbox) == 1
