"""The member profile end to end, as a signed-in member's client sees it: bookings are bookings (never
invitations), guests' visits count, upcoming events are read page by page and say what they did not check, and the
help offered is said to be sheepCRM's staff help. Expected values come from the sandbox's store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sheepcrm_mcp.sandbox.records import fmt_dt, now_utc
from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, clone_records, member_session
from tests.tools.test_events import as_guest_only

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
