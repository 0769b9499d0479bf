"""list_tasks end to end: sheepCRM's `total` (the 2025-02 draft) decides whether the list is whole."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.records import fmt_dt, parse_dt
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store
from sheepcrm_mcp.sheepcrm.tasks import TASK_PAGE
from tests.helpers import CANARY_KEY, answer, approve, clone_records


async def test_a_full_page_that_sheepcrm_says_is_all_is_whole(sandbox: SandboxServer, connect: Any) -> None:
    store = sandbox.store
    open_ = [t for t in store.tasks() if not t.data.get("completed")]
    clone_records(sandbox, open_[0].uri, TASK_PAGE - len(open_))  # exactly one full page of open tasks
    result = await answer(connect, sandbox, "list_tasks", {"scope": "all", "limit": 5})
    body = result.structured_content
    assert body["total"] == TASK_PAGE and "cut" not in (body.get("note") or ""), body


async def test_a_snooze_that_moved_the_date_by_another_amount_is_applied_differently(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sheepCRM documents +24 hours; a snooze that moved the due date by 12 is read back as it is: applied
    differently (the date did move), not 'the write failed, nothing was changed'."""

    def twelve_hours(store: Store, uid: str) -> Any:
        task = store.require("journal", uid)
        return store.update(task.uri, {"date": fmt_dt(parse_dt(task.data["date"]) + timedelta(hours=12))},
                            message="task snoozed")

    monkeypatch.setattr(Store, "snooze_task", twelve_hours)  # before the sandbox builds its routes
    with SandboxServer(key=CANARY_KEY) as sb:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        result = await answer(connect, sb, "update_task", {"uid": uid, "action": "snooze"}, elicitation=approve)
        task = sb.store.get_record("journal", uid)
    body = result.structured_content
    assert not result.is_error and body["status"] == "partial", result.content
    assert task is not None and body["changes"][0]["result"] == "different"
    assert body["changes"][0]["now"] == task.data["date"] and "applied differently" in body["message"]
