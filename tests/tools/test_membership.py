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
    sandbox_answers,
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


async def test_a_membership_list_holding_fewer_records_than_its_count_is_unknown(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PersonMembershipAll's `count` is "the number of memberships for this contact": a list holding fewer records
    (here Jane's current membership left out, still counted) is not the whole list, so her membership is unknown,
    naming both counts, never "lapsed" from the records that were sent. A `count` that is not a number is said
    (by its key), not taken as a count."""

    def newest_left_out(request: Any, body: Any) -> Any:
        return {**body, "memberships": body["memberships"][1:]}

    sandbox_answers(monkeypatch, "contact_memberships", newest_left_out)
    with SandboxServer(key=CANARY_KEY) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        sent = len(sb.store.memberships(jane))
        short = await check(connect, sb, uri=jane)
    assert short["status"] == "unknown" and short.get("is_member") is None, short
    assert f"sheepCRM counts {sent} memberships for this contact but sent {sent - 1}" in short["note"], short
    monkeypatch.undo()
    sandbox_answers(monkeypatch, "contact_memberships", lambda request, body: {**body, "count": [body["count"]]})
    with SandboxServer(key=CANARY_KEY) as sb:
        unread = await check(connect, sb, uri=sb.store.demo_facts()["lapsed_uri"])
    assert unread["status"] == "unknown" and "Could not read the membership list's `count`" in unread["note"], unread


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


def paged_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan's list larger than the window read whole (here 5 records), so that it is paged upstream, one page a
    call."""
    monkeypatch.setattr(membership, "WINDOW_PAGE", 5)
    monkeypatch.setattr(membership, "WINDOW_PAGES", 1)


async def plan_pages(client: Any, plan: str, limit: int) -> list[dict[str, Any]]:
    """Every answer of search_contacts for a plan's members, following next_cursor (at most 20)."""
    bodies: list[dict[str, Any]] = []
    args: dict[str, Any] = {"plan": plan, "limit": limit}
    for _ in range(20):
        result = await client.call_tool("search_contacts", args)
        assert not result.is_error, result.content
        bodies.append(result.structured_content)
        if not (cursor := result.structured_content.get("next_cursor")):
            break
        args = {**args, "cursor": cursor}
    return bodies


async def test_a_short_upstream_page_whose_total_says_more_moves_on_never_repeating_members(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sheepCRM answers the first page of a plan's members (paged upstream) with 7 of its 10 records while its
    `total` says there are more: the next cursor asks for the next page, never the same page again (its members
    would be listed twice), and the answer says records may be missing, the list not read completely."""
    paged_upstream(monkeypatch)

    def short(request: Any, body: Any) -> Any:
        if request.path_params["rtype"] == "member" and (body["page"], body["page_size"]) == (1, 10):
            body["results"] = body["results"][:7]
        return body

    sandbox_answers(monkeypatch, "v1_list", short)
    with SandboxServer(key=CANARY_KEY) as sb:
        async with connect(sb) as client:
            bodies = await plan_pages(client, "Standard", 10)
    seen = [c["membership_uri"] for b in bodies for c in b["contacts"]]
    assert len(bodies) > 2 and len(seen) == len(set(seen)), seen
    assert "fewer than its page size of 10" in bodies[0]["note"], bodies[0]
    assert "could not be read completely" in bodies[0]["note"], bodies[0]


async def test_a_listed_membership_whose_member_cannot_be_read_is_counted_never_an_empty_uri(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A current membership listed without its `member` (the contact it belongs to): search_contacts never lists it
    as a contact with an empty uri; it is counted in the note, naming the key."""

    def memberless(request: Any, body: Any) -> Any:
        if request.path_params["rtype"] == "member" and body["results"]:
            first = body["results"][0]
            body["results"][0] = {**first, "data": {k: v for k, v in first["data"].items() if k != "member"}}
        return body

    sandbox_answers(monkeypatch, "v1_list", memberless)
    with SandboxServer(key=CANARY_KEY) as sb:
        body = await answer_body(connect, sb, "search_contacts", {"plan": "Standard", "limit": 50})
    assert body["contacts"] and all(c["uri"] for c in body["contacts"]), body
    assert "Could not read the contact of 1 membership(s) listed here (their `member`" in body["note"], body


@pytest.mark.parametrize("echo", ["missing", "a string"])
async def test_an_upstream_page_that_does_not_say_which_page_it_is_is_not_trusted_as_the_page_asked(
    connect: Any, monkeypatch: pytest.MonkeyPatch, echo: str
) -> None:
    """sheepCRM's answer to a plan's page (paged upstream) carries no readable `page` echo: which part of the list
    it holds is unknown, so its members are shown without a next cursor (a later page might repeat or skip them)
    and the answer says the order could not be confirmed, naming the key."""
    paged_upstream(monkeypatch)

    def unechoed(request: Any, body: Any) -> Any:
        if request.path_params["rtype"] == "member":
            if echo == "missing":
                del body["page"]
            else:
                body["page"] = str(body["page"])
        return body

    sandbox_answers(monkeypatch, "v1_list", unechoed)
    with SandboxServer(key=CANARY_KEY) as sb:
        async with connect(sb) as client:
            [body] = await plan_pages(client, "Standard", 10)
    assert body["contacts"] and body.get("next_cursor") is None, body
    assert "its `page` (the page it answered) is missing or not a page number" in body["note"], body
    assert "could not be confirmed" in body["note"] and "could not be read completely" in body["note"], body


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
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "paid": True, "membership_record_status": "active"},
         "current"),
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "paid": True}, "unknown"),  # no status: not "yes"
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "paid": "yes", "membership_record_status": "Active"},
         "unknown"),
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "paid": False}, "unpaid"),
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "membership_record_status": "lapsed"}, "lapsed"),
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "membership_record_status": "deleted"}, "unknown"),
        ({"start_date": "2026-01-01", "end_date": "2026-12-31", "cancellation_date": "2026-05-01"}, "cancelled"),
        ({"start_date": "2026-07-01", "end_date": "2027-06-30"}, "future"),
        ({"start_date": "2025-01-01", "end_date": "2025-12-31"}, "lapsed"),
        # a status outside the six is unknown whatever the dates say
        ({"start_date": "2025-01-01", "end_date": "2025-12-31", "membership_record_status": "renewal_due"}, "unknown"),
        ({"start_date": "2026-07-01", "end_date": "2027-06-30", "membership_record_status": "renewal_due"}, "unknown"),
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


# ---- what sheepCRM leaves out or sends unreadable is said, never printed as None nor taken as "no" ----------


async def test_a_membership_without_an_end_date_is_open_ended_never_none(sandbox: SandboxServer,
                                                                          connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(current_membership(sandbox, jane), {"end_date": None}, message="t")
    body = await check(connect, sandbox, uri=jane)
    assert body["status"] == "current" and body["is_member"] is True and "days_left" not in body, body
    assert "no end date recorded" in body["summary"] and "None" not in body["summary"], body


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"membership_record_status": "renewal_due", "end_date": None}, "from "),  # unknown: (start to None)
        ({"membership_record_status": "lapsed", "end_date": None}, "from "),  # marked: dates (start to None)
        ({"start_date": "soon"}, "an unreadable start_date"),
        ({"end_date": "31/12/2099"}, "an unreadable end_date"),  # never the raw value
    ],
)
async def test_summaries_never_print_none_or_a_raw_value(
    sandbox: SandboxServer, connect: Any, changes: dict[str, Any], said: str
) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(current_membership(sandbox, jane), changes, message="t")
    body = await check(connect, sandbox, uri=jane)
    summary = body["summary"]
    assert said in summary and "None" not in summary and "31/12/2099" not in summary and "soon" not in summary, summary
    assert body["status"] != "current", body


@pytest.mark.parametrize(("record_status", "payment"), [("pending", True), ("Pending", True), ("incomplete", False)])
async def test_only_pending_says_a_payment_is_usually_missing(
    sandbox: SandboxServer, connect: Any, record_status: str, payment: bool
) -> None:
    """The vendor says "pending" is a sign-up not complete, usually a missing payment; of "incomplete" it says no
    such thing, so its answer does not either."""
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(current_membership(sandbox, jane), {"membership_record_status": record_status},
                         message="t")
    body = await check(connect, sandbox, uri=jane)
    assert body["status"] == "pending" and body["is_member"] is False, body
    assert ("payment" in body["summary"]) is payment, body["summary"]


async def test_an_unreadable_renewal_flag_is_said_not_left_out(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(current_membership(sandbox, jane), {"has_renewed": "yes"}, message="t")
    body = await check(connect, sandbox, uri=jane)
    assert "has_renewed" not in (body.get("renewal") or {}), body
    assert "Could not read `has_renewed`" in body["note"] and "yes" not in body["note"], body


async def test_an_unreadable_grace_date_is_said(sandbox: SandboxServer, connect: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """member_till_plus_grace that is not a date: whether the grace period applies is unknown, and the note says
    so, naming the key."""
    charles, _ = into_grace(sandbox)

    async def unreadable(uri: Any, v1: Any, deps: Any) -> tuple[str | None, str | None]:
        return "soon", None

    monkeypatch.setattr(membership, "grace_of", unreadable)
    body = await check(connect, sandbox, uri=charles)
    assert body["status"] == "lapsed" and "member_till_plus_grace" in body["note"], body
    assert "soon" not in body["summary"] + body["note"], body


def renewals(sb: SandboxServer, within: int) -> dict[str, Any]:
    """The current, paid, active, not renewed memberships ending within `within` days: uri -> record."""
    today = now_utc().date()
    until = (today + timedelta(days=within)).isoformat()
    return {m.uri: m for m in sb.store.by_type("member") if m.data["paid"] and m.data["record_state"] != "deleted"
            and m.data["start_date"] <= today.isoformat() <= m.data["end_date"] <= until
            and m.data["membership_record_status"] == "active" and m.data.get("has_renewed") is not True}


async def test_a_renewal_list_flags_an_unreadable_has_renewed(sandbox: SandboxServer, connect: Any) -> None:
    today = now_utc().date()
    due = next(iter(renewals(sandbox, 400).values()))
    sandbox.store.update(due.uri, {"end_date": (today + timedelta(days=3)).isoformat(), "has_renewed": "yes"},
                         message="t")
    body = await answer_body(connect, sandbox, "search_contacts", {"renewing_within_days": 5, "limit": 50})
    assert due.uri in {c["membership_uri"] for c in body["contacts"]}, body
    assert "Could not read `has_renewed`" in body["note"] and due.uri in body["note"], body


@pytest.mark.parametrize("variant", [None, "member-filters-ignored"])
async def test_renewals_and_plans_are_checked_on_each_record(connect: Any, variant: str | None) -> None:
    """A listing may not apply the renewal window (`end_date__lte`) or the plan filter (each resource's schema
    defines its filters; variant member-filters-ignored applies none): each record is checked against both, so
    the list holds exactly the store's renewals, and a plan's list only that plan's memberships."""
    with SandboxServer(key=CANARY_KEY, variant=variant) as sb:
        due = renewals(sb, 30)
        listed = await answer_body(connect, sb, "search_contacts", {"renewing_within_days": 30, "limit": 50})
        standard = await answer_body(connect, sb, "search_contacts", {"plan": "Standard", "limit": 50})
        plans = {p.display_value: p.uri for p in sb.store.by_type("membership_type")}
        on_plan = {c["membership_uri"]: sb.store.get(c["membership_uri"]) for c in standard["contacts"]}
    assert due and {c["membership_uri"] for c in listed["contacts"]} == set(due), listed
    assert on_plan and all(m is not None and m.data["membership_type"] == plans["Standard"]
                           for m in on_plan.values()), standard


@pytest.mark.parametrize("variant", [None, "member-filters-ignored"])
async def test_an_organisations_memberships_are_checked_to_be_its_own(connect: Any, variant: str | None) -> None:
    """The organisation's membership records come from a v1 listing filtered by member, which may not apply the
    filter (variant member-filters-ignored): each record is checked to be the organisation's; the others are left
    out, and the note says so."""
    with SandboxServer(key=CANARY_KEY, variant=variant) as sb:
        org = sb.store.demo_facts()["organisation_uri"]
        body = await check(connect, sb, uri=org)
        record = sb.store.get(body["membership_uri"])
    assert record is not None and record.data["member"] == org, body
    assert body["status"] == "current" and body["plan"] == "Corporate", body
    assert ("belong to other contacts" in body["note"]) is (variant is not None), body["note"]


async def test_an_organisation_record_that_cannot_be_attributed_is_unknown(connect: Any) -> None:
    """The listing ignores the member filter and one record names no member: it may be the organisation's current
    one, so with no current membership of its own the answer is unknown, never "not a member"."""
    with SandboxServer(key=CANARY_KEY, variant="member-filters-ignored") as sb:
        org = sb.store.demo_facts()["organisation_uri"]
        current = current_membership(sb, org)
        today = now_utc().date()
        sb.store.update(current, {"end_date": (today - timedelta(days=400)).isoformat(),
                                  "start_date": (today - timedelta(days=765)).isoformat()}, message="t")
        other = next(m for m in sb.store.by_type("member") if m.data["member"] != org)
        sb.store.update(other.uri, {"member": None}, message="t")
        body = await check(connect, sb, uri=org)
    assert body["status"] == "unknown" and "is_member" not in body, body
    assert "could not be attributed" in body["note"] and "ended" not in body["summary"], body


async def test_a_membership_held_as_a_linked_member_counts_and_one_of_another_contact_does_not(
    sandbox: SandboxServer, connect: Any
) -> None:
    """A record in the person's membership list whose member is another contact is theirs only when it lists the
    person among its linked members (openapi.yaml: `member`, `linked_members`)."""
    facts = sandbox.store.demo_facts()
    jane, other = facts["jane_uri"], facts["non_member_uri"]
    current = current_membership(sandbox, jane)
    sandbox.store.update(current, {"member": other, "linked_members": [jane]}, message="t")
    linked = await check(connect, sandbox, uri=jane)
    assert linked["status"] == "current" and linked["membership_uri"] == current, linked
    assert f"linked members of {other}" in linked["summary"], linked
    sandbox.store.update(current, {"linked_members": []}, message="t")
    theirs = await check(connect, sandbox, uri=jane)
    assert theirs["status"] != "current" and theirs.get("membership_uri") != current, theirs
    assert "belong to other contacts" in theirs["note"], theirs


@pytest.mark.parametrize("who", ["lapsed", "non_member"])
async def test_a_no_is_given_once_memberships_through_others_are_read(
    shared_sandbox: SandboxServer, connect: Any, who: str
) -> None:
    """Another contact's membership may cover this one as a linked member (openapi.yaml `linked_members`), which the
    contact's own membership list may not hold: a "not a member" answer is given only after the memberships listing
    this contact among their linked members were read."""
    uri = shared_sandbox.store.demo_facts()[f"{who}_uri"]
    before = len(shared_sandbox.request_log)
    body = await check(connect, shared_sandbox, uri=uri)
    asked = [r.query for r in shared_sandbox.request_log[before:] if r.path == "/api/v1/demo/member/"]
    assert body["is_member"] is False and body["status"] in ("lapsed", "none"), body
    assert any("linked_members__startswithi" in q for q in asked), asked


async def test_a_person_covered_only_as_a_linked_member_is_a_member(sandbox: SandboxServer, connect: Any) -> None:
    """A person listed among the linked members of an organisation's current membership, whose own membership list
    does not hold it, is a current member through it, never "no membership on record"."""
    facts = sandbox.store.demo_facts()
    thomas, org = facts["non_member_uri"], facts["organisation_uri"]
    assert not sandbox.store.memberships(thomas)
    held = current_membership(sandbox, org)
    sandbox.store.update(held, {"linked_members": [thomas], "max_linked_members": 5}, message="t")
    body = await check(connect, sandbox, uri=thomas)
    assert body["status"] == "current" and body["is_member"] is True and body["membership_uri"] == held, body
    assert f"linked members of {org}" in body["summary"], body


async def test_memberships_through_others_that_cannot_be_read_make_a_no_unknown(connect: Any) -> None:
    """The memberships listing a contact among their linked members cannot be read (the member listing is gone):
    with no current membership of their own, whether they are a member is unknown, never "not a member"."""
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:^/api/v1/[^/]+/member/$"]) as sb:
        body = await check(connect, sb, uri=sb.store.demo_facts()["lapsed_uri"])
    assert body["status"] == "unknown" and "is_member" not in body, body
    assert "list this contact among their linked members" in body["note"], body


async def test_an_email_the_membership_lookup_misses_is_looked_up_in_the_contacts(connect: Any) -> None:
    """A 404 from the membership lookup by email (its path moved; or its cached data is behind) is checked with
    the contact listings as create_contact does (email__startswithi, then the whole address, case folded): the
    contact is found and answered, never "no contact"."""
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:^/api/v1/[^/]+/user/membership/$"]) as sb:
        facts = sb.store.demo_facts()
        body = await check(connect, sb, email=facts["jane_email"].upper())
        nobody = await check(connect, sb, email="nobody@nowhere.example")
        prefix = await check(connect, sb, email=facts["jane_email"][:-3])  # a prefix of hers is not her address
    assert body["status"] == "current" and body["contact_uri"] == facts["jane_uri"], body
    assert "No contact" not in body["summary"]
    assert nobody["status"] == "none" and "No contact in the CRM" in nobody["summary"], nobody
    assert prefix["status"] == "none", prefix


async def test_an_email_that_cannot_be_looked_up_is_could_not_look_up(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:^/api/v1/[^/]+/(user/membership|person)/$"]) as sb:
        said = error_text(await answer(connect, sb, "check_membership", {"email": sb.store.demo_facts()["jane_email"]}))
    assert "Could not look up" in said and "No contact" not in said and "not a member" not in said, said


async def test_labelled_emails_are_found_by_the_membership_lookup_after_an_update(connect: Any) -> None:
    """Variant labelled-lists stores `x@y;home`: the sandbox's membership lookup matches the address whether or not
    the contact was changed since (its email index drops the label as the seed's does)."""
    with SandboxServer(key=CANARY_KEY, variant="labelled-lists") as sb:
        facts = sb.store.demo_facts()
        sb.store.update(facts["jane_uri"], {"job_title": "Editor"}, message="t")
        body = await check(connect, sb, email=facts["jane_email"])
        lookups = [r for r in sb.request_log if r.path.endswith("/user/membership/")]
        listings = [r for r in sb.request_log if r.path.endswith("/person/")]
    assert body["status"] == "current" and body["contact_uri"] == facts["jane_uri"], body
    assert lookups and not listings  # the lookup itself found her


async def test_a_membership_list_that_cannot_be_read_is_not_no_contact(connect: Any) -> None:
    """A 404 for the membership list of a contact whose record is there: could not read, never "No contact"."""
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:/membership/all$"]) as sb:
        said = error_text(await answer(connect, sb, "check_membership", {"uri": sb.store.demo_facts()["jane_uri"]}))
    assert "Could not read the membership list" in said and "No contact" not in said, said


async def test_a_plan_name_that_cannot_be_read_is_said(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:^/api/v2/[^/]+/membership_type/[^/]+/display$"]) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        sb.store.update(current_membership(sb, jane), {"display_value": None}, message="t")
        body = await check(connect, sb, uri=jane)
    assert body["status"] == "current" and "(plan name could not be read)" in body["summary"], body


async def test_every_active_membership_sheepcrm_names_is_shown_when_the_plan_cannot_be_read(connect: Any) -> None:
    """The deciding membership's plan cannot be read, so the plan shown comes from sheepCRM's v1 lookup of the
    person's active memberships: with two (Fellow and Standard), both are named, never the first alone."""
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:^/api/v2/[^/]+/membership_type/[^/]+/display$"]) as sb:
        facts = sb.store.demo_facts()
        jane = facts["jane_uri"]
        current = current_membership(sb, jane)
        [older] = [m for m in sb.store.memberships(jane) if m.uri != current]
        [end] = [m.data["end_date"] for m in sb.store.memberships(jane) if m.uri == current]
        sb.store.update(older.uri, {"end_date": end, "membership_type": facts["plans"]["Fellow"],
                                    "membership_record_status": "active", "display_value": None}, message="t")
        sb.store.update(current, {"display_value": None}, message="t")
        body = await check(connect, sb, email=facts["jane_email"])
    assert body["status"] == "current" and "Fellow and Standard" in body["summary"], body


async def test_a_renewal_whose_contact_cannot_be_read_is_said(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:^/api/v1/[^/]+/(person|organisation)/[^/]+/$"]) as sb:
        body = await answer_body(connect, sb, "search_contacts", {"renewing_within_days": 60, "limit": 50})
    assert body["contacts"] and "could not be read: their name and email are unknown" in body["note"], body


async def test_a_membership_without_its_status_is_unknown_naming_the_key(sandbox: SandboxServer,
                                                                         connect: Any) -> None:
    """membership_record_status decides (doctor --contract calls its loss drift): a paid record covering today
    that does not say it is active is unknown, naming the key, never "current"."""
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(current_membership(sandbox, jane), {"membership_record_status": None}, message="t")
    body = await check(connect, sandbox, uri=jane)
    assert body["status"] == "unknown" and "is_member" not in body, body
    assert "`membership_record_status`" in body["summary"], body


async def test_a_listed_membership_without_its_status_is_unknown_not_a_member(sandbox: SandboxServer,
                                                                              connect: Any) -> None:
    today = now_utc().date()
    due = next(iter(renewals(sandbox, 400).values()))
    sandbox.store.update(due.uri, {"end_date": (today + timedelta(days=3)).isoformat(),
                                   "membership_record_status": None}, message="t")
    body = await answer_body(connect, sandbox, "search_contacts", {"renewing_within_days": 5, "limit": 50})
    row = next(c for c in body["contacts"] if c["membership_uri"] == due.uri)
    assert "member" not in row and "(no membership_record_status)" in body["note"], body
    assert "status 'no membership_record_status'" not in body["note"]  # a missing status is not called a status


async def test_a_membership_deleted_by_its_v1_state_is_never_listed_as_current(connect: Any) -> None:
    """The v1 notes put a record's state at the top of a listed row (`state`) and in `meta`: a membership listed
    with `state: deleted` and no `record_state` in its data (variant `deleted-listed`) is not a current member."""
    with SandboxServer(key=CANARY_KEY, variant="deleted-listed") as sb:
        facts = sb.store.demo_facts()
        seen: list[str] = []
        cursor = None
        async with connect(sb) as client:
            for _ in range(40):
                result = await client.call_tool(
                    "search_contacts", {"plan": "Standard", "limit": 50} | ({"cursor": cursor} if cursor else {})
                )
                assert not result.is_error, result.content
                seen += [c["uri"] for c in result.structured_content["contacts"]]
                if not (cursor := result.structured_content.get("next_cursor")):
                    break
    assert facts["jane_uri"] in seen  # the listing was read
    assert facts["deleted_member_uri"] not in seen


async def test_a_membership_starting_or_ending_on_a_boundary_day_is_listed(sandbox: SandboxServer,
                                                                          connect: Any) -> None:
    """The listing's fields are datetimes and the filters bare dates (how sheepCRM compares them is not
    documented): a membership that started this morning or ends on the window's last day is still listed."""
    today = now_utc().date()
    first, last = list(renewals(sandbox, 400).values())[:2]
    sandbox.store.update(first.uri, {"start_date": f"{today.isoformat()}T00:00:01",
                                     "end_date": f"{(today + timedelta(days=3)).isoformat()}T00:00:00"}, message="t")
    sandbox.store.update(last.uri, {"end_date": f"{(today + timedelta(days=5)).isoformat()}T23:59:00"}, message="t")
    body = await answer_body(connect, sandbox, "search_contacts", {"renewing_within_days": 5, "limit": 50})
    listed = {c.get("membership_uri") for c in body["contacts"]}
    assert first.uri in listed and last.uri in listed, body


async def test_a_membership_answer_without_its_grace_date_says_grace_could_not_be_checked(connect: Any) -> None:
    """`member_till_plus_grace` missing from the membership-by-email answer (drift: respelled) is not "no grace":
    a lapsed member's answer says whether the grace period applies could not be checked."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=member_till_plus_grace:/user/membership/"]) as sb:
        body = await check(connect, sb, email=sb.store.demo_facts()["lapsed_email"])
    assert body["status"] == "lapsed", body
    assert "grace period still applies could not be checked" in body["summary"], body
    assert "no `member_till_plus_grace`" in body["note"], body


async def test_a_current_members_list_says_it_cannot_hold_open_ended_memberships(sandbox: SandboxServer,
                                                                                connect: Any) -> None:
    """The listing is filtered by end date upstream, which a membership with no end date cannot match: the list of
    a plan's current members says so, rather than a plain "none" or a total that silently leaves them out, while
    check_membership calls the same person a current, open-ended member."""
    due = next(iter(renewals(sandbox, 400).values()))
    sandbox.store.update(due.uri, {"end_date": None}, message="open-ended")
    listed = await answer_body(connect, sandbox, "search_contacts", {"plan": "Standard", "limit": 50})
    assert due.uri not in {c.get("membership_uri") for c in listed["contacts"]}
    assert "no end date recorded are not in this list or its total" in listed["note"], listed
    window = await answer_body(connect, sandbox, "search_contacts", {"renewing_within_days": 366, "limit": 50})
    assert "no end date recorded are not in this list" not in (window.get("note") or "")  # open-ended: not renewing
