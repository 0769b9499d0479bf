"""Two HTTP sessions share nothing: an approval given for one session's request cannot be spent by another."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from mcp import Client

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store
from tests.helpers import serve_http


def approve(url: str) -> None:
    page = httpx.get(url).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    origin = re.match(r"https?://[^/]+", url)
    assert origin
    response = httpx.post(url, data={"action": "approve", "csrf": csrf.group(1)}, headers={"Origin": origin.group(0)})
    assert response.status_code == 200


async def test_an_approval_belongs_to_its_session(sandbox: SandboxServer, tmp_path: Path) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    with serve_http(sandbox, tmp_path) as base:
        async with Client(f"{base}/mcp", mode="legacy") as alice, Client(f"{base}/mcp", mode="legacy") as bob:
            first = await alice.call_tool("update_task", args)
            approve(first.structured_content["approval_url"])
            stolen = await bob.call_tool("update_task", args)
            assert stolen.structured_content["status"] == "approval_required"
            task = sandbox.store.get_record("journal", uid)
            assert task is not None and Store.task_status(task) == "open"
            mine = await alice.call_tool("update_task", args)
            assert mine.structured_content["status"] == "applied"
    assert len([r for r in sandbox.request_log if r.method == "PUT"]) == 1
