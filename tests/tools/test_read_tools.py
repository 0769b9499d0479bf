"""One end-to-end test per read tool, through a real MCP client session against the sandbox.

Expected values are computed from the sandbox's store (its own data), not copied from tool output.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store, primary
from tests.helpers import Readers

pytestmark = pytest.mark.parametrize("mode", ["legacy", "auto"])


async def call(readers: Readers, sb: SandboxServer, mode: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    client = await readers(mode)  # one session per mode for the module: these tests only read
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    body: dict[str, Any] = result.structured_content
    assert body is not None
    return body


async def test_search_contacts(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    facts = store.demo_facts()
    body = await call(readers, shared_sandbox, mode, "search_contacts", {"last_name": "Austen"})
    expected = {r.uri for r in store.find_people(last_name="Austen")}
    assert {c["uri"] for c in body["contacts"]} == expected and facts["jane_uri"] in expected
    free = await call(readers, shared_sandbox, mode, "search_contacts", {"query": "smith", "limit": 3})
    records, _ = store.search_contacts("smith", limit=1000)
    # The global search has no paging and no total: a page length is never reported as a total.
    assert "total" not in free and len(free["contacts"]) == min(3, len(records))
    if len(records) > 3:
        nxt = await call(readers, shared_sandbox, mode, "search_contacts",
                         {"query": "smith", "limit": 3, "cursor": free["next_cursor"]})
        assert [c["uri"] for c in nxt["contacts"]] == [r.uri for r in records[3:6]]


async def test_get_contact(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    uri = store.demo_facts()["jane_uri"]
    record = store.get(uri)
    assert record is not None
    concise = await call(readers, shared_sandbox, mode, "get_contact", {"uri": uri})
    assert concise["name"] == record.display_value
    assert concise["email"] == primary(record.data["email"])
    assert concise["postcode"] == record.data["postal_code"]
    assert "details" not in concise
    full = await call(readers, shared_sandbox, mode, "get_contact", {"uri": uri, "detail": "full"})
    assert full["details"]["emails"] == [e for e in record.data["email"] if e]
    assert full["details"]["date_of_birth"] == record.data["date_of_birth"]


@pytest.mark.parametrize("who", ["jane", "lapsed", "future", "non_member"])
async def test_check_membership(shared_sandbox: SandboxServer, readers: Readers, mode: str, who: str) -> None:
    store = shared_sandbox.store
    facts = store.demo_facts()
    status, member = store.membership_status(facts[f"{who}_uri"])
    by_email = await call(readers, shared_sandbox, mode, "check_membership", {"email": facts[f"{who}_email"]})
    by_uri = await call(readers, shared_sandbox, mode, "check_membership", {"uri": facts[f"{who}_uri"]})
    for body in (by_email, by_uri):
        assert body["status"] == status
        assert body["is_member"] == (status == "current")
        assert body["contact_uri"] == facts[f"{who}_uri"]
    if member is not None:
        assert by_uri["end_date"] == member.data["end_date"]
    if status == "current":
        left = (date.fromisoformat(member.data["end_date"][:10]) - datetime.now(UTC).date()).days  # type: ignore[union-attr]
        assert by_uri["days_left"] == left


async def test_list_events(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    for state in ("future", "past", "draft", "all"):
        body = await call(readers, shared_sandbox, mode, "list_events", {"state": state, "limit": 50})
        assert {e["uid"] for e in body["events"]} == {e.uid for e in store.events(state)}
        assert body["total"] == len(store.events(state))


async def test_get_event(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    uid = store.demo_facts()["free_event_uid"]
    event_uri = store.uri("booking", uid)
    body = await call(readers, shared_sandbox, mode, "get_event", {"uid": uid})
    attendance = Counter(a.data["status"] for a in store.attendance(event_uri))
    assert body["attendance"] == dict(attendance)
    assert len(body["tickets"]) == len(store.ticket_types(event_uri))
    assert body["tickets_free"] == sum(t["free"] for t in body["tickets"]) > 0
    assert "description" not in body
    full = await call(readers, shared_sandbox, mode, "get_event", {"uid": uid, "detail": "full"})
    assert full["description"]


async def test_list_attendees(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    """Finding 10: every session is kept (guests, a guest with a null person_ref, several sessions of one person),
    deleted sessions are left out and said so, and the answer passes its own output schema."""
    store = shared_sandbox.store
    facts = store.demo_facts()
    uid = facts["past_event_uid"]
    live = [a for a in store.attendance(store.uri("booking", uid)) if a.data["record_state"] != "deleted"]
    body = await call(readers, shared_sandbox, mode, "list_attendees", {"uid": uid, "status": "attended", "limit": 50})
    assert body["counts"] == dict(Counter(a.data["status"] for a in live))
    attended = [a for a in live if a.data["status"] == "attended"]
    assert sorted(a["session_uid"] for a in body["attendees"]) == sorted(a.uid for a in attended)
    guests = [a for a in body["attendees"] if a.get("guest")]
    assert {g.get("guest_uri") for g in guests} == {facts["past_event_guest_uri"], None}
    assert any("person_uri" not in g for g in guests)  # the guest whose person_ref is null
    assert "1 deleted session" in body["note"]
    assert facts["deleted_session_uid"] not in {a["session_uid"] for a in body["attendees"]}
    multi = await call(readers, shared_sandbox, mode, "list_attendees",
                       {"uid": facts["multi_session_event_uid"], "name": "Jane Austen"})
    assert facts["jane_uri"] in multi["note"] and "Several sessions" in multi["note"]
    assert sum(a.get("person_uri") == facts["jane_uri"] for a in multi["attendees"]) == 2


async def test_list_tasks(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    mine = [t for t in store.tasks(assigned_to=store.api_user) if Store.task_status(t) == "open"]
    due = (datetime.now(UTC) + timedelta(days=7)).date()
    body = await call(readers, shared_sandbox, mode, "list_tasks", {"limit": 50, "due_before": due.isoformat()})
    expected = {t.uid for t in mine if date.fromisoformat(t.data["date"][:10]) <= due}
    assert {t["uid"] for t in body["tasks"]} == expected
    assert store.demo_facts()["my_open_task_uid"] in expected
    every = await call(readers, shared_sandbox, mode, "list_tasks", {"scope": "all", "status": "any", "limit": 1})
    assert every["total"] == len(store.tasks())  # finding 4: include_completed=true is sent for status='any'
    done = await call(readers, shared_sandbox, mode, "list_tasks", {"scope": "all", "status": "done", "limit": 1})
    assert done["total"] == sum(1 for t in store.tasks() if t.data["completed"]) > 0


async def test_get_task(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    task = store.get_record("journal", store.demo_facts()["my_open_task_uid"])
    assert task is not None
    body = await call(readers, shared_sandbox, mode, "get_task", {"uid": task.uid})
    assert body["title"] == task.display_value and body["status"] == Store.task_status(task)
    assert body["text"] == task.data["text_body"]


async def test_search_help(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    refund = store.get_record("help", store.demo_facts()["refund_help_uid"])
    assert refund is not None
    body = await call(readers, shared_sandbox, mode, "search_help", {"query": "refund booking"})
    assert body["articles"][0]["title"] == refund.display_value
    assert "text" not in body["articles"][0]
    full = await call(readers, shared_sandbox, mode, "search_help", {"query": "refund booking", "detail": "full"})
    assert full["articles"][0]["text"] == refund.data["text"]


async def test_find_segments(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    body = await call(readers, shared_sandbox, mode, "find_segments", {"limit": 50})
    assert {s["uid"] for s in body["segments"]} == {s.uid for s in store.segments()}
    named = await call(readers, shared_sandbox, mode, "find_segments", {"name": "lapsed"})
    assert store.demo_facts()["segment_lapsed_members_uid"] in {s["uid"] for s in named["segments"]}


async def test_query_segment(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    uid = store.demo_facts()["segment_current_members_uid"]
    seg_uri = store.uri("segment", uid)
    count = await call(readers, shared_sandbox, mode, "query_segment", {"uid": uid})
    assert count["count"] == store.segment_count(seg_uri)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        args: dict[str, Any] = {"uid": uid, "mode": "members", "limit": 7}
        if cursor:
            args["cursor"] = cursor
        page = await call(readers, shared_sandbox, mode, "query_segment", args)
        seen += [m["uri"] for m in page["members"]]
        cursor = page["next_cursor"]
    members, _ = store.segment_members(seg_uri, offset=0, limit=21)
    assert seen == [m.uri for m in members]
    jane = store.demo_facts()["jane_email"]
    look = await call(readers, shared_sandbox, mode, "query_segment", {"uid": uid, "mode": "lookup", "q": jane})
    assert store.demo_facts()["jane_uri"] in {m["uri"] for m in look["members"]}


async def test_get_record_history(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    uri = store.demo_facts()["jane_uri"]
    body = await call(readers, shared_sandbox, mode, "get_record_history", {"uri": uri, "limit": 50})
    expected = store.audit(uri)
    assert body["total"] == len(expected) > 0
    assert {e["message"] for e in body["entries"]} == {e["message"] for e in expected}


async def test_answers_stay_under_the_cap(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    for tool, args in [("list_tasks", {"scope": "all", "status": "any", "limit": 50}),
                       ("search_contacts", {"query": "a", "limit": 50})]:
        body = await call(readers, shared_sandbox, mode, tool, args)
        assert len(json.dumps(body)) <= 21_000
