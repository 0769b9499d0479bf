"""Attendance means one thing everywhere, end to end: a person's events include the ones where they came as
someone's guest, "booked" is accepted, attended or no-show (never an invitation) in every answer, and the output
schemas carry the meanings the model needs. Expected values come from the sandbox's store."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import answer, error_text

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
