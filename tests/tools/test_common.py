"""What every tool shares (tools/common.py): ids in either form, paging through upstream pages.

End to end through a real MCP client against the sandbox (expected values from its store), and
the pure mappers on their own."""

from __future__ import annotations

from typing import Any

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.paging import list_page
from sheepcrm_mcp.sheepcrm import UpstreamError
from sheepcrm_mcp.tools import common
from sheepcrm_mcp.tools.common import fetch_pages, v1_all
from tests.helpers import CANARY_KEY, answer_body, sandbox_answers


async def test_ids_round_trip(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    events = await answer_body(connect, shared_sandbox, "list_events", {"state": "all", "limit": 1})
    uri = events["events"][0]["uri"]
    event = await answer_body(connect, shared_sandbox, "get_event", {"uid": uri})
    assert event["uri"] == uri
    history = await answer_body(connect, shared_sandbox, "get_record_history", {"uri": uri})
    assert history["uri"] == uri
    task = await answer_body(
        connect, shared_sandbox, "get_task", {"uid": f"/demo/journal/{facts['my_open_task_uid']}/"}
    )
    assert task["uid"] == facts["my_open_task_uid"] and task["uri"].endswith(f"/{facts['my_open_task_uid']}/")
    member = await answer_body(connect, shared_sandbox, "check_membership", {"uri": facts["jane_uri"]})
    assert member["name"] == "Jane Austen" and "Jane Austen" in member["summary"]
    record = shared_sandbox.store.get(member["membership_uri"])
    assert record is not None and record.type == "member"


async def test_paging_reads_to_a_short_page_within_a_budget() -> None:
    pages = {1: 250, 2: 250, 3: 7}

    async def fetch(page: int, size: int) -> Any:
        return {"bookings": [{"uid": f"{page}-{i}"} for i in range(pages.get(page, 0))]}

    found, complete = await fetch_pages(fetch, "the events", "bookings")
    assert len(found) == 507 and complete
    found, complete = await fetch_pages(fetch, "the events", "bookings", budget=2)
    assert len(found) == 500 and not complete
    _, envelope = list_page(found, 10, None, "k", "none", cut="Stopped after 500 events.")
    assert envelope["total"] is None and "Stopped" in envelope["note"]


async def test_a_first_page_shorter_than_asked_is_the_cap_not_the_end() -> None:
    """sheepCRM may serve fewer records a page than asked (a cap): 100 of 250 is not the last page."""
    records = [{"uid": f"s{i}"} for i in range(230)]
    asked: list[int] = []

    async def capped(page: int, size: int) -> Any:
        asked.append(page)
        return {"segments": records[(page - 1) * 100 : page * 100]}

    found, complete = await fetch_pages(capped, "the segment list", "segments")
    assert found == records and complete and asked == [1, 2, 3]
    asked.clear()
    del records[7:]  # a short list: the page after its short first page is empty
    found, complete = await fetch_pages(capped, "the segment list", "segments")
    assert found == records and complete and asked == [1, 2]


async def test_paging_that_sheepcrm_ignores_is_could_not_read_never_duplicates() -> None:
    """A list whose `page` sheepCRM ignores answers page 1 again: not read as more records (duplicates), but
    'could not be read completely'; a record on two overlapping pages is kept once."""

    async def ignored(page: int, size: int) -> Any:
        return {"segments": [{"uid": f"s{i}"} for i in range(size)]}

    with pytest.raises(UpstreamError, match="could not be read completely"):
        await fetch_pages(ignored, "the segment list", "segments", page_size=3)

    async def overlapping(page: int, size: int) -> Any:
        return {"segments": [{"uid": f"s{i}"} for i in ((0, 1, 2) if page == 1 else (2, 3))]}

    found, complete = await fetch_pages(overlapping, "the segment list", "segments", page_size=3)
    assert [r["uid"] for r in found] == ["s0", "s1", "s2", "s3"] and complete


async def test_a_short_v1_page_whose_total_says_more_is_not_the_whole_list(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A v1 listing's `total` (v1 notes) counts every record it holds: a page shorter than its `page_size` while the
    total says there are more (here the organisation's one membership record is left out of the page, still
    counted) is not the end of the list. The pages after it are read; when they do not bring the total, the list
    could not be read completely (both counts said), and the organisation's membership is unknown, never "none"."""

    def left_out(request: Any, body: Any) -> Any:
        if request.path_params["rtype"] == "member":
            body["results"] = body["results"][1:]
        return body

    sandbox_answers(monkeypatch, "v1_list", left_out)
    with SandboxServer(key=CANARY_KEY) as sb:
        org = sb.store.demo_facts()["organisation_uri"]
        body = await answer_body(connect, sb, "check_membership", {"uri": org})
    assert body["status"] == "unknown" and body.get("is_member") is None, body
    assert "total for the organisation's membership records is 1, but its pages held 0" in body["note"], body
    assert "could not be read completely" in body["note"], body


async def test_a_v1_page_that_does_not_say_which_page_it_holds_is_not_the_end_of_the_list(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A v1 listing answer without its `page` echo and without a `total` (here the organisation's one membership
    record left out too) does not say which part of the list it holds: a short page is not taken as the end, so the
    organisation's membership is unknown, naming the key, never "no membership on record"."""

    def unechoed(request: Any, body: Any) -> Any:
        if request.path_params["rtype"] == "member":
            body = {k: v for k, v in body.items() if k not in ("page", "total")}
            body["results"] = body["results"][1:]
        return body

    sandbox_answers(monkeypatch, "v1_list", unechoed)
    with SandboxServer(key=CANARY_KEY) as sb:
        org = sb.store.demo_facts()["organisation_uri"]
        body = await answer_body(connect, sb, "check_membership", {"uri": org})
    assert body["status"] == "unknown" and body.get("is_member") is None, body
    assert "its `page` (the page it answered) is missing or not a page number" in body["note"], body


async def test_v1_pages_are_read_on_while_the_total_says_more() -> None:
    """A short page before the total is reached: the next pages are read, and a list whose pages bring the total
    is whole."""
    rows = [{"uri": f"/demo/person/p{i}/"} for i in range(30)]
    parts = {1: rows[:20], 2: rows[20:]}  # page 1 is short of its 25

    async def fetch(page: int, size: int) -> Any:
        return {"results": parts.get(page, []), "total": 30, "page": page, "page_size": size}

    found, unread = await v1_all(fetch, "the person listing", 25)
    assert found == rows and unread is None


# ---- the pure mappers ----------------------------------------------------------------------


def test_loose_values() -> None:
    assert common.text(["", " a "]) == "a" and common.text("  ") is None
    assert common.day("2026-06-01T10:00:00") is not None and common.day("not a date") is None
    assert common.ref({"ref": "/demo/person/a/", "display_value": "A"}) == "/demo/person/a/"
    assert common.listed({"tasks": [{"uid": "t"}]}, "tasks", "tasks") == [{"uid": "t"}]
    with pytest.raises(UpstreamError, match=r"Could not read.*not 'none found'"):
        common.listed({"tickets": {"name": "t"}}, "the tickets", "available_tickets")  # unreadable is never 'none'


def test_free_places_of_an_event_follow_whether_its_ticket_types_share_one_stock() -> None:
    """One count for get_event, list_events and upcoming_events (FREE_BASIS)."""
    tickets = [{"available": 3}, {"available": 4}]
    pooled = {"ticket_stock_control": True, "total_stock_available": 5}
    assert common.shares_stock(pooled) and common.shared_stock(pooled) == 5
    assert common.free_places(pooled, tickets) == 5  # the one stock, never the ticket types' 7
    unread = {"ticket_stock_control": True, "total_stock_available": "lots"}
    assert common.shared_stock(unread) is None and common.free_places(unread, tickets) is None
    for apart in ({}, {"ticket_stock_control": False, "total_stock_available": 5}, {"ticket_stock_control": "true"}):
        assert not common.shares_stock(apart) and common.shared_stock(apart) is None
        assert common.free_places(apart, tickets) == 7
        assert common.free_places(apart, [*tickets, {"available": None}]) is None
        assert common.free_places(apart, []) is None


def test_email_addresses_are_read_as_every_tool_matches_them() -> None:
    """One reading of a v1 email field for create_contact, update_contact and the membership lookup by email."""
    assert common.email_addresses([None, " Jan@Example.org;home ", "", "b@x.org"]) == ["jan@example.org", "b@x.org"]
    assert common.email_addresses("Ａ@x.org") == ["a@x.org"] and common.email_addresses(None) == []
    assert common.fold("  Jan   de  VRIES ") == "jan de vries"
