"""Found by the fault sessions: concurrent sessions marking *different* attendees of one event aborted each
other with "the record changed after the preview was shown", because set_attendance's state (and so the
gate's fingerprint) covered the whole attendance list. The conflict check must still fire when one of the
attendees being changed moves."""

from __future__ import annotations

from typing import Any

import mcp_types as mt
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.reliability.helpers import result_text

pytestmark = pytest.mark.reliability


def _attendees(sb: SandboxServer, event_uid: str, n: int) -> list[str]:
    facts = sb.store.demo_facts()
    rows = sb.store.attendance(f"/{sb.bucket}/booking/{event_uid}/")
    people = [a.data["person_ref"] for a in rows if a.data["person_ref"] != facts["jane_uri"]]
    return list(dict.fromkeys(people))[:n]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_other_attendee_changing_is_not_a_conflict(sandbox: SandboxServer, connect: Any, mode: str) -> None:
    event = sandbox.store.demo_facts()["past_event_uid"]
    mine, other = _attendees(sandbox, event, 2)
    event_uri = f"/{sandbox.bucket}/booking/{event}/"

    async def someone_else_marks_other_then_approve(context: Any, params: Any) -> mt.ElicitResult:
        # while this person looks at the preview, a colleague marks a different attendee
        sandbox.store.set_attendance(event_uri, other, "no-show")
        return mt.ElicitResult(action="accept", content={"confirm": True})

    async with connect(sandbox, mode=mode, elicitation=someone_else_marks_other_then_approve) as client:
        result = await client.call_tool("set_attendance", {"uid": event, "person_uris": [mine], "status": "declined"})
    assert not result.is_error, result_text(result)
    assert result.structured_content["status"] == "applied"


async def test_same_attendee_changing_is_still_a_conflict(sandbox: SandboxServer, connect: Any) -> None:
    event = sandbox.store.demo_facts()["past_event_uid"]
    (mine,) = _attendees(sandbox, event, 1)
    event_uri = f"/{sandbox.bucket}/booking/{event}/"

    before = {a.data["status"] for a in sandbox.store.attendance(event_uri) if a.data["person_ref"] == mine}
    moved = next(s for s in ("invited", "accepted", "attended", "no-show") if s not in before)

    async def colleague_marks_same_then_approve(context: Any, params: Any) -> mt.ElicitResult:
        sandbox.store.set_attendance(event_uri, mine, moved)
        return mt.ElicitResult(action="accept", content={"confirm": True})

    async with connect(sandbox, elicitation=colleague_marks_same_then_approve) as client:
        result = await client.call_tool("set_attendance", {"uid": event, "person_uris": [mine], "status": "declined"})
    assert result.is_error
    assert "changed after the preview" in result_text(result)
    puts = [e for e in sandbox.request_log if e.method == "PUT"]
    assert puts == []
