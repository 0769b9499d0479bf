"""The tools against sheepCRM's documented shapes: one test per finding of the fidelity review that the
end-to-end tool tests do not already cover (each fails on the tools as they read the sandbox before)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import mcp_types as types

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.paging import list_page
from sheepcrm_mcp.server.settings import Settings
from sheepcrm_mcp.server.specs import Deps
from sheepcrm_mcp.sheepcrm import SheepClient
from sheepcrm_mcp.tools.catalogue import select
from sheepcrm_mcp.tools.common import fetch_pages
from sheepcrm_mcp.tools.help import SearchHelpInput, search_help
from sheepcrm_mcp.tools.prompts import helpdesk_answer
from sheepcrm_mcp.tools.search import SearchContactsInput, search_contacts
from sheepcrm_mcp.tools.tasks import ListTasksInput, list_tasks


async def call(connect: Any, sb: SandboxServer, tool: str, args: dict[str, Any], **over: Any) -> dict[str, Any]:
    async with connect(sb, **over) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    body: dict[str, Any] = result.structured_content
    return body


def scripted(answers: dict[str, Any]) -> Deps:
    """Deps over a client whose upstream answers `answers[path]` (200) or 404."""

    def handler(request: httpx.Request) -> httpx.Response:
        for path, body in answers.items():
            if request.url.path == path:
                return httpx.Response(200, json=body)
        return httpx.Response(404, json={"error": "not found"})

    settings = Settings(_env_file=None, api_key="k", bucket="demo", cache_ttl=0)  # type: ignore[call-arg]
    client = SheepClient(settings.client_config(), transport=httpx.MockTransport(handler))
    return Deps(client=client.reader, settings=settings)


async def test_3_person_search_no_match_is_an_empty_answer(shared_sandbox: SandboxServer, connect: Any) -> None:
    body = await call(connect, shared_sandbox, "search_contacts", {"last_name": "Nobody-Here"})
    assert body["contacts"] == [] and "No contacts match" in body["note"] and "doctor" not in body["note"]


async def test_3_person_search_single_object_is_one_result() -> None:
    one = {"id": "/demo/person/abc/", "display_value": "Ann", "resource": "person"}
    deps = scripted({"/search/v2/demo/person": one})
    body = await search_contacts(SearchContactsInput(last_name="Ann"), deps)
    assert [c.uri for c in body.contacts] == ["/demo/person/abc/"]


async def test_14_global_search_keeps_contacts_only() -> None:
    deps = scripted({"/search/v2/demo": {"results": [
        {"id": "/demo/person/a/", "display_value": "Ann", "resource": "person"},
        {"id": "/demo/booking/b/", "display_value": "AGM", "resource": "booking"},
        {"id": "/demo/organisation/c/", "display_value": "Trust"},
    ]}})
    body = await search_contacts(SearchContactsInput(query="a"), deps)
    assert [c.uri for c in body.contacts] == ["/demo/person/a/", "/demo/organisation/c/"] and body.total is None


async def test_4_tasks_in_the_draft_shape_and_as_one_object() -> None:
    draft = {"tasks": [{"uid": "j1", "uri": "/demo/journal/j1/", "title": "Call", "due_date": "2030-01-01T10:00:00",
                        "allocated_to_display": "Priya", "completed": False}], "total": 1}
    body = await list_tasks(ListTasksInput(), scripted({"/notifications/v2/demo/tasks": draft}))
    assert [(t.uid, t.due, t.assigned_to) for t in body.tasks] == [("j1", "2030-01-01T10:00:00", "Priya")]
    one = {"tasks": {"uid": "j2", "title": "Write", "date": "2030-01-02T10:00:00", "assigned_to_display": "Tom"}}
    body = await list_tasks(ListTasksInput(), scripted({"/notifications/v2/demo/tasks": one}))
    assert [(t.uid, t.assigned_to) for t in body.tasks] == [("j2", "Tom")]


async def test_4_a_full_task_page_is_said_to_be_cut() -> None:
    full = {"tasks": [{"uid": f"t{i}", "title": "x", "date": "2030-01-01"} for i in range(250)]}
    body = await list_tasks(ListTasksInput(), scripted({"/notifications/v2/demo/tasks": full}))
    assert body.total is None and "cut short" in (body.note or "")


async def test_4_history_accepts_journal_uris(shared_sandbox: SandboxServer, connect: Any) -> None:
    uid = shared_sandbox.store.demo_facts()["my_open_task_uid"]
    body = await call(connect, shared_sandbox, "get_record_history", {"uri": f"/demo/journal/{uid}/"})
    assert body["uri"] == f"/demo/journal/{uid}/"


async def test_5_membership_never_reports_unpaid_or_deleted_as_current(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    facts = shared_sandbox.store.demo_facts()
    unpaid = await call(connect, shared_sandbox, "check_membership", {"uri": facts["unpaid_uri"]})
    assert unpaid["is_member"] is False and unpaid["status"] == "unpaid" and "not paid" in unpaid["summary"]
    deleted = await call(connect, shared_sandbox, "check_membership", {"email": facts["deleted_member_email"]})
    assert deleted["is_member"] is False and deleted["status"] == "none"
    jane = await call(connect, shared_sandbox, "check_membership", {"uri": facts["jane_uri"]})
    assert jane["is_member"] is True and jane["plan"] == "Standard"  # the name from membership_type's /display


async def test_5_grace_from_the_v1_answer(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    lapsed = await call(connect, shared_sandbox, "check_membership", {"email": facts["lapsed_email"]})
    assert lapsed["is_member"] is False and lapsed["status"] in ("lapsed", "grace")


async def test_6_get_contact_reads_the_v1_record_with_positional_nulls(
    sandbox: SandboxServer, connect: Any
) -> None:
    facts = sandbox.store.demo_facts()
    body = await call(connect, sandbox, "get_contact", {"uri": facts["deleted_member_uri"], "detail": "full"})
    assert body["email"] == facts["deleted_member_email"] and "membership" not in body
    assert body["details"]["emails"] == [facts["deleted_member_email"]]
    assert not [r for r in sandbox.request_log if r.path.endswith("/summary")]  # no undocumented summary shape


async def test_7_help_search_tolerates_a_bare_list_and_says_whose_help_it_is() -> None:
    deps = scripted({"/search/v2/demo/help": [{"title": "Refunds", "url": "https://help.example/r"}]})
    body = await search_help(SearchHelpInput(query="refund"), deps)
    assert [(a.title, a.link) for a in body.articles] == [("Refunds", "https://help.example/r")]
    tool = next(t for t in select(("help",), True) if t.name == "search_help")
    assert "sheepCRM's own help" in tool.description and "not the organisation's member FAQ" in tool.description
    assert "not our organisation's member FAQ" in helpdesk_answer("How do I refund?")


async def test_8_segments_show_active_and_record_type_and_members_page_without_total(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    store = shared_sandbox.store
    every = await call(connect, shared_sandbox, "find_segments", {"limit": 50})
    assert {s["uid"]: s.get("active") for s in every["segments"]} == {
        s.uid: s.data["active"] for s in store.segments()
    }
    assert all(s.get("records") == "person" or s.get("records") for s in every["segments"])
    uid = store.demo_facts()["segment_current_members_uid"]
    page = await call(connect, shared_sandbox, "query_segment", {"uid": uid, "mode": "members", "limit": 5})
    assert page.get("total") is None and page["next_cursor"] and page["by_type"] == {"person": 5}


async def test_9_paging_reads_to_a_short_page_within_a_budget() -> None:
    pages = {1: 250, 2: 250, 3: 7}

    async def fetch(page: int, size: int) -> Any:
        return {"bookings": [{"uid": f"{page}-{i}"} for i in range(pages.get(page, 0))]}

    found, complete = await fetch_pages(fetch, "the events", "bookings")
    assert len(found) == 507 and complete
    found, complete = await fetch_pages(fetch, "the events", "bookings", budget=2)
    assert len(found) == 500 and not complete
    _, envelope = list_page(found, 10, None, "k", "none", cut="Stopped after 500 events.")
    assert envelope["total"] is None and "Stopped" in envelope["note"]


async def test_12_update_contact_replaces_in_place_and_keeps_nulls(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    facts = sandbox.store.demo_facts()
    uri = facts["deleted_member_uri"]
    async with connect(sandbox, elicitation=accept) as client:
        result = await client.call_tool("update_contact", {"uri": uri, "email": "george@new.example.org"})
    assert result.structured_content["status"] == "applied", result.structured_content
    record = sandbox.store.get(uri)
    assert record is not None and record.data["email"] == [None, "george@new.example.org"]


async def test_13_restricted_key_gets_the_reduced_event(connect: Any) -> None:
    with SandboxServer(key="sk-full-13", restricted_key="sk-limited-13") as sb:
        uid = sb.store.demo_facts()["past_event_uid"]
        body = await call(connect, sb, "get_event", {"uid": uid}, api_key="sk-limited-13")
        attendees = None
        async with connect(sb, api_key="sk-limited-13") as client:
            attendees = await client.call_tool("list_attendees", {"uid": uid})
    assert body["uid"] == uid and "reduced fields" in body["note"] and "permission" in body["note"]
    assert attendees.is_error and "permission" in attendees.content[0].text  # type: ignore[union-attr]
    assert "SHEEPCRM_API_KEY" not in attendees.content[0].text  # type: ignore[union-attr]


async def test_14_history_shows_users_by_uri_and_says_so(shared_sandbox: SandboxServer, connect: Any) -> None:
    """Users live in sheepCRM's own bucket; nothing shows that the client bucket's /display names them
    (EVIDENCE.md, users): the history shows their uri and says why, and never asks /display for a user."""
    facts = shared_sandbox.store.demo_facts()
    body = await call(connect, shared_sandbox, "get_record_history", {"uri": facts["jane_uri"], "since_days": 3650})
    users = {e.get("user") for e in body["entries"]}
    assert users and users <= {u.uri for u in shared_sandbox.store.by_type("user")}
    assert "shown by their uri" in body["note"]
    assert not [r for r in shared_sandbox.request_log if "/user/" in r.path and r.path.endswith("/display")]


async def accept(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"confirm": True})
