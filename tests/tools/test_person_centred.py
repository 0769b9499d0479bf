"""Answers centred on one person, renewals and the frictions an assistant hits, end to end through a real MCP
client against the sandbox. Expected values come from the sandbox's store."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import mcp_types as types

from sheepcrm_mcp.sandbox.records import now_utc, parse_dt
from sheepcrm_mcp.sandbox.runner import SandboxServer


async def call(connect: Any, sb: SandboxServer, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The structured answer and the size of the text the model reads."""
    async with connect(sb) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    text = result.content[0].text  # type: ignore[union-attr]
    return result.structured_content, len(text)


# ---- 1. a person's events; is <email> booked ---------------------------------------------


async def test_a_persons_events_with_their_status(shared_sandbox: SandboxServer, connect: Any) -> None:
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    jane = facts["jane_uri"]
    body, size = await call(connect, shared_sandbox, "list_events", {"person": jane})
    expected = {e.uid for e in store.events_of(jane)}
    assert {e["uid"] for e in body["events"]} == expected and facts["past_event_uid"] in expected
    statuses = {e["uid"]: e["person_status"] for e in body["events"]}
    for uid in expected:
        mine = {s.data["status"] for s in store.attendance(f"/demo/booking/{uid}/")
                if s.data.get("person_ref") == jane and not s.data.get("guest")
                and s.data.get("record_state") != "deleted"}
        assert set(statuses[uid].split("/")) == mine
    assert statuses[facts["past_event_uid"]] == "attended"
    assert all(e["uri"] == f"/demo/booking/{e['uid']}/" for e in body["events"])
    assert size <= 3_000


async def test_list_attendees_by_email_and_uri(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    uid = facts["past_event_uid"]
    by_email, _ = await call(connect, shared_sandbox, "list_attendees", {"uid": uid, "name": facts["jane_email"]})
    assert {a["person_uri"] for a in by_email["attendees"]} == {facts["jane_uri"]}
    by_uri, _ = await call(connect, shared_sandbox, "list_attendees", {"uid": f"/demo/booking/{uid}/",
                                                                       "name": facts["jane_uri"]})
    assert by_uri["attendees"] and all(facts["jane_uri"] in (a.get("person_uri"), a.get("guest_uri"))
                                       for a in by_uri["attendees"])
    nobody, _ = await call(connect, shared_sandbox, "list_attendees", {"uid": uid, "name": "thomas.hardy@example.org"})
    assert nobody["attendees"] == [] and "search_contacts(email=" in nobody["note"]


# ---- 2. tasks about a contact, words in the title, overdue ------------------------------


async def test_tasks_about_a_contact_and_overdue(shared_sandbox: SandboxServer, connect: Any) -> None:
    store = shared_sandbox.store
    tasks = [t for t in store.tasks() if t.data.get("record_state") != "deleted"]
    subject = max({t.data["context"] for t in tasks if not t.data["completed"]},
                  key=lambda c: sum(1 for t in tasks if t.data["context"] == c))
    body, size = await call(connect, shared_sandbox, "list_tasks", {"about": subject})
    expected = {t.uid for t in tasks if t.data["context"] == subject and not t.data["completed"]}
    assert {t["uid"] for t in body["tasks"]} == expected and expected
    assert size <= 2_000
    title = tasks[0].data["title"]
    worded, _ = await call(connect, shared_sandbox, "list_tasks",
                           {"scope": "all", "status": "any", "query": title.lower(), "limit": 50})
    assert {t["uid"] for t in worded["tasks"]} == {t.uid for t in tasks if title.lower() in t.data["title"].lower()}
    overdue, _ = await call(connect, shared_sandbox, "list_tasks", {"overdue": True, "limit": 50})
    now = now_utc()
    mine = [t for t in store.tasks(store.api_user) if t.data.get("record_state") != "deleted"]
    assert {t["uid"] for t in overdue["tasks"]} == {
        t.uid for t in mine if not t.data["completed"] and parse_dt(t.data["date"]) < now
    }
    assert overdue["as_of"].startswith(now.date().isoformat()[:7])


# ---- 3. people at an organisation ---------------------------------------------------------


async def test_people_at_an_organisation(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    body, _ = await call(connect, shared_sandbox, "search_contacts", {"organisation": facts["organisation_uri"]})
    assert sorted(c["uri"] for c in body["contacts"]) == sorted(facts["organisation_people"])
    assert all(c.get("job_title") for c in body["contacts"])
    orgs = [r.uri for r in shared_sandbox.store.by_type("organisation") if not r.data.get("connections")]
    none, _ = await call(connect, shared_sandbox, "search_contacts", {"organisation": orgs[0]})
    assert none["contacts"] == [] and "connections" in none["note"]


# ---- 4. renewals and plans ----------------------------------------------------------------


def current_members(sb: SandboxServer, days: int | None = None, plan: str | None = None) -> set[str]:
    today = now_utc().date()
    out = set()
    for m in sb.store.by_type("member"):
        d = m.data
        if d["record_state"] == "deleted" or d["start_date"] > today.isoformat() or d["end_date"] < today.isoformat():
            continue
        if d.get("paid") is False or (d.get("membership_record_status") or "active").lower() != "active":
            continue  # current means paid and active too, as check_membership says
        if days is not None and d["end_date"] > (today + timedelta(days=days)).isoformat():
            continue
        if plan and sb.store.display_of(d["membership_type"]) != plan:
            continue
        out.add(m.uri)
    return out


async def test_members_on_a_plan_leave_out_unpaid_memberships(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    answer, _ = await call(connect, shared_sandbox, "check_membership", {"uri": facts["unpaid_uri"], "detail": "full"})
    assert answer["status"] == "unpaid" and answer["is_member"] is False
    plan = answer["history"][-1]["plan"]
    seen: set[str] = set()
    cursor = None
    while True:
        args = {"plan": plan, "limit": 50, **({"cursor": cursor} if cursor else {})}
        body, _ = await call(connect, shared_sandbox, "search_contacts", args)
        seen |= {c["uri"] for c in body["contacts"]}
        if not (cursor := body.get("next_cursor")):
            break
    assert facts["unpaid_uri"] not in seen, "an unpaid membership was listed as a current member"
    members = current_members(shared_sandbox, plan=plan)
    assert {shared_sandbox.store.get(m).data["member"] for m in members} == seen  # type: ignore[union-attr]


async def test_renewals_and_members_on_a_plan(shared_sandbox: SandboxServer, connect: Any) -> None:
    body, _ = await call(connect, shared_sandbox, "search_contacts", {"renewing_within_days": 30, "limit": 50})
    expected = current_members(shared_sandbox, days=30)
    assert {c["membership_uri"] for c in body["contacts"]} == expected and body["total"] == len(expected)
    for c in body["contacts"]:
        assert c["name"] == shared_sandbox.store.display_of(c["uri"])
    assert "Fellow" in body["plans"]
    fellows = current_members(shared_sandbox, plan="Fellow")
    first, _ = await call(connect, shared_sandbox, "search_contacts", {"plan": "fellow", "limit": 5})
    seen = {c["membership_uri"] for c in first["contacts"]}
    if first.get("next_cursor"):
        rest, _ = await call(connect, shared_sandbox, "search_contacts",
                             {"plan": "fellow", "limit": 5, "cursor": first["next_cursor"]})
        seen |= {c["membership_uri"] for c in rest["contacts"]}
    assert seen <= fellows and first["total"] == len(fellows)
    async with connect(shared_sandbox) as client:
        wrong = await client.call_tool("search_contacts", {"plan": "Platinum"})
    assert wrong.is_error and "Fellow" in wrong.content[0].text  # type: ignore[union-attr]


# ---- 5. history with names ------------------------------------------------------------------


async def test_history_names_users_and_attendees(sandbox: SandboxServer, connect: Any) -> None:
    facts = sandbox.store.demo_facts()
    body, _ = await call(connect, sandbox, "get_record_history", {"uri": facts["jane_uri"]})
    moved = next(e for e in body["entries"] if any(c["field"] == "postal_code" for c in e["changes"]))
    priya = next(u.uri for u in sandbox.store.by_type("user") if u.display_value == "Priya Shah")
    assert moved["user"] == priya and "shown by their uri" in body["note"]  # sheepCRM's history names no user
    event = f"/demo/booking/{facts['future_event_uid']}/"
    person = next(s.data["person_ref"] for s in sandbox.store.attendance(event) if s.data.get("person_ref"))
    sandbox.store.set_attendance(event, person, "declined")
    sandbox.store.update(facts["jane_uri"], {"tags": ["newsletter", "volunteer"]}, message="tags")
    history, _ = await call(connect, sandbox, "get_record_history", {"uri": event})
    assert history["entries"][0]["record"] == sandbox.store.display_of(person)
    jane, _ = await call(connect, sandbox, "get_record_history", {"uri": facts["jane_uri"]})
    assert jane["entries"][0]["changes"][0]["after"] == ["newsletter", "volunteer"]


# ---- 6. identifiers that round-trip ---------------------------------------------------------


async def test_ids_round_trip(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    events, _ = await call(connect, shared_sandbox, "list_events", {"state": "all", "limit": 1})
    uri = events["events"][0]["uri"]
    event, _ = await call(connect, shared_sandbox, "get_event", {"uid": uri})
    assert event["uri"] == uri
    history, _ = await call(connect, shared_sandbox, "get_record_history", {"uri": uri})
    assert history["uri"] == uri
    task, _ = await call(connect, shared_sandbox, "get_task", {"uid": f"/demo/journal/{facts['my_open_task_uid']}/"})
    assert task["uid"] == facts["my_open_task_uid"] and task["uri"].endswith(f"/{facts['my_open_task_uid']}/")
    member, _ = await call(connect, shared_sandbox, "check_membership", {"uri": facts["jane_uri"]})
    assert member["name"] == "Jane Austen" and "Jane Austen" in member["summary"]
    record = shared_sandbox.store.get(member["membership_uri"])
    assert record is not None and record.type == "member"


# ---- 7. time and places -------------------------------------------------------------------


async def test_list_events_default_window_and_free_places(shared_sandbox: SandboxServer, connect: Any) -> None:
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    body, _ = await call(connect, shared_sandbox, "list_events", {"limit": 50})
    uids = {e["uid"] for e in body["events"]}
    assert facts["running_event_uid"] in uids and facts["past_event_uid"] not in uids
    assert "as_of" in body
    horizon = (now_utc() + timedelta(days=14)).date()
    soon, _ = await call(connect, shared_sandbox, "list_events", {"to_date": horizon.isoformat(), "limit": 50})
    expected = {e.uid for e in store.events("running") + store.events("future")
                if parse_dt(e.data["start_datetime"]).date() <= horizon}
    assert {e["uid"] for e in soon["events"]} == expected
    for e in soon["events"]:
        tickets = store.ticket_types(f"/demo/booking/{e['uid']}/")
        taken = sum(1 for s in store.attendance(f"/demo/booking/{e['uid']}/")
                    if s.data.get("status") != "declined" and s.data.get("record_state") != "deleted")
        assert e["free"] == sum(t.data["total"] - t.data["reserved"] for t in tickets) - taken


# ---- 8. help relevance ----------------------------------------------------------------------


async def test_help_says_when_matches_are_weak(shared_sandbox: SandboxServer, connect: Any) -> None:
    body, _ = await call(connect, shared_sandbox, "search_help", {"query": "change the currency to euros"})
    assert body["articles"] and "Weak matches" in body["note"]
    title = shared_sandbox.store.help_articles()[0].data["title"]
    good, _ = await call(connect, shared_sandbox, "search_help", {"query": title})
    assert "Weak" not in (good.get("note") or "")


# ---- 9. writes a person can judge -----------------------------------------------------------


async def test_task_confirmation_names_subject_and_due_and_snooze_says_no_undo(
    sandbox: SandboxServer, connect: Any
) -> None:
    store = sandbox.store
    uid = store.demo_facts()["my_open_task_uid"]
    task = store.require("journal", uid)
    asked: list[str] = []

    async def approve(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "snooze"})
    assert not result.is_error, result.content
    assert task.data["context_display"] in asked[0] and parse_dt(task.data["date"]).strftime("%d %b %Y") in asked[0]
    assert "version" not in asked[0]
    body = result.structured_content
    assert body["status"] == "applied" and "undo" not in body and "cannot be undone" in body["message"]


async def test_update_contact_warns_of_an_email_another_contact_has(sandbox: SandboxServer, connect: Any) -> None:
    facts = sandbox.store.demo_facts()
    asked: list[str] = []

    async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    async with connect(sandbox, elicitation=decline) as client:
        await client.call_tool("update_contact", {"uri": facts["lapsed_uri"], "email": facts["jane_email"]})
    assert "already belongs to Jane Austen" in asked[0] and facts["jane_uri"] in asked[0]


# ---- 10. smaller items ----------------------------------------------------------------------


async def test_smaller_items(shared_sandbox: SandboxServer, connect: Any) -> None:
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    unknown, _ = await call(connect, shared_sandbox, "check_membership", {"email": "nobody@nowhere.example"})
    assert unknown["is_member"] is False and "No contact in the CRM" in unknown["summary"]
    inactive = next(s for s in store.by_type("segment") if not s.data["active"])
    segs, _ = await call(connect, shared_sandbox, "find_segments", {"name": inactive.data["name"].split()[0]})
    assert {"uid": inactive.uid, "active": False}.items() <= next(
        s for s in segs["segments"] if s["uid"] == inactive.uid).items()
    event, _ = await call(connect, shared_sandbox, "get_event", {"uid": facts["past_event_uid"]})
    for t in event["tickets"]:
        assert t["capacity"] == t["allocated"] + t["reserved"] + t["free"]
    assert any(t["reserved"] for t in event["tickets"])
    by_postcode, _ = await call(connect, shared_sandbox, "search_contacts", {"postcode": facts["jane_postal_code"]})
    assert all(c["postcode"] == facts["jane_postal_code"] for c in by_postcode["contacts"])
    full, _ = await call(connect, shared_sandbox, "get_contact", {"uri": facts["jane_uri"], "detail": "full"})
    jane = store.get(facts["jane_uri"])
    assert jane is not None
    assert (full["details"]["known_as"], full["details"]["notes"]) == (jane.data["known_as"], jane.data["notes"])
    async with connect(shared_sandbox) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    schema = json.dumps(tools["search_contacts"].input_schema)
    assert schema.count("Exact match.") == 2
    assert "no-show" in json.dumps(tools["list_attendees"].input_schema)
    assert "upcoming" in json.dumps(tools["list_events"].input_schema)
