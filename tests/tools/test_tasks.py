"""list_tasks end to end: sheepCRM's `total` (the 2025-02 draft) decides whether the list is whole."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sheepcrm.tasks import TASK_PAGE
from tests.helpers import answer, clone_records


async def test_a_full_page_that_sheepcrm_says_is_all_is_whole(sandbox: SandboxServer, connect: Any) -> None:
    store = sandbox.store
    open_ = [t for t in store.tasks() if not t.data.get("completed")]
    clone_records(sandbox, open_[0].uri, TASK_PAGE - len(open_))  # exactly one full page of open tasks
    result = await answer(connect, sandbox, "list_tasks", {"scope": "all", "limit": 5})
    body = result.structured_content
    assert body["total"] == TASK_PAGE and "cut" not in (body.get("note") or ""), body
