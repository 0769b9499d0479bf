"""Attendance means one thing everywhere, end to end: a person's events include the ones where they came as
someone's guest, "booked" is accepted, attended or no-show (never an invitation) in every answer, and the output
schemas carry the meanings the model needs. Expected values come from the sandbox's store."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from sheepcrm_mcp.sandbox.records import now_utc, parse_dt
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.tools import events
from tests.helpers import (
    CANARY_KEY,
    MODES,
    Readers,
    answer,
    answer_body,
    answer_sized,
    answering,
    approve,
    as_guest_only,
    error_text,
    events_as_summary_packets,
    member_session,
    puts,
    read,
    scripted,
    writes,
)

BOOKED = {"accepted", "attended", "no-show"}


def live(sb: SandboxServer, uid: str) -> list[dict[str, Any]]:
    return [s.data for s in sb.store.attendance(f"/demo/booking/{uid}/") if s.data.get("record_state") != "deleted"]


async def test_a_persons_events_include_the_guest_sessions_naming_them(sandbox: SandboxServer, connect: Any) -> None:
    thomas, event = as_guest_only(sandbox)
    result = await answer(connect, sandbox, "list_events", {"person": thomas})
    events = {e["uid"]: e for e in result.structured_content["events"]}
    assert event in events, result.structured_content
    assert events[event]["person_status"] == "guest session: attended"
    assert events[event]["guest_session_with"] == sandbox.store.demo_facts()["jane_uri"]
    assert "as the guest or as the one who booked it" in result.structured_content["note"]


@pytest.mark.parametrize("variant", [None, "guest-ref-booker"])
async def test_a_guest_session_is_read_the_same_whoever_its_refs_name(connect: Any, variant: str | None) -> None:
    """openapi.yaml gives a guest session's person_ref and guest_ref no meaning (EVIDENCE.md: no text says whose
    contact guest_ref is); the sandbox names the booker in person_ref, variant guest-ref-booker the guest. Either
    way the guest and the booker are each named in a guest session, never one as "came as a guest" by one reading,
    nor the guest left out; list_attendees says the refs are undocumented; set_attendance refuses the guest as
    named only in a guest session, never "not on the attendance list"."""
    with SandboxServer(key=CANARY_KEY, variant=variant) as sb:
        guest, event = as_guest_only(sb)
        jane = sb.store.demo_facts()["jane_uri"]
        theirs = await answer_body(connect, sb, "list_events", {"person": guest, "state": "past"})
        hers = await answer_body(connect, sb, "list_events", {"person": jane, "state": "past"})
        listed_ = await answer_body(connect, sb, "list_attendees", {"uid": event, "name": guest})
        said = error_text(await answer(connect, sb, "set_attendance",
                                       {"uid": event, "person_uris": [guest], "status": "no-show"}))
    [at] = [e for e in theirs["events"] if e["uid"] == event]
    assert at["person_status"] == "guest session: attended" and at["guest_session_with"] == jane, theirs
    [mine] = [e for e in hers["events"] if e["uid"] == event]
    assert "guest session: attended" in mine["person_status"].split("/"), hers
    assert "guest:" not in mine["person_status"] and "which is not known" in hers["note"], hers
    assert listed_["attendees"] and "do not say whose contact a guest session's person_ref" in listed_["note"]
    assert "only in a guest session" in said and "Not on the attendance list" not in said, said


async def test_a_session_that_does_not_say_whether_it_is_a_guest_is_unknown_not_own(
    connect: Any, tmp_path: Path
) -> None:
    """`guest` respelled (drift): Thomas, Jane's guest, is still among the past event's people, "unknown whether
    guest", never left out; Jane's own bookings do not claim she came on her own, and the note says so."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=guest:attendance"]) as sb:
        thomas, event = as_guest_only(sb)
        facts = sb.store.demo_facts()
        found = await answer_body(connect, sb, "list_events", {"person": thomas})
        attendees = await answer_body(connect, sb, "list_attendees", {"uid": event, "limit": 50})
        async with member_session(sb, tmp_path, facts["jane_uri"], facts["jane_email"]) as client:
            mine = (await client.call_tool("my_bookings", {"when": "all", "limit": 50})).structured_content
    statuses = {e["uid"]: e.get("person_status") for e in found["events"]}
    assert statuses.get(event) == "unknown whether guest: attended", found
    assert all("guest" not in a for a in attendees["attendees"]), attendees
    assert mine["bookings"] and all("guest" not in b for b in mine["bookings"]), mine
    assert "whether you came as a guest" in mine["note"], mine


async def test_booked_never_counts_invitations(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    uid = facts["past_event_uid"]  # sessions in every status, invitations included
    sessions = live(shared_sandbox, uid)
    assert {"invited", "declined"} <= {s["status"] for s in sessions}
    event = (await answer(connect, shared_sandbox, "get_event", {"uid": uid})).structured_content
    assert event["booked"] == sum(1 for s in sessions if s["status"] in BOOKED)
    per_ticket = Counter(s["ticket"] for s in sessions if s["status"] in BOOKED)
    assert {t["name"]: t["booked"] for t in event["tickets"]} == {
        t["name"]: per_ticket[t["name"]] for t in event["tickets"]
    }
    listed = (
        await answer(connect, shared_sandbox, "list_attendees", {"uid": uid, "status": "booked", "limit": 50})
    ).structured_content
    assert listed["booked"] == event["booked"] == len(listed["attendees"])
    assert {a["status"] for a in listed["attendees"]} <= BOOKED


async def test_output_schemas_say_what_booked_and_a_guests_person_uri_mean(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    async with connect(shared_sandbox) as client:
        tools = {t.name: t.output_schema for t in (await client.list_tools()).tools}
    attendee = tools["list_attendees"]["properties"]["attendees"]["items"]["properties"]
    assert "guest or booker" in attendee["person_uri"]["description"]
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


async def test_refused_attendance_and_tickets_are_said_in_words_never_empty(connect: Any) -> None:
    """A key refused the attendance and the ticket types (403): get_event leaves both out and says in words what
    was refused, never `attendance: {}` or `tickets: []` (which read as nobody and no tickets)."""
    with SandboxServer(key="sk-full-k1", restricted_key="sk-limited-k1") as sb:
        uid = sb.store.demo_facts()["past_event_uid"]
        body = await answer_body(connect, sb, "get_event", {"uid": uid}, api_key="sk-limited-k1")
    assert "attendance" not in body and "tickets" not in body and "booked" not in body, body
    assert "refused this key the event's attendance" in body["note"], body
    assert "refused this key the event's ticket types" in body["note"], body


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
        event = sb.store.require("booking", uid).data
        title = event.get("display_value") or event["title"]
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
    assert f'of event {uid} "{title}" to \'attended\'' in seen[0]  # exactly which event: its uid, then its name
    outcomes = [json.loads(x)["outcome"] for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert outcomes[-1] == "different"


@pytest.mark.parametrize("mode", MODES)
async def test_list_events(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    for state in ("future", "past", "draft", "all"):
        body = await read(readers, "list_events", {"state": state, "limit": 50}, mode=mode)
        assert {e["uid"] for e in body["events"]} == {e.uid for e in store.events(state)}
        assert body["total"] == len(store.events(state))


async def test_list_events_default_window_and_free_places(shared_sandbox: SandboxServer, connect: Any) -> None:
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    body = await answer_body(connect, shared_sandbox, "list_events", {"limit": 50})
    uids = {e["uid"] for e in body["events"]}
    assert facts["running_event_uid"] in uids and facts["past_event_uid"] not in uids
    assert "as_of" in body
    horizon = (now_utc() + timedelta(days=14)).date()
    soon = await answer_body(connect, shared_sandbox, "list_events", {"to_date": horizon.isoformat(), "limit": 50})
    expected = {
        e.uid
        for e in store.events("running") + store.events("future")
        if parse_dt(e.data["start_datetime"]).date() <= horizon
    }
    assert {e["uid"] for e in soon["events"]} == expected
    for e in soon["events"]:
        tickets = store.ticket_types(f"/demo/booking/{e['uid']}/")
        taken = sum(
            1
            for s in store.attendance(f"/demo/booking/{e['uid']}/")
            if s.data.get("status") != "declined" and s.data.get("record_state") != "deleted"
        )
        assert e["free"] == sum(t.data["total"] - t.data["reserved"] for t in tickets) - taken


async def test_a_persons_events_with_their_status(shared_sandbox: SandboxServer, connect: Any) -> None:
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    jane = facts["jane_uri"]
    body, size = await answer_sized(connect, shared_sandbox, "list_events", {"person": jane})
    expected = {e.uid for e in store.events_of(jane)}
    assert {e["uid"] for e in body["events"]} == expected and facts["past_event_uid"] in expected
    statuses = {e["uid"]: e["person_status"] for e in body["events"]}
    for uid in expected:
        live_ = [s.data for s in store.attendance(f"/demo/booking/{uid}/") if s.data.get("record_state") != "deleted"]
        mine = {s["status"] for s in live_ if s.get("person_ref") == jane and not s.get("guest")}
        mine |= {f"guest session: {s['status']}" for s in live_
                 if s.get("guest") and jane in (s.get("person_ref"), s.get("guest_ref"))}
        assert set(statuses[uid].split("/")) == mine
    assert statuses[facts["past_event_uid"]] == "attended/guest session: attended"  # she booked a guest there
    assert all(e["uri"] == f"/demo/booking/{e['uid']}/" for e in body["events"])
    assert size <= 3_000


@pytest.mark.parametrize("mode", MODES)
async def test_get_event(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    uid = store.demo_facts()["free_event_uid"]
    event_uri = store.uri("booking", uid)
    body = await read(readers, "get_event", {"uid": uid}, mode=mode)
    attendance = Counter(a.data["status"] for a in store.attendance(event_uri))
    assert body["attendance"] == dict(attendance)
    assert len(body["tickets"]) == len(store.ticket_types(event_uri))
    assert body["tickets_free"] == sum(t["free"] for t in body["tickets"]) > 0
    assert "description" not in body
    full = await read(readers, "get_event", {"uid": uid, "detail": "full"}, mode=mode)
    assert full["description"]


async def test_booked_per_ticket_type_is_matched_by_ticket_ref_so_namesake_types_do_not_merge(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY) as sb:
        store = sb.store

        def booked(event_uri: str) -> dict[str, int]:
            held = Counter(a.data["ticket_ref"] for a in store.attendance(event_uri)
                           if a.data["status"] in BOOKED and a.data["record_state"] != "deleted")
            return {t.uri: held[t.uri] for t in store.ticket_types(event_uri)}

        event_uri = next(e.uri for e in store.by_type("booking") if len(booked(e.uri)) > 1
                         and len(set(booked(e.uri).values())) > 1)
        for ticket in store.ticket_types(event_uri):
            store.replace_data(ticket.uri, {**ticket.data, "name": "Standard"})
        for session in store.attendance(event_uri):
            store.replace_data(session.uri, {**session.data, "ticket": "Standard"})
        expected = list(booked(event_uri).values())
        body = await answer_body(connect, sb, "get_event", {"uid": event_uri})
    assert [t["name"] for t in body["tickets"]] == ["Standard"] * len(expected)
    assert [t["booked"] for t in body["tickets"]] == expected, body


async def test_a_person_s_events_come_from_attendance_when_orders_are_refused(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, faults=["403:1:/person/[^/]+/orders"]) as sb:
        facts = sb.store.demo_facts()
        body = await answer_body(connect, sb, "list_events", {"person": facts["jane_uri"], "limit": 50})
    assert facts["past_event_uid"] in {e["uid"] for e in body["events"]}, body
    assert "orders could not be read (403" in body["note"], body


@pytest.mark.parametrize("mode", MODES)
async def test_list_attendees(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    """Finding 10: every session is kept (guests, a guest with a null person_ref, several sessions of one person),
    deleted sessions are left out and said so, and the answer passes its own output schema."""
    store = shared_sandbox.store
    facts = store.demo_facts()
    uid = facts["past_event_uid"]
    live = [a for a in store.attendance(store.uri("booking", uid)) if a.data["record_state"] != "deleted"]
    body = await read(readers, "list_attendees", {"uid": uid, "status": "attended", "limit": 50}, mode=mode)
    assert body["counts"] == dict(Counter(a.data["status"] for a in live))
    attended = [a for a in live if a.data["status"] == "attended"]
    assert sorted(a["session_uid"] for a in body["attendees"]) == sorted(a.uid for a in attended)
    guests = [a for a in body["attendees"] if a.get("guest")]
    assert {g.get("guest_uri") for g in guests} == {facts["past_event_guest_uri"], None}
    assert any("person_uri" not in g for g in guests)  # the guest whose person_ref is null
    assert "1 deleted session" in body["note"]
    assert facts["deleted_session_uid"] not in {a["session_uid"] for a in body["attendees"]}
    multi = await read(
        readers,
        "list_attendees",
        {"uid": facts["multi_session_event_uid"], "name": "Jane Austen"},
        mode=mode,
    )
    assert facts["jane_uri"] in multi["note"] and "Several sessions" in multi["note"]
    assert sum(a.get("person_uri") == facts["jane_uri"] for a in multi["attendees"]) == 2


async def test_list_attendees_by_email_and_uri(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    uid = facts["past_event_uid"]
    by_email = await answer_body(connect, shared_sandbox, "list_attendees", {"uid": uid, "name": facts["jane_email"]})
    assert {a["person_uri"] for a in by_email["attendees"]} == {facts["jane_uri"]}
    by_uri = await answer_body(
        connect, shared_sandbox, "list_attendees", {"uid": f"/demo/booking/{uid}/", "name": facts["jane_uri"]}
    )
    assert by_uri["attendees"] and all(
        facts["jane_uri"] in (a.get("person_uri"), a.get("guest_uri")) for a in by_uri["attendees"]
    )
    nobody = await answer_body(
        connect, shared_sandbox, "list_attendees", {"uid": uid, "name": "thomas.hardy@example.org"}
    )
    assert nobody["attendees"] == [] and "search_contacts(email=" in nobody["note"]


async def test_restricted_key_gets_the_reduced_event(connect: Any) -> None:
    with SandboxServer(key="sk-full-13", restricted_key="sk-limited-13") as sb:
        uid = sb.store.demo_facts()["past_event_uid"]
        body = await answer_body(connect, sb, "get_event", {"uid": uid}, api_key="sk-limited-13")
        attendees = None
        async with connect(sb, api_key="sk-limited-13") as client:
            attendees = await client.call_tool("list_attendees", {"uid": uid})
    assert body["uid"] == uid and "reduced fields" in body["note"] and "permission" in body["note"]
    assert attendees.is_error and "permission" in attendees.content[0].text  # type: ignore[union-attr]
    assert "SHEEPCRM_API_KEY" not in attendees.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_set_attendance_batch_one_approval_per_attendee_outcome(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, mode: str
) -> None:
    store = sandbox.store
    uid = store.demo_facts()["past_event_uid"]
    rows = store.attendance(store.uri("booking", uid))
    targets = [a.data["person_ref"] for a in rows if a.data["status"] in ("accepted", "invited")][:3]
    already = next(a.data["person_ref"] for a in rows if a.data["status"] == "attended")
    seen: list[str] = []
    async with connect(sandbox, mode=mode, elicitation=answering("accept", {"confirm": True}, seen)) as client:
        result = await client.call_tool(
            "set_attendance", {"uid": uid, "person_uris": [*targets, already], "status": "attended"}
        )
    body = result.structured_content
    assert body["status"] == "applied" and len(seen) == 1
    assert [c["result"] for c in body["changes"]] == ["applied"] * 3
    now = {a.data["person_ref"]: a.data["status"] for a in store.attendance(store.uri("booking", uid))}
    assert all(now[p] == "attended" for p in targets)
    assert len(writes(sandbox)) == 3  # the attendee already marked needs no write


async def test_set_attendance_refuses_people_not_on_the_list(sandbox: SandboxServer, connect: Any) -> None:
    facts = sandbox.store.demo_facts()
    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool(
            "set_attendance",
            {"uid": facts["draft_event_uid"], "person_uris": [facts["non_member_uri"]], "status": "attended"},
        )
    assert result.is_error and "Not on the attendance list" in result.content[0].text  # type: ignore[union-attr]
    assert writes(sandbox) == []


async def test_set_attendance_mixed_old_statuses_says_how_to_undo(sandbox: SandboxServer, connect: Any) -> None:
    """No single undo call exists when the attendees had different statuses: the result says so and lists one
    set_attendance call per old status, and making those calls puts every attendee back."""
    store = sandbox.store
    uid = store.demo_facts()["past_event_uid"]
    rows = store.attendance(store.uri("booking", uid))
    accepted = next(a.data["person_ref"] for a in rows if a.data["status"] == "accepted" and not a.data.get("guest"))
    invited = next(a.data["person_ref"] for a in rows if a.data["status"] == "invited" and not a.data.get("guest"))
    old = {a.data["person_ref"]: a.data["status"] for a in rows if a.data["person_ref"] in (accepted, invited)}
    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool(
            "set_attendance", {"uid": uid, "person_uris": [accepted, invited], "status": "attended"}
        )
        body = result.structured_content
        assert body["status"] == "applied" and "undo" not in body
        message = body["message"]
        assert "No single undo" in message and "accepted" in message and "invited" in message
        calls = re.findall(r'set_attendance\(uid=("[^"]*"), person_uris=(\[[^\]]*\]), status=("[^"]*")\)', message)
        assert {json.loads(s): json.loads(p) for _, p, s in calls} == {"accepted": [accepted], "invited": [invited]}
        for u, p, s in calls:
            back = await client.call_tool(
                "set_attendance", {"uid": json.loads(u), "person_uris": json.loads(p), "status": json.loads(s)}
            )
            assert back.structured_content["status"] == "applied", back.content
    now = {a.data["person_ref"]: a.data["status"] for a in store.attendance(store.uri("booking", uid))}
    assert {p: now[p] for p in old} == old


async def test_one_attendee_whose_sessions_differed_is_told_as_one_person(
    sandbox: SandboxServer, connect: Any
) -> None:
    """One attendee whose two sessions had different statuses: no single undo exists, and the result says it of
    that person's sessions, never "these attendees had different statuses (several)"."""
    facts = sandbox.store.demo_facts()
    uid, jane = facts["multi_session_event_uid"], facts["jane_uri"]
    before = {s["status"] for s in live(sandbox, uid) if s.get("person_ref") == jane and not s.get("guest")}
    assert len(before) == 2 and "declined" not in before
    body = await answer_body(connect, sandbox, "set_attendance",
                             {"uid": uid, "person_uris": [jane], "status": "declined"}, elicitation=approve)
    assert body["status"] == "applied" and "undo" not in body, body
    assert f"No single undo: {jane} had sessions with different statuses before" in body["message"], body
    assert "these attendees" not in body["message"] and "several" not in body["message"], body


async def test_ticket_values_keep_sheepcrms_names_and_no_sum_is_asserted(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    """openapi.yaml's EventAvailableTickets gives `total`, `allocated`, `reserved` and `available` as numbers it does
    not define: they are shown under sheepCRM's names (`total` is not called capacity), each ticket type with its
    uri as read, and the schema asserts no sum between them."""
    facts = shared_sandbox.store.demo_facts()
    store = shared_sandbox.store
    event = await answer_body(connect, shared_sandbox, "get_event", {"uid": facts["past_event_uid"]})
    kept = {r.uri: r.data for r in store.ticket_types(store.uri("booking", facts["past_event_uid"]))}
    assert event["tickets"] and all("capacity" not in t for t in event["tickets"]), event
    for t in event["tickets"]:
        d = kept[t["uri"]]
        assert (t["name"], t["total"], t["reserved"]) == (d["name"], d["total"], d["reserved"])
    assert any(t["reserved"] for t in event["tickets"])
    async with connect(shared_sandbox) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    ticket = json.dumps(tools["get_event"].output_schema["properties"]["tickets"])
    assert "capacity" not in ticket and "allocated + reserved" not in ticket, ticket
    assert "no-show" in json.dumps(tools["list_attendees"].input_schema)
    assert "upcoming" in json.dumps(tools["list_events"].input_schema)


# ---- the pure mappers ----------------------------------------------------------------------


def test_upcoming_is_running_and_future() -> None:
    assert events.state_lists("upcoming") == ("running", "future")
    assert events.state_lists("past") == ("past",)


def test_sessions_leave_out_deleted_ones_and_count_them() -> None:
    data = {
        "sessions": [
            {"uid": "s1", "person_ref": "/demo/person/a/", "status": "attended"},
            {"uid": "s2", "person_ref": "/demo/person/b/", "status": "invited", "record_state": "deleted"},
        ]
    }
    found, deleted = events.sessions(data)
    assert [a.person_uri for a in found] == ["/demo/person/a/"] and deleted == 1


def test_brief_falls_back_to_the_title() -> None:
    row = events.brief({"uid": "e1", "title": "AGM", "start_date": "2026-06-01"})
    assert (row.uid, row.title, row.start) == ("e1", "AGM", "2026-06-01")


async def test_a_sold_out_flag_that_is_not_a_boolean_is_unknown_and_the_event_still_listed(connect: Any) -> None:
    """`is_sold_out` sent as another type (drift): the events are listed with sold-out unknown (left out), never
    'Invalid arguments' blaming the caller."""
    with SandboxServer(key=CANARY_KEY, drift=["retyped-field=is_sold_out"]) as sb:
        listed = await answer_body(connect, sb, "list_events", {"state": "all", "limit": 50})
        uid = listed["events"][0]["uid"]
        single = await answer_body(connect, sb, "get_event", {"uid": uid})
    assert listed["events"] and all("sold_out" not in e for e in listed["events"]), listed
    assert single["uid"] == uid and "sold_out" not in single, single


async def test_a_status_the_documents_do_not_name_leaves_booked_unknown(connect: Any) -> None:
    """Statuses are the five the documents name, in any letter case; any other leaves 'booked' unknown (never a
    count that quietly leaves the session out) and is named in the note."""
    with SandboxServer(key=CANARY_KEY) as sb:
        store = sb.store
        uid = store.demo_facts()["past_event_uid"]
        rows = [a for a in store.attendance(store.uri("booking", uid)) if a.data.get("record_state") != "deleted"]
        accepted = [a for a in rows if a.data["status"] == "accepted"]
        assert len(accepted) >= 2, "the test needs two accepted sessions"
        store.update(accepted[0].uri, {"status": "Accepted"}, message="t")  # another letter case: still accepted
        event = await answer_body(connect, sb, "get_event", {"uid": uid})
        assert event["booked"] == sum(1 for a in rows if a.data["status"] in events.BOOKED)
        store.update(accepted[1].uri, {"status": "waitlisted"}, message="t")  # not one of the five
        event = await answer_body(connect, sb, "get_event", {"uid": uid})
        attendees = await answer_body(connect, sb, "list_attendees", {"uid": uid, "limit": 50})
    assert event.get("booked") is None and "'waitlisted' x1" in event["note"], event
    assert all(t.get("booked") is None for t in event["tickets"]), event
    assert attendees.get("booked") is None and "do not name" in attendees["note"], attendees
    statuses = {a["status"] for a in attendees["attendees"]}
    assert {"accepted", "unknown: waitlisted"} <= statuses and "Accepted" not in statuses


def test_status_words() -> None:
    assert [events.status_word(v) for v in ("Accepted", " no-show ", "waitlisted", None, "")] == [
        "accepted", "no-show", "unknown: waitlisted", "unknown", "unknown"
    ]


async def test_free_places_are_unknown_when_a_ticket_type_does_not_say() -> None:
    """Two ticket types, one without `available`: the event's free places are unknown, not the other type's 5."""
    path = "/events/v2/demo/booking/e1"
    deps = scripted({
        path: {"uid": "e1", "title": "Fair", "start_date": "2030-01-01"},
        f"{path}/available_tickets": {"available_tickets": [{"name": "Adult", "available": 5}, {"name": "Child"}]},
        f"{path}/attendance/all": {"sessions": []},
    })
    event = await events.get_event(events.GetEventInput(uid="e1"), deps)
    assert event.tickets_free is None and "free places unknown" in (event.note or ""), event
    assert [t.free for t in event.tickets] == [5, None]


def test_a_cancelled_flag_that_is_not_a_boolean_is_status_unknown() -> None:
    base = {"uid": "e1", "title": "Fair", "status": "open"}
    assert [events.brief({**base, "cancelled": c}).status for c in (True, False, None, "false")] == [
        "cancelled", "open", "open", "unknown"
    ]


async def test_list_events_free_places_are_unknown_when_a_ticket_type_does_not_say() -> None:
    path = "/events/v2/demo/booking/e1"
    deps = scripted({f"{path}/available_tickets": {"available_tickets": [{"available": 5}, {"name": "Child"}]}})
    event = events.ListedEvent(uid="e1", title="Fair")
    await events._free(event, {}, deps, [])
    assert event.free is None
    deps = scripted({f"{path}/available_tickets": {"available_tickets": [{"available": 5}, {"available": -3}]}})
    await events._free(event, {}, deps, [])
    assert event.free == 5


async def test_no_events_matching_suggests_only_what_the_caller_has_not_tried(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    """An empty answer to state='all' never suggests state='all' again."""
    body = await answer_body(connect, shared_sandbox, "list_events", {"state": "all", "query": "zzqx nothing"})
    assert body["events"] == [] and "No all events match" in body["note"], body
    assert "state='all'" not in body["note"], body


async def test_a_person_ref_of_another_shape_is_could_not_read_never_attributed(connect: Any) -> None:
    """person_ref sent as a list (drift retyped-field): the session is listed without a person, the answer says
    whose could not be read, and its first entry is never taken as the person."""
    with SandboxServer(key=CANARY_KEY, drift=["retyped-field=person_ref:attendance"]) as sb:
        uid = sb.store.demo_facts()["past_event_uid"]
        body = await answer_body(connect, sb, "list_attendees", {"uid": uid, "limit": 50})
        held = [a for a in sb.store.attendance(sb.store.uri("booking", uid)) if a.data.get("record_state") != "deleted"]
    assert len(body["attendees"]) == len(held), body  # no row dropped
    assert all("person_uri" not in a for a in body["attendees"]), body
    assert "the person (person_ref) of" in body["note"] and "could not be read" in body["note"], body


async def test_sessions_without_a_person_ref_key_leave_a_persons_part_unknown(connect: Any) -> None:
    """person_ref absent (drift renamed-field: personRef): list_events(person=...) never says the person only
    ordered for others, and says whether they hold the sessions is unknown."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=person_ref:attendance"]) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        body = await answer_body(connect, sb, "list_events", {"person": jane, "state": "all", "limit": 50})
    assert body["events"], body
    assert all(e.get("person_status") != "ordered for others" for e in body["events"]), body
    assert "whether this person holds them is unknown" in body["note"], body


async def test_a_404_on_a_persons_orders_is_could_not_read_once_the_person_is_seen_to_exist(
    connect: Any, tmp_path: Path
) -> None:
    """openapi.yaml lists 200/400/401 for a person's orders: a 404 there (drift) is not "No person X" when their
    record reads. Their events come from attendance, and the note says the orders could not be read (HTTP 404)."""
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:/events/v2/demo/person/"]) as sb:
        facts = sb.store.demo_facts()
        found = await answer(connect, sb, "list_events", {"person": facts["jane_uri"], "state": "all", "limit": 50})
        async with member_session(sb, tmp_path, facts["jane_uri"], facts["jane_email"]) as client:
            mine = await client.call_tool("my_bookings", {"when": "all", "limit": 50})
        nobody = await answer(connect, sb, "list_events", {"person": "/demo/person/" + "0" * 24})
    assert not found.is_error and found.structured_content["events"], found.content
    assert "orders could not be read (HTTP 404" in found.structured_content["note"], found.structured_content
    assert not mine.is_error and mine.structured_content["bookings"], mine.content
    assert "orders could not be read (HTTP 404" in mine.structured_content["note"], mine.structured_content
    assert nobody.is_error and "No person" in error_text(nobody)  # their record reads 404 too, the bucket not


async def test_orders_whose_event_cannot_be_read_are_counted_in_the_note(connect: Any) -> None:
    """A `booking_uri` sent as a number (drift) names no event: such orders are counted in the note, never dropped
    unsaid."""
    with SandboxServer(key=CANARY_KEY, drift=["number-field=booking_uri:/orders"]) as sb:
        facts = sb.store.demo_facts()
        body = await answer_body(connect, sb, "list_events", {"person": facts["jane_uri"], "state": "all", "limit": 50})
    assert "orders give no event that could be read (`booking_uri`)" in (body.get("note") or ""), body


async def test_an_email_not_found_among_sessions_without_emails_is_could_not_check(connect: Any) -> None:
    """`attendee_email` is optional: with sessions that carry none (drift: the key respelled), a search by Jane's
    email finds no session, and the answer says the emails could not be checked, never "not booked under it"."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=attendee_email:attendance"]) as sb:
        facts = sb.store.demo_facts()
        body = await answer_body(connect, sb, "list_attendees", {"uid": facts["past_event_uid"],
                                                                 "name": facts["jane_email"]})
    said = json.dumps(body)
    assert not body["attendees"] and "not booked under it" not in said, said
    assert "could not be checked" in said, said


async def test_a_404_for_an_event_says_both_readings_never_no_such_event(shared_sandbox: SandboxServer,
                                                                          connect: Any) -> None:
    """openapi.yaml lists 200/400/401 for the event read: a 404 is said as sheepCRM answering 404 (no such event,
    or not readable with this key), never flatly "No event"."""
    result = await answer(connect, shared_sandbox, "get_event", {"uid": "nosuchevent0"})
    said = error_text(result)
    assert "sheepCRM answered 404 for event 'nosuchevent0'" in said and "cannot be read with this key" in said, said
    assert "No event with" not in said, said


async def test_free_places_say_their_basis_the_ticket_types_sum(shared_sandbox: SandboxServer, connect: Any) -> None:
    """Ticket types may share one stock (openapi.yaml: ticket_stock_control, total_stock_available), so their
    `available` places added up may overstate: get_event says its free places are that sum."""
    uid = shared_sandbox.store.demo_facts()["future_event_uid"]
    body = await answer_body(connect, shared_sandbox, "get_event", {"uid": uid})
    assert len(body["tickets"]) > 1 and body["tickets_free"] is not None, body
    assert "sum of the ticket types' available places" in body["note"], body


async def test_free_places_of_shared_stock_are_the_events_stock_never_the_ticket_types_sum(connect: Any) -> None:
    """openapi.yaml: an event with `ticket_stock_control` has `total_stock_available`; its ticket types share that
    stock, so their `available` places added up would overstate what is free. get_event and list_events
    read the event's own figure; without it they say the basis (the sum)."""
    with SandboxServer(key=CANARY_KEY) as sb:
        store = sb.store
        event = store.get_record("booking", store.demo_facts()["future_event_uid"])
        assert event is not None
        plain = await answer_body(connect, sb, "get_event", {"uid": event.uid})
        assert plain["tickets_free"] > 1, plain
        store.replace_data(event.uri, {**event.data, "ticket_stock_control": True, "total_stock_available": 1})
        single = await answer_body(connect, sb, "get_event", {"uid": event.uid})
        listed_ = await answer_body(connect, sb, "list_events", {"state": "future", "limit": 50})
    assert single["tickets_free"] == 1 and "total_stock_available" in single["note"], single
    assert next(e for e in listed_["events"] if e["uid"] == event.uid)["free"] == 1, listed_
    assert len(plain["tickets"]) > 1 and "sum of the ticket types' available places" in plain["note"], plain


async def test_listed_free_places_follow_the_full_event_when_the_list_row_does_not_say_its_stock(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openapi.yaml calls the event lists "a summary packet, call individual events for full details": a listed
    event that does not say whether its ticket types share one stock (no ticket_stock_control) gets its free places
    as get_event gives them, from the full event; when that cannot be read either, the sum is said to be one that
    get_event may give lower."""
    events_as_summary_packets(monkeypatch)
    with SandboxServer(key=CANARY_KEY) as sb:
        event = sb.store.get_record("booking", sb.store.demo_facts()["future_event_uid"])
        assert event is not None
        sb.store.replace_data(event.uri, {**event.data, "ticket_stock_control": True, "total_stock_available": 1})
        single = await answer_body(connect, sb, "get_event", {"uid": event.uid})
        listed_ = await answer_body(connect, sb, "list_events", {"state": "future", "limit": 50})
    assert single["tickets_free"] == 1 and len(single["tickets"]) > 1, single
    assert next(e for e in listed_["events"] if e["uid"] == event.uid)["free"] == 1, listed_
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:^/events/v2/[^/]+/booking/[^/]+$"]) as sb:
        unread = await answer_body(connect, sb, "list_events", {"state": "future", "limit": 50})
    assert "summary packet" in unread["note"] and "get_event's figure may be lower" in unread["note"], unread


async def test_a_shared_stock_whose_figure_cannot_be_read_leaves_free_places_unknown(connect: Any) -> None:
    """An event whose ticket types share one stock (ticket_stock_control true) without a readable
    total_stock_available (every EventSingle key is optional): the ticket types' sum would overstate the one stock,
    so free places are unknown in get_event and list_events, never the sum."""
    with SandboxServer(key=CANARY_KEY) as sb:
        event = sb.store.get_record("booking", sb.store.demo_facts()["future_event_uid"])
        assert event is not None
        sb.store.replace_data(event.uri, {**{k: v for k, v in event.data.items() if k != "total_stock_available"},
                                          "ticket_stock_control": True})
        single = await answer_body(connect, sb, "get_event", {"uid": event.uid})
        listed_ = await answer_body(connect, sb, "list_events", {"state": "future", "limit": 50})
    assert len(single["tickets"]) > 1 and single.get("tickets_free") is None, single
    assert "share one stock" in single["note"] and "free places unknown" in single["note"], single
    assert next(e for e in listed_["events"] if e["uid"] == event.uid).get("free") is None, listed_


async def test_marking_someone_who_came_only_as_a_guest_says_so_never_not_on_the_list(sandbox: SandboxServer,
                                                                                      connect: Any) -> None:
    """A person whose only session is a guest session naming them is on the list: the refusal says they are named
    only in a guest session (as the guest or the booker: undocumented), never "not on the attendance list"."""
    thomas, event = as_guest_only(sandbox)
    result = await answer(connect, sandbox, "set_attendance",
                          {"uid": event, "person_uris": [thomas], "status": "attended"})
    assert result.is_error, result.content
    said = str(result.content)
    assert "only in a guest session" in said and "Not on the attendance list" not in said, said
    assert puts(sandbox) == 0


def test_the_current_state_is_described_as_the_window_it_is() -> None:
    """A model reads list_events' `state` description as written: "current" is said in words as the window it
    lists (from 14 days ago to 90 days ahead), never as signed offsets."""
    said = events.ListEventsInput.model_fields["state"].description or ""
    assert "current: from 14 days ago to 90 days ahead;" in said, said
    assert not re.search(r"[-+]\d", said), said
