"""Two HTTP sessions share nothing: an approval given for one session's request cannot be spent by another."""

from __future__ import annotations

from pathlib import Path

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store
from tests.helpers import http_session, person_decides, serve_http


async def test_an_approval_belongs_to_its_session(sandbox: SandboxServer, tmp_path: Path) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    with serve_http(sandbox, tmp_path) as base:
        async with http_session(base, mode="legacy") as alice, http_session(base, mode="legacy") as bob:
            first = await alice.call_tool("update_task", args)
            assert first.structured_content["status"] == "approval_required"
            assert person_decides(base.opened[-1]).status_code == 200
            stolen = await bob.call_tool("update_task", args)
            assert stolen.structured_content["status"] == "approval_required"
            task = sandbox.store.get_record("journal", uid)
            assert task is not None and Store.task_status(task) == "open"
            mine = await alice.call_tool("update_task", args)
            assert mine.structured_content["status"] == "applied"
    assert len([r for r in sandbox.request_log if r.method == "PUT"]) == 1
