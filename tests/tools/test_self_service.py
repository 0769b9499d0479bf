"""The member profile end to end, as a signed-in member's client sees it: bookings are bookings (never
invitations), guests' visits count, upcoming events are read page by page and say what they did not check, and the
help offered is said to be sheepCRM's staff help. Expected values come from the sandbox's store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sheepcrm_mcp.sandbox.records import fmt_dt, now_utc
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.errors import Refusal
from sheepcrm_mcp.tools import self_service
from sheepcrm_mcp.tools.common import places
from tests.helpers import (
    CANARY_KEY,
    as_guest_only,
    clone_records,
    events_as_summary_packets,
    member_session,
    open_session,
    scripted,
)

BOOKED = {"accepted", "attended", "no-show"}


async def test_my_bookings_are_bookings_and_guest_visits(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    jane, free = facts["jane_uri"], facts["free_event_uid"]
    mine = [s.data["status"] for s in store.attendance(f"/demo/booking/{free}/") if s.data.get("person_ref") == jane]
    assert "invited" in mine and BOOKED & set(mine)
    async with member_session(shared_sandbox, tmp_path, jane, facts["jane_email"]) as client:
        upcoming = (await client.call_tool("my_bookings", {"when": "upcoming", "limit": 50})).structured_content
    at_free = [b["status"] for b in upcoming["bookings"] if b["event_uid"] == free]
    assert sorted(at_free) == sorted(s for s in mine if s in BOOKED), upcoming
    assert "invitation" in upcoming["note"]


async def test_my_bookings_include_my_visits_as_a_guest(sandbox: SandboxServer, tmp_path: Path) -> None:
    thomas, event = as_guest_only(sandbox)
    email = sandbox.store.demo_facts()["non_member_email"]
    async with member_session(sandbox, tmp_path, thomas, email) as client:
        past = (await client.call_tool("my_bookings", {"when": "past"})).structured_content
    assert [(b["event_uid"], b["status"], b.get("guest")) for b in past["bookings"]] == [(event, "attended", True)]


async def test_my_bookings_come_from_attendance_when_orders_are_refused(tmp_path: Path) -> None:
    """A key that may not read the person's orders (403): the bookings are read from the events' attendance, and
    the answer says the orders could not be read, never an error or "no bookings"."""
    with SandboxServer(key=CANARY_KEY, faults=["403:1:/person/[^/]+/orders"]) as sb:
        facts = sb.store.demo_facts()
        jane, past = facts["jane_uri"], facts["past_event_uid"]
        async with member_session(sb, tmp_path, jane, facts["jane_email"]) as client:
            result = await client.call_tool("my_bookings", {"when": "past", "limit": 50})
        refused = [r for r in sb.request_log if r.path.endswith("/orders")]
    body = result.structured_content
    assert not result.is_error and refused and {r.status for r in refused} == {403}, body
    assert past in {b["event_uid"] for b in body["bookings"]}, body
    assert "orders could not be read (403" in body["note"], body


async def test_upcoming_events_reads_every_page_and_says_what_it_did_not_check(tmp_path: Path) -> None:
    with SandboxServer(key=CANARY_KEY) as sb:
        facts = sb.store.demo_facts()
        soon = now_utc() + timedelta(days=1)
        # 300 events tomorrow without tickets: more than one upstream page and more than are checked for places
        clone_records(sb, f"/demo/booking/{facts['future_event_uid']}/", 300, start_datetime=fmt_dt(soon),
                      start_date=soon.date().isoformat(), end_datetime=fmt_dt(soon + timedelta(hours=2)),
                      end_date=soon.date().isoformat())
        async with member_session(sb, tmp_path, facts["jane_uri"], facts["jane_email"]) as client:
            body = (await client.call_tool("upcoming_events", {})).structured_content
        pages = [r for r in sb.request_log if r.path.endswith("/bookings/future")]
    assert len(pages) == 2, [r.query for r in pages]
    assert "not checked" in body["note"] and "total" not in body, body


async def test_the_member_is_told_the_help_is_sheepcrms_staff_help(
    shared_sandbox: SandboxServer, tmp_path: Path
) -> None:
    facts = shared_sandbox.store.demo_facts()
    async with member_session(shared_sandbox, tmp_path, facts["jane_uri"], facts["jane_email"]) as client:
        instructions = client.instructions or ""
        guide = (await client.read_resource("sheepcrm://guide")).contents[0].text  # type: ignore[union-attr]
        prompt = await client.get_prompt("help_prompt", {"question": "how do I renew?"})
    assert "staff" in instructions and "how-to articles" not in instructions
    assert "staff" in guide and "not\n  member how-to" in guide
    assert "staff" in prompt.messages[0].content.text  # type: ignore[union-attr]



async def test_my_membership_is_the_members_own(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    facts = shared_sandbox.store.demo_facts()
    status, _ = shared_sandbox.store.membership_status(facts["jane_uri"])
    async with open_session(shared_sandbox, tmp_path, profile="member") as client:
        result = await client.call_tool("my_membership", {})
        refused = await client.call_tool("my_membership", {"uri": facts["lapsed_uri"]})
    assert not result.is_error, result.content
    assert result.structured_content["contact_uri"] == facts["jane_uri"]
    assert result.structured_content["status"] == status
    assert refused.is_error and "uri" in refused.content[0].text  # type: ignore[union-attr]


async def test_my_bookings_are_the_events_the_member_booked(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    async with open_session(shared_sandbox, tmp_path, profile="member") as client:
        result = await client.call_tool("my_bookings", {"when": "all", "limit": 50})
    assert not result.is_error, result.content
    booked = {b["event_uid"] for b in result.structured_content["bookings"]}
    assert booked == {e.uid for e in store.events_of(facts["jane_uri"])} and facts["past_event_uid"] in booked


async def test_upcoming_events_have_free_places(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    async with open_session(shared_sandbox, tmp_path, profile="member") as client:
        result = await client.call_tool("upcoming_events", {"limit": 50})
    assert not result.is_error, result.content
    events = result.structured_content["events"]
    assert events and all(e["places_free"] > 0 for e in events)


async def test_an_event_that_does_not_say_its_free_places_is_places_unknown_not_full(tmp_path: Path) -> None:
    """Tickets without `available` (drift): the events are listed with places_free null and the note says the
    places are unknown; they are never left out as full."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=available:available_tickets"]) as sb:
        future = {e.uid for e in sb.store.events("future")}
        async with open_session(sb, tmp_path, profile="member") as client:
            result = await client.call_tool("upcoming_events", {"limit": 50})
    body = result.structured_content
    assert not result.is_error and body["events"], body
    assert {e["uid"] for e in body["events"]} <= future
    assert all(e.get("places_free") is None for e in body["events"]), body
    assert "places unknown" in body["note"], body


async def test_without_a_signed_in_member_the_tools_refuse() -> None:
    with pytest.raises(Refusal, match="no member is signed in"):
        await self_service.my_membership(self_service.MyMembershipInput(), scripted({}))


def test_counts_are_whole_and_never_negative() -> None:
    assert [places(v) for v in ("3", -2, None, "x", 4.7, True)] == [3, 0, None, None, 4, None]


async def test_one_events_unreadable_tickets_leave_the_others_listed(tmp_path: Path) -> None:
    """One event's tickets refused (403), and no ticket type saying whether it is for members only: the other
    events are still listed, that one with places unknown, and member_only is unknown, never False."""
    with SandboxServer(key=CANARY_KEY) as sb:  # the seeded events are the same in every sandbox
        refused = min(sb.store.events("future"), key=lambda e: e.data.get("start_date") or "").uid
    drift = ["renamed-field=member_only:available_tickets"]
    with SandboxServer(key=CANARY_KEY, drift=drift, faults=[f"403:1.0:/booking/{refused}/available_tickets"]) as sb:
        assert refused in {e.uid for e in sb.store.events("future")}
        async with open_session(sb, tmp_path, profile="member") as client:
            result = await client.call_tool("upcoming_events", {"limit": 50})
    body = result.structured_content
    assert not result.is_error and len(body["events"]) > 1, result.content
    assert all(e.get("member_only") is None for e in body["events"]), body
    [that] = [e for e in body["events"] if e["uid"] == refused]
    assert that.get("places_free") is None and "places unknown" in body["note"], body


async def test_a_booking_whose_status_is_unknown_is_listed_and_said(tmp_path: Path) -> None:
    """A session of Jane's with a status the documents do not name is neither hidden as 'not a booking' nor passed
    off as one: it is listed with its status and the note says whether it is a booking is unknown."""
    with SandboxServer(key=CANARY_KEY) as sb:
        facts = sb.store.demo_facts()
        mine = [s for s in sb.store.by_type("attendance")
                if s.data.get("person_ref") == facts["jane_uri"] and s.data.get("record_state") != "deleted"]
        assert mine, "the test needs a session of Jane's"
        sb.store.update(mine[0].uri, {"status": "waitlisted"}, message="t")
        async with member_session(sb, tmp_path, facts["jane_uri"], facts["jane_email"]) as client:
            body = (await client.call_tool("my_bookings", {"when": "all", "limit": 50})).structured_content
    assert "unknown: waitlisted" in {b["status"] for b in body["bookings"]}, body
    assert "whether they are bookings is unknown" in body["note"], body


async def test_an_event_whose_tickets_show_none_available_is_said_not_called_full(tmp_path: Path) -> None:
    """Every ticket type of an event says `available: 0` while the event does not say it is sold out (drift): the
    documents do not define `available` as free places, so the note counts it as showing none available; it is
    never left out unsaid."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=is_sold_out:/events/"]) as sb:
        uid = sb.store.demo_facts()["future_event_uid"]
        for t in sb.store.ticket_types(f"/demo/booking/{uid}/"):
            sb.store.update(t.uri, {"total": 0, "reserved": 0}, message="no places")
        async with open_session(sb, tmp_path, profile="member") as client:
            result = await client.call_tool("upcoming_events", {"limit": 50})
    body = result.structured_content
    assert not result.is_error and uid not in {e["uid"] for e in body["events"]}, body
    assert "1 event(s) show no places as available" in body["note"] and "not known to be full" in body["note"], body


async def test_an_event_whose_shared_stock_is_0_is_said_by_that_figure(tmp_path: Path) -> None:
    """An event whose ticket types share one stock, with `total_stock_available` 0 and not marked sold out (drift):
    the note names that figure, never the ticket types' `available` (which were not what was read)."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=is_sold_out:/events/"]) as sb:
        event = sb.store.get_record("booking", sb.store.demo_facts()["future_event_uid"])
        assert event is not None
        sb.store.replace_data(event.uri, {**event.data, "ticket_stock_control": True, "total_stock_available": 0})
        async with open_session(sb, tmp_path, profile="member") as client:
            result = await client.call_tool("upcoming_events", {"limit": 50})
    body = result.structured_content
    assert not result.is_error and event.uid not in {e["uid"] for e in body["events"]}, body
    assert "1 event(s) have 0 places in the stock their ticket types share (total_stock_available)" in body["note"]
    assert "`available`" not in body["note"] and "not marked sold out" in body["note"], body


async def test_upcoming_events_read_shared_stock_from_the_event(tmp_path: Path) -> None:
    """An event whose ticket types share one stock (`ticket_stock_control`) shows its `total_stock_available` as
    its free places, never the ticket types' `available` added up."""
    with SandboxServer(key=CANARY_KEY) as sb:
        event = sb.store.get_record("booking", sb.store.demo_facts()["future_event_uid"])
        assert event is not None
        sb.store.replace_data(event.uri, {**event.data, "ticket_stock_control": True, "total_stock_available": 1})
        async with open_session(sb, tmp_path, profile="member") as client:
            result = await client.call_tool("upcoming_events", {"limit": 50})
    assert not result.is_error, result.content
    assert next(e for e in result.structured_content["events"] if e["uid"] == event.uid)["places_free"] == 1


async def test_upcoming_free_places_follow_the_full_event_when_the_list_row_does_not_say_its_stock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As list_events: a listed event whose row does not say whether its ticket types share one stock (a "summary
    packet") gets its free places from the full event, never the ticket types' sum; when that cannot be read either,
    the sum is said to be one that get_event may give lower."""
    events_as_summary_packets(monkeypatch)
    with SandboxServer(key=CANARY_KEY) as sb:
        event = sb.store.get_record("booking", sb.store.demo_facts()["future_event_uid"])
        assert event is not None
        sb.store.replace_data(event.uri, {**event.data, "ticket_stock_control": True, "total_stock_available": 1})
        async with open_session(sb, tmp_path, profile="member") as client:
            body = (await client.call_tool("upcoming_events", {"limit": 50})).structured_content
    assert next(e for e in body["events"] if e["uid"] == event.uid)["places_free"] == 1, body
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:^/events/v2/[^/]+/booking/[^/]+$"]) as sb:
        async with open_session(sb, tmp_path, profile="member") as client:
            unread = (await client.call_tool("upcoming_events", {"limit": 50})).structured_content
    assert unread["events"] and "get_event's figure may be lower" in unread["note"], unread
