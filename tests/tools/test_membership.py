"""check_membership (and my_membership, and the renewal lists) end to end: membership means the same whichever
way it is asked, and what sheepCRM says that the documents do not name is answered as unknown, never as "no".
Expected values come from the sandbox's store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import date as Date
from pathlib import Path
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.records import now_utc, primary
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.tools import membership
from tests.helpers import (
    CANARY_KEY,
    MODES,
    Readers,
    answer,
    answer_body,
    clone_records,
    error_text,
    member_session,
    read,
)


def current_membership(sb: SandboxServer, contact: str) -> str:
    today = now_utc().date().isoformat()
    return next(m.uri for m in sb.store.memberships(contact)
                if m.data["start_date"] <= today <= m.data["end_date"] and m.data["record_state"] != "deleted")


async def check(connect: Any, sb: SandboxServer, **args: Any) -> dict[str, Any]:
    result = await answer(connect, sb, "check_membership", args)
    assert not result.is_error, result.content
    body: dict[str, Any] = result.structured_content
    return body


async def test_a_status_sheepcrm_does_not_name_is_unknown_naming_it(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(current_membership(sandbox, jane), {"membership_record_status": "renewal_due"}, message="t")
    body = await check(connect, sandbox, uri=jane)
    assert body["status"] == "unknown" and "is_member" not in body, body
    assert "renewal_due" in body["summary"] and "ended" not in body["summary"]


async def test_pending_means_the_sign_up_is_not_complete(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(current_membership(sandbox, jane), {"membership_record_status": "Pending"}, message="t")
    body = await check(connect, sandbox, uri=jane)
    assert body["status"] == "pending" and body["is_member"] is False and "not complete" in body["summary"]


async def test_a_date_that_cannot_be_read_is_unknown(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(current_membership(sandbox, jane), {"end_date": "31/12/2099"}, message="t")
    body = await check(connect, sandbox, uri=jane)
    assert body["status"] == "unknown" and "is_member" not in body and "end_date" in body["summary"]


def into_grace(sb: SandboxServer) -> tuple[str, str]:
    """Charles's last membership ended five days ago: inside sheepCRM's grace period (v1 member_till_plus_grace)."""
    facts = sb.store.demo_facts()
    charles = facts["lapsed_uri"]
    last = sb.store.memberships(charles)[0]
    today = now_utc().date()
    sb.store.update(last.uri, {"start_date": (today - timedelta(days=370)).isoformat(),
                               "end_date": (today - timedelta(days=5)).isoformat()}, message="t")
    return charles, facts["lapsed_email"]


async def test_grace_is_the_same_by_uri_by_email_and_for_the_member(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    charles, email = into_grace(sandbox)
    by_uri = await check(connect, sandbox, uri=charles)
    by_email = await check(connect, sandbox, email=email)
    async with member_session(sandbox, tmp_path, charles, email) as client:
        mine = (await client.call_tool("my_membership", {})).structured_content
    for body in (by_uri, by_email, mine):
        assert body["status"] == "grace" and body["is_member"] is False, body
        assert body["grace_until"] == by_email["grace_until"]
        assert "T00:00:00" not in body["summary"]  # a date in a sentence, not a raw datetime


async def test_the_renewal_flags_are_shown(shared_sandbox: SandboxServer, connect: Any) -> None:
    jane = shared_sandbox.store.demo_facts()["jane_uri"]
    body = await check(connect, shared_sandbox, uri=jane)
    record = shared_sandbox.store.get(body["membership_uri"])
    assert record is not None
    assert body["renewal"] == {k: record.data[k] for k in ("auto_renew", "has_renewed", "advise_lapse",
                                                           "payment_method")}


async def test_an_organisation_is_not_sent_down_the_person_path(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    org = shared_sandbox.store.demo_facts()["organisation_uri"]
    before = len(shared_sandbox.request_log)
    body = await check(connect, shared_sandbox, uri=org)
    paths = [r.path for r in shared_sandbox.request_log[before:]]
    assert not [p for p in paths if p.endswith("/membership/all")], paths
    assert body["status"] == "current" and body["plan"] == "Corporate" and "organisation" in body["note"]


def bury_the_current_membership(sb: SandboxServer, org: str, lapsed: int) -> None:
    """The organisation's current membership made to end last year, `lapsed` copies of it, then a current one
    listed after them all."""
    current = current_membership(sb, org)
    today = now_utc().date()
    sb.store.update(current, {"end_date": (today - timedelta(days=365)).isoformat()}, message="t")
    clone_records(sb, current, lapsed)
    clone_records(sb, current, 1, start_date=today.isoformat(), end_date=(today + timedelta(days=30)).isoformat())


async def test_an_organisations_memberships_are_read_on_every_page(sandbox: SandboxServer, connect: Any) -> None:
    """More membership records than one v1 page: the current one on the second page is found."""
    org = sandbox.store.demo_facts()["organisation_uri"]
    bury_the_current_membership(sandbox, org, 120)
    body = await check(connect, sandbox, uri=org)
    assert body["status"] == "current" and body["is_member"] is True, body
    assert len([r for r in sandbox.request_log if r.path.endswith("/member/")]) == 2


async def test_an_organisation_whose_records_cannot_all_be_read_is_unknown(connect: Any) -> None:
    """sheepCRM ignores the paging (variant v1-paging) and the records it sends hold no current membership: the
    one not read may be current, so the status is unknown, never "not a member: ended on ..."."""
    with SandboxServer(key=CANARY_KEY, variant="v1-paging") as sb:
        org = sb.store.demo_facts()["organisation_uri"]
        bury_the_current_membership(sb, org, 30)
        body = await check(connect, sb, uri=org)
    assert body["status"] == "unknown" and "is_member" not in body, body
    assert "could not all be read" in body["summary"] and "ended" not in body["summary"]
    assert "could not be read completely" in body["note"], body


async def test_a_plan_on_a_later_page_is_found_and_one_not_read_is_unknown(sandbox: SandboxServer,
                                                                            connect: Any) -> None:
    """The plans by name are read on every page: a plan on the second page is found; when sheepCRM ignores the
    paging (variant v1-paging) a plan not read is "could not read the plans completely", never "No plan named"."""
    plan = sandbox.store.by_type("membership_type")[0].uri
    clone_records(sandbox, plan, 120)
    gold = clone_records(sandbox, plan, 1, name="Zenith")[0]  # listed last
    sandbox.store.update(gold, {"display_value": "Zenith"}, message="t")
    result = await answer(connect, sandbox, "search_contacts", {"plan": "Zenith"})
    assert not result.is_error, result.content
    with SandboxServer(key=CANARY_KEY, variant="v1-paging") as sb:
        plan = sb.store.by_type("membership_type")[0].uri
        clone_records(sb, plan, 30)
        gold = clone_records(sb, plan, 1, name="Zenith")[0]
        sb.store.update(gold, {"display_value": "Zenith"}, message="t")
        unread = error_text(await answer(connect, sb, "search_contacts", {"plan": "Zenith"}))
    assert "Could not read the plans completely" in unread and "No plan named" not in unread, unread


async def test_an_unknown_email_keeps_the_credentials_caveat_out_of_the_summary(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    body = await check(connect, shared_sandbox, email="nobody@nowhere.example")
    assert body["is_member"] is False and "No contact in the CRM" in body["summary"]
    assert "doctor" not in body["summary"] and "credentials" not in body["summary"]
    assert "doctor" in body["note"]  # still said, for staff


async def test_renewal_lists_leave_out_renewed_and_carry_an_email(sandbox: SandboxServer, connect: Any) -> None:
    store = sandbox.store
    today = now_utc().date()
    current = [m for m in store.by_type("member") if m.data["paid"] and m.data["record_state"] != "deleted"
               and m.data["start_date"] <= today.isoformat() <= m.data["end_date"]
               and m.data["membership_record_status"] == "active"]
    renewed, due = current[0], current[1]
    store.update(renewed.uri, {"end_date": (today + timedelta(days=10)).isoformat(), "has_renewed": True},
                 message="t")
    store.update(due.uri, {"end_date": (today + timedelta(days=11)).isoformat()}, message="t")
    result = await answer(connect, sandbox, "search_contacts", {"renewing_within_days": 12, "limit": 50})
    body = result.structured_content
    rows = {c["membership_uri"]: c for c in body["contacts"]}
    assert renewed.uri not in rows and due.uri in rows, body
    contact = store.get(due.data["member"])
    assert contact is not None and rows[due.uri]["email"] == primary(contact.data["email"])
    assert "1 membership(s)" in body["note"] and "already renewed (has_renewed)" in body["note"], body


async def test_a_listing_that_ignores_the_paging_is_never_read_twice(connect: Any) -> None:
    """v1 paging parameters are a guess (variant v1-paging: sheepCRM ignores them and answers its own first page
    every time): a plan's members are listed once each, and the answer says the list could not be read completely;
    a renewal window larger than that page is "could not be read completely", never a shorter list."""
    with SandboxServer(key=CANARY_KEY, variant="v1-paging") as sb:
        seen: list[str] = []
        notes: list[str] = []
        async with connect(sb) as client:
            args: dict[str, Any] = {"plan": "Standard", "limit": 20}
            for _ in range(10):
                body = (await client.call_tool("search_contacts", args)).structured_content
                seen += [c["uri"] for c in body["contacts"]]
                notes.append(body.get("note") or "")
                if not body.get("next_cursor"):
                    break
                args = {**args, "cursor": body["next_cursor"]}
            renewals = await client.call_tool("search_contacts", {"renewing_within_days": 366})
    assert len(seen) == len(set(seen)) and 0 < len(seen) <= 25, seen
    assert "could not be read completely" in notes[-1], notes
    assert "could not be read completely" in error_text(renewals)


async def test_renewal_lists_are_soonest_first_across_pages(sandbox: SandboxServer, connect: Any) -> None:
    """sheepCRM's listing has no documented order: the soonest renewal is on page one however small the page,
    and the end dates never go back across pages."""
    store = sandbox.store
    today = now_utc().date()
    current = [m for m in store.by_type("member") if m.data["paid"] and m.data["record_state"] != "deleted"
               and m.data["start_date"] <= today.isoformat() <= m.data["end_date"]
               and m.data["membership_record_status"] == "active" and not m.data.get("has_renewed")]
    soonest = current[-1]  # the last one the listing gives
    store.update(soonest.uri, {"end_date": (today + timedelta(days=1)).isoformat()}, message="t")
    pages: list[list[dict[str, Any]]] = []
    async with connect(sandbox) as client:
        args: dict[str, Any] = {"renewing_within_days": 60, "limit": 10}
        while True:
            body = (await client.call_tool("search_contacts", args)).structured_content
            pages.append(body["contacts"])
            if not body.get("next_cursor"):
                break
            args = {**args, "cursor": body["next_cursor"]}
    assert len(pages) > 1, "the window must span pages for this test to mean anything"
    assert soonest.uri in {c["membership_uri"] for c in pages[0]}
    ends = [c["end_date"] for page in pages for c in page]
    assert ends == sorted(ends)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("who", ["jane", "lapsed", "future", "non_member"])
async def test_check_membership(shared_sandbox: SandboxServer, readers: Readers, mode: str, who: str) -> None:
    store = shared_sandbox.store
    facts = store.demo_facts()
    status, member = store.membership_status(facts[f"{who}_uri"])
    by_email = await read(readers, "check_membership", {"email": facts[f"{who}_email"]}, mode=mode)
    by_uri = await read(readers, "check_membership", {"uri": facts[f"{who}_uri"]}, mode=mode)
    for body in (by_email, by_uri):
        assert body["status"] == status
        assert body["is_member"] == (status == "current")
        assert body["contact_uri"] == facts[f"{who}_uri"]
    if member is not None:
        assert by_uri["end_date"] == member.data["end_date"]
    if status == "current":
        left = (date.fromisoformat(member.data["end_date"][:10]) - datetime.now(UTC).date()).days  # type: ignore[union-attr]
        assert by_uri["days_left"] == left


async def test_membership_never_reports_unpaid_or_deleted_as_current(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    facts = shared_sandbox.store.demo_facts()
    unpaid = await answer_body(connect, shared_sandbox, "check_membership", {"uri": facts["unpaid_uri"]})
    assert unpaid["is_member"] is False and unpaid["status"] == "unpaid" and "not paid" in unpaid["summary"]
    deleted = await answer_body(connect, shared_sandbox, "check_membership", {"email": facts["deleted_member_email"]})
    assert deleted["is_member"] is False and deleted["status"] == "none"
    jane = await answer_body(connect, shared_sandbox, "check_membership", {"uri": facts["jane_uri"]})
    assert jane["is_member"] is True and jane["plan"] == "Standard"  # the name from membership_type's /display


async def test_grace_from_the_v1_answer(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    lapsed = await answer_body(connect, shared_sandbox, "check_membership", {"email": facts["lapsed_email"]})
    assert lapsed["is_member"] is False and lapsed["status"] in ("lapsed", "grace")


async def test_an_unknown_email_is_no_contact(shared_sandbox: SandboxServer, connect: Any) -> None:
    unknown = await answer_body(connect, shared_sandbox, "check_membership", {"email": "nobody@nowhere.example"})
    assert unknown["is_member"] is False and "No contact in the CRM" in unknown["summary"]


# ---- the pure mappers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "status"),
    [
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "paid": True}, "current"),
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "paid": False}, "unpaid"),
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "membership_record_status": "lapsed"}, "lapsed"),
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "membership_record_status": "deleted"}, "unknown"),
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "cancellation_date": "2026-05-01"}, "cancelled"),
        ({"start_date": "2026-07-01", "end_date": "2027-06-30"}, "future"),
        ({"start_date": "2025-01-01", "end_date": "2025-12-31"}, "lapsed"),
        ({"end_date": "2026-12-31"}, "unknown"),
        ({"start_date": None, "end_date": "2026-12-31", "paid": True}, "unknown"),
    ],
)
def test_classify_by_dates_then_by_what_sheepcrm_says(record: dict[str, Any], status: str) -> None:
    assert membership.classify(record, Date(2026, 6, 1)) == status


async def test_a_membership_lookup_whose_person_is_not_an_object_is_could_not_read(connect: Any) -> None:
    """The membership-by-email answer as a list, not an object (drift): 'could not read sheepCRM's answer',
    naming its shape, never a traceback, never 'not a member'."""
    with SandboxServer(key=CANARY_KEY, drift=["retyped-field:/user/membership"]) as sb:
        email = sb.store.demo_facts()["jane_email"]
        said = error_text(await answer(connect, sb, "check_membership", {"email": email}))
    assert "could not read sheepcrm's answer" in said.lower() and "failed unexpectedly" not in said, said
    assert "not a member" not in said and "No contact" not in said, said



async def test_a_membership_without_a_start_date_is_unknown_not_none(connect: Any) -> None:
    """`start_date` respelled (drift): the records say nothing of when they cover, so the answer is unknown, naming
    the field, never "no membership on record"."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=start_date:membership/all"]) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        body = await check(connect, sb, uri=jane)
    assert body["status"] == "unknown" and "is_member" not in body, body
    assert "no membership" not in body["summary"] and "start_date" in body["summary"], body
