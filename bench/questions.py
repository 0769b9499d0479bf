"""4. Answer cost: ten fixed member and help-desk questions.

For each, the calls our tools need (through an in-process MCP client) and the raw upstream calls a server
generated from the OpenAPI spec would make for the same answer (its tools wrap these endpoints one to one).
Both sides make the same discovery steps (find the event, the segment, the contact) so the comparison is
call for call. Ids come from the sandbox's demo facts; `expect` is text our answer must contain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
from mcp import Client

from bench.common import Row

TARGET_RATIO = 1 / 3
TARGET_CALLS = 2
# Where sheepCRM answers with one small record (raw under SMALL characters) there is little to cut: our answer adds
# the judgement and what could not be checked (status, days left, grace, linked members), so it may be at most
# SMALL_RATIO of the raw JSON. Listings (the raw side SMALL or more) must come to TARGET_RATIO or less.
SMALL = 2000
SMALL_RATIO = 1.5


def target_for(raw: int) -> float:
    return SMALL_RATIO if raw < SMALL else TARGET_RATIO

F = dict[str, Any]


@dataclass
class Question:
    text: str
    ours: list[tuple[str, F]]
    raw: list[tuple[str, F]]  # (path, query params) on the v2/v1 base URL
    expect: str


def person_centred(f: F, b: str, store: Any) -> list[Question]:
    """Issue 15's questions: one person, renewals, overdue, free places. The raw side makes every call a
    generated server's tools would need for the same answer (one per event or per name where the answer needs it)."""
    jane, jane_uid = f["jane_uri"], f["jane_uri"].strip("/").split("/")[-1]
    past = f"/{b}/booking/{f['past_event_uid']}/"
    past_title = store.display_of(past)
    about = f["my_open_task_about"]
    today = date.today()
    in30, in14 = (today + timedelta(days=30)).isoformat(), (today + timedelta(days=14)).isoformat()
    jane_events = [e.uid for e in store.events_of(jane)]
    soon = [e.uid for e in store.events("running") + store.events("future") if e.data["start_date"] <= in14]
    renewing = [m for m in store.by_type("member") if m.data["record_state"] != "deleted"
                and m.data["start_date"] <= today.isoformat() <= m.data["end_date"] <= in30]
    users = sorted({e["user"] for e in store.audit(jane)})
    return [
        Question(
            "Which events has Jane Austen attended?",
            [("search_contacts", {"query": "Jane Austen"}), ("list_events", {"person": jane})],
            [(f"/search/v2/{b}", {"q": "Jane Austen"}), (f"/events/v2/{b}/person/{jane_uid}/orders", {})]
            + [(f"/events/v2/{b}/booking/{u}/attendance/all", {}) for u in jane_events],
            f["past_event_uid"],
        ),
        Question(
            f"Is {f['jane_email']} booked on the {past_title}?",
            [("list_events", {"state": "all", "query": past_title}),
             ("list_attendees", {"uid": f["past_event_uid"], "name": f["jane_email"]})],
            [(f"/events/v2/{b}/bookings/all", {"page_size": 250}),
             (f"/events/v2/{b}/booking/{f['past_event_uid']}/attendance/all", {})],
            jane,
        ),
        Question(
            f"What open tasks are there about {about['name']}?",
            [("search_contacts", {"query": about["name"]}), ("list_tasks", {"about": about["uri"]})],
            [(f"/search/v2/{b}", {"q": about["name"]}), (f"/notifications/v2/{b}/tasks/all", {"page_size": 250})],
            f["my_open_task_uid"],
        ),
        Question(
            "Who changed Jane Austen's record?",
            [("search_contacts", {"query": "Jane Austen"}), ("get_record_history", {"uri": jane})],
            [(f"/search/v2/{b}", {"q": "Jane Austen"}), (f"/audit/v2/{b}/person/{jane_uid}/audit", {})],
            # sheepCRM's history names a user by uri only (users live in sheepCRM's own bucket, and nothing shows
            # that this bucket's /display names them): the truthful answer is the uri, on both sides.
            users[0],
        ),
        Question(
            "Whose membership ends in the next 30 days?",
            [("search_contacts", {"renewing_within_days": 30, "limit": 50})],
            [(f"/api/v1/{b}/member/", {"start_date__lte": today.isoformat(), "end_date__gte": today.isoformat(),
                                       "end_date__lte": in30, "page_size": 50}),
             (f"/api/v1/{b}/membership_type/", {"page_size": 100})]
            + [(f"/api/v2/{b}/person/{m.data['member'].strip('/').split('/')[-1]}/display", {}) for m in renewing
               if "/person/" in m.data["member"]],
            renewing[0].uri if renewing else "",
        ),
        Question(
            "What are my overdue tasks?",
            [("list_tasks", {"overdue": True})],
            [(f"/notifications/v2/{b}/tasks", {"page_size": 250})],
            "as_of",
        ),
        Question(
            "Which events in the next 14 days still have free places?",
            [("list_events", {"to_date": in14, "limit": 50})],
            [(f"/events/v2/{b}/bookings/running", {"page_size": 250}),
             (f"/events/v2/{b}/bookings/future", {"page_size": 250})]
            + [(f"/events/v2/{b}/booking/{u}/available_tickets", {}) for u in soon],
            "free",
        ),
    ]


def questions(f: F, bucket: str) -> list[Question]:
    b = bucket
    jane_uid = f["jane_uri"].strip("/").split("/")[-1]
    week = (date.today() + timedelta(days=7)).isoformat()
    seg = f["segment_current_members_uid"]
    return [
        Question(
            f"Is {f['jane_email']} a member, and until when?",
            [("check_membership", {"email": f["jane_email"]})],
            [(f"/api/v1/{b}/user/membership/", {"email": f["jane_email"], "realtime": "Y"})],
            "current",
        ),
        Question(
            "What plan is the lapsed member Charles Dickens on?",
            [("search_contacts", {"query": "Charles Dickens"}), ("check_membership", {"uri": f["lapsed_uri"]})],
            [(f"/search/v2/{b}", {"q": "Charles Dickens"}), (f"/api/v2{f['lapsed_uri']}membership/all", {})],
            "Fellow",
        ),
        Question(
            "Are there free tickets left for the Family Nature Trail?",
            [("list_events", {"state": "future", "query": "Family Nature Trail"}),
             ("get_event", {"uid": f["free_event_uid"]})],
            [(f"/events/v2/{b}/bookings/future", {"page_size": 250}),
             (f"/events/v2/{b}/booking/{f['free_event_uid']}/available_tickets", {})],
            "free",
        ),
        Question(
            "Who attended the Autumn Book Fair?",
            [("list_events", {"state": "past", "query": "Autumn Book Fair"}),
             ("list_attendees", {"uid": f["past_event_uid"], "status": "attended", "limit": 50})],
            [(f"/events/v2/{b}/bookings/past", {"page_size": 250}),
             (f"/events/v2/{b}/booking/{f['past_event_uid']}/attendance/all", {})],
            "attended",
        ),
        Question(
            "What are my open tasks due this week?",
            [("list_tasks", {"scope": "mine", "status": "open", "due_before": week, "limit": 50})],
            [(f"/notifications/v2/{b}/tasks", {"page_size": 250})],
            f["my_open_task_uid"],
        ),
        Question(
            "Is there a help article on refunds?",
            [("search_help", {"query": "refund"})],
            [(f"/search/v2/{b}/help", {"q": "refund"})],
            "efund",
        ),
        Question(
            "How many people are in the Current members segment?",
            [("find_segments", {"name": "current members"}), ("query_segment", {"uid": seg, "mode": "count"})],
            [(f"/segments/v2/{b}/find", {"name": "current members"}),
             (f"/segments/v2/{b}/segment/{seg}/count", {})],
            "count",
        ),
        Question(
            "What are Jane Austen's email and phone number?",
            [("search_contacts", {"query": "Jane Austen"})],
            [(f"/search/v2/{b}", {"q": "Jane Austen"})],
            f["jane_email"],
        ),
        Question(
            "What changed on Jane Austen's record recently?",
            [("search_contacts", {"query": "Jane Austen"}), ("get_record_history", {"uri": f["jane_uri"]})],
            [(f"/search/v2/{b}", {"q": "Jane Austen"}), (f"/audit/v2/{b}/person/{jane_uid}/audit", {})],
            "",
        ),
        Question(
            "Is Jane Austen in the Current members segment?",
            [("find_segments", {"name": "current members"}),
             ("query_segment", {"uid": seg, "mode": "lookup", "q": f["jane_email"]})],
            [(f"/segments/v2/{b}/find", {"name": "current members"}),
             (f"/segments/v2/{b}/segment/{seg}/lookup", {"q": f["jane_email"]})],
            f["jane_uri"],
        ),
    ]


def answer_chars(result: Any) -> int:
    """Characters the model reads: the text content of the result (the JSON of structuredContent)."""
    return sum(len(getattr(c, "text", "") or "") for c in result.content)


async def run(sb: Any, quick: bool) -> tuple[list[Row], list[str]]:
    from bench.overhead import bench_settings
    from sheepcrm_mcp.assembly import build_app

    facts = sb.store.demo_facts()
    qs = questions(facts, sb.bucket) + person_centred(facts, sb.bucket, sb.store)
    built = build_app(bench_settings(sb))
    server = built.server
    notes = ["Answer cost per question (ours: text content of each tool result, as a client puts it in the model's "
             "context; raw: bytes of each upstream JSON body a generated server's tool would return). Target: at "
             f"most {TARGET_RATIO:.2g}x where the raw side is a listing ({SMALL} characters or more), at most "
             f"{SMALL_RATIO:.2g}x where it is one small record (ours adds the judgement and what could not be "
             "checked), and at most 2 calls:", "",
             "| # | question | our calls | our chars | raw calls | raw chars | ratio |",
             "|---|---|---|---|---|---|---|"]
    rows: list[Row] = []
    tot_ours = tot_raw = 0
    worst_calls = 0
    all_ok = True
    try:
        async with (
            Client(server, mode="legacy") as client,
            httpx.AsyncClient(base_url=sb.url, headers={"Authorization": f"Bearer {sb.key}"}) as http,
        ):
            for n, q in enumerate(qs, 1):
                ours = 0
                text = ""
                for tool, args in q.ours:
                    result = await client.call_tool(tool, args)
                    if result.is_error:
                        raise RuntimeError(f"Q{n} {tool}({args}) failed: {result.content}")
                    ours += answer_chars(result)
                    text += json.dumps(result.structured_content or {})
                if q.expect not in text:
                    raise RuntimeError(f"Q{n}: our answer lacks {q.expect!r}")
                raw = 0
                for path, params in q.raw:
                    response = await http.get(sb.url_for(path), params=params)
                    response.raise_for_status()
                    raw += len(response.text)
                ratio = ours / raw
                ok = ratio <= target_for(raw) and len(q.ours) <= TARGET_CALLS
                all_ok &= ok
                worst_calls = max(worst_calls, len(q.ours))
                tot_ours += ours
                tot_raw += raw
                notes.append(f"| {n} | {q.text} | {len(q.ours)} ({', '.join(t for t, _ in q.ours)}) | {ours} | "
                             f"{len(q.raw)} | {raw} | {ratio:.2f} |")
                rows.append(Row(f"Q{n} answer chars (calls): {q.text[:44]}", f"{ours} ({len(q.ours)})",
                                f"{raw} ({len(q.raw)})", f"{ratio:.2f}x",
                                f"<= {target_for(raw):.2g}x, <= {TARGET_CALLS} calls", ok))
    finally:
        await built.aclose()
    rows.append(Row(f"{len(qs)} questions: total answer chars", f"{tot_ours}", f"{tot_raw}",
                    f"{tot_ours / tot_raw:.2f}x", "<= 0.33x, and each question's", all_ok
                    and tot_ours / tot_raw <= TARGET_RATIO))
    return rows, notes
