"""Attendance means one thing everywhere, end to end: a person's events include the ones where they came as
someone's guest, "booked" is accepted, attended or no-show (never an invitation) in every answer, and the output
schemas carry the meanings the model needs. Expected values come from the sandbox's store."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import mcp_types as types

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, answer, error_text

BOOKED = {"accepted", "attended", "no-show"}


def live(sb: SandboxServer, uid: str) -> list[dict[str, Any]]:
    return [s.data for s in sb.store.attendance(f"/demo/booking/{uid}/") if s.data.get("record_state") != "deleted"]


def as_guest_only(sb: SandboxServer) -> tuple[str, str]:
    """Thomas Hardy came to the past event as Jane's guest: the guest session names him, no session or order of his
    own does."""
    store, facts = sb.store, sb.store.demo_facts()
    event, thomas = facts["past_event_uid"], facts["non_member_uri"]
    session = next(s for s in store.attendance(f"/demo/booking/{event}/") if s.data.get("guest")
                   and s.data.get("guest_ref") == facts["past_event_guest_uri"])
    store.update(session.uri, {"guest_ref": thomas, "attendee_name": "Thomas Hardy"}, message="t")
    assert event not in {e.uid for e in store.events_of(thomas)}
    return thomas, event


async def test_a_persons_events_include_where_they_came_as_a_guest(sandbox: SandboxServer, connect: Any) -> None:
    thomas, event = as_guest_only(sandbox)
    result = await answer(connect, sandbox, "list_events", {"person": thomas})
    events = {e["uid"]: e for e in result.structured_content["events"]}
    assert event in events, result.structured_content
    assert events[event]["person_status"] == "guest: attended"
    assert events[event]["guest_of"] == sandbox.store.demo_facts()["jane_uri"]


async def test_booked_never_counts_invitations(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    uid = facts["past_event_uid"]  # sessions in every status, invitations included
    sessions = live(shared_sandbox, uid)
    assert {"invited", "declined"} <= {s["status"] for s in sessions}
    event = (await answer(connect, shared_sandbox, "get_event", {"uid": uid})).structured_content
    assert event["booked"] == sum(1 for s in sessions if s["status"] in BOOKED)
    per_ticket = Counter(s["ticket"] for s in sessions if s["status"] in BOOKED)
    assert {t["name"]: t["booked"] for t in event["tickets"]} == {t["name"]: per_ticket[t["name"]]
                                                                  for t in event["tickets"]}
    listed = (await answer(connect, shared_sandbox, "list_attendees",
                           {"uid": uid, "status": "booked", "limit": 50})).structured_content
    assert listed["booked"] == event["booked"] == len(listed["attendees"])
    assert {a["status"] for a in listed["attendees"]} <= BOOKED


async def test_output_schemas_say_what_booked_and_a_guests_person_uri_mean(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    async with connect(shared_sandbox) as client:
        tools = {t.name: t.output_schema for t in (await client.list_tools()).tools}
    attendee = tools["list_attendees"]["properties"]["attendees"]["items"]["properties"]
    assert "whose guest" in attendee["person_uri"]["description"]
    for name in ("get_event", "list_attendees"):
        assert "never invited" in tools[name]["properties"]["booked"]["description"], name
    assert "guest" in json.dumps(tools["list_events"]["properties"]["events"])


async def test_a_403_quotes_sheepcrm_and_guesses_no_permission_name(connect: Any) -> None:
    with SandboxServer(key="sk-full-403", restricted_key="sk-limited-403") as sb:
        uid = sb.store.demo_facts()["past_event_uid"]
        result = await answer(connect, sb, "list_attendees", {"uid": uid}, api_key="sk-limited-403")
    text = error_text(result)
    assert "HTTP 403" in text and "sheepCRM said" in text
    assert "the 'booking.orders' permission" not in text  # not parsed out of sheepCRM's free text


async def test_an_attendance_put_that_set_one_of_two_sessions_is_applied_differently(
    connect: Any, tmp_path: Path
) -> None:
    """The PUT is keyed by person (variant one-session: it sets the person's first session only, and its answer
    lists that one). The outcome is judged against the state before the write: partly applied, audited so, with
    the undo; never 'the write failed, nothing was changed'. The preview says every session may change."""
    seen: list[str] = []

    async def approve_and_note(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    with SandboxServer(key=CANARY_KEY, variant="one-session") as sb:
        facts = sb.store.demo_facts()
        uid, jane = facts["multi_session_event_uid"], facts["jane_uri"]
        before = sorted(s["status"] for s in live(sb, uid) if s.get("person_ref") == jane and not s.get("guest"))
        assert len(before) == 2 and "attended" not in before
        result = await answer(connect, sb, "set_attendance", {"uid": uid, "person_uris": [jane], "status": "attended"},
                              elicitation=approve_and_note)
        after = sorted(s["status"] for s in live(sb, uid) if s.get("person_ref") == jane and not s.get("guest"))
    body = result.structured_content
    assert not result.is_error and body["status"] == "partial", result.content
    assert "applied differently" in body["message"] and "set 1 of their 2 sessions" in body["message"]
    [line] = body["changes"]
    assert line["result"] == "different" and "attended" in line["now"] and after.count("attended") == 1
    assert "undo" not in body and "restore them in sheepCRM" in body["message"]  # her two statuses differed
    assert "sheepCRM may set all of them" in seen[0]
    outcomes = [json.loads(x)["outcome"] for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert outcomes[-1] == "different"
