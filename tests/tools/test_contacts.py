"""tools/contacts.py: get_contact, update_contact, create_contact and delete_contact end to end through a real
client session, and the module's pure mappers."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import primary
from sheepcrm_mcp.tools import contacts
from sheepcrm_mcp.tools.common import V1Page
from sheepcrm_mcp.tools.profiles import HELPDESK, MEMBER
from tests.helpers import (
    CANARY_KEY,
    HTTP_TOKEN,
    MODES,
    Readers,
    answer,
    answer_body,
    answering,
    approve,
    audit_lines,
    clone_records,
    decline,
    error_text,
    free_port,
    http_session,
    read,
    run_http,
    sandbox_answers,
    sandbox_env,
    settings_for,
    wait_healthy,
    writes,
)


async def test_a_longer_wait_than_the_client_may_take_is_not_retried_early(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, faults=["429=30:1.0:/api/v1/demo/person/"]) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        result = await answer(connect, sb, "get_contact", {"uri": jane}, retry_budget=10.0)
        asked = [r for r in sb.request_log if r.path == f"/api/v1{jane}"]
    text = error_text(result)
    assert "wait 30s" in text and len(asked) == 1, (text, len(asked))



async def test_a_403_saying_no_calls_are_left_is_throttling_not_a_missing_permission(connect: Any) -> None:
    """A 403 with `x-rate-limit-remaining: 0` (fault 403=30) is sheepCRM throttling: the read waits as for a 429
    (here longer than the budget, so it is asked once) and the answer says so, never that a permission is missing."""
    with SandboxServer(key=CANARY_KEY, faults=["403=30:1.0:/api/v1/demo/person/"]) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        result = await answer(connect, sb, "get_contact", {"uri": jane}, retry_budget=10.0)
        asked = [r for r in sb.request_log if r.path == f"/api/v1{jane}"]
    said = error_text(result)
    assert "throttling" in said and "wait 30s" in said and len(asked) == 1, (said, len(asked))
    assert "lacks a permission" not in said, said


@pytest.mark.parametrize("mode", MODES)
async def test_get_contact(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    uri = store.demo_facts()["jane_uri"]
    record = store.get(uri)
    assert record is not None
    concise = await read(readers, "get_contact", {"uri": uri}, mode=mode)
    assert concise["name"] == record.display_value
    assert concise["email"] == primary(record.data["email"])
    assert concise["postcode"] == record.data["postal_code"]
    assert "details" not in concise
    full = await read(readers, "get_contact", {"uri": uri, "detail": "full"}, mode=mode)
    assert full["details"]["emails"] == [e for e in record.data["email"] if e]
    assert full["details"]["date_of_birth"] == record.data["date_of_birth"]


async def test_get_contact_reads_the_v1_record_with_positional_nulls(sandbox: SandboxServer, connect: Any) -> None:
    facts = sandbox.store.demo_facts()
    body = await answer_body(connect, sandbox, "get_contact", {"uri": facts["deleted_member_uri"], "detail": "full"})
    assert body["email"] == facts["deleted_member_email"] and "membership" not in body
    assert body["details"]["emails"] == [facts["deleted_member_email"]]
    assert not [r for r in sandbox.request_log if r.path.endswith("/summary")]  # no undocumented summary shape


async def test_update_contact_refuses_other_fields_with_the_list(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "first_name": "Janet"})
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and "first_name" in text
    for allowed in ("email", "phone", "address_line_1", "postcode"):
        assert allowed in text
    assert writes(sandbox) == []


async def test_update_contact_applies_and_undo_restores(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    before = sandbox.store.get(jane)
    assert before is not None
    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool(
            "update_contact", {"uri": jane, "email": "jane@new.example.org", "postcode": "BA1 1AA"}
        )
        body = result.structured_content
        assert body["status"] == "applied"
        after = sandbox.store.get(jane)
        assert after is not None and after.data["postal_code"] == "BA1 1AA"
        assert after.data["email"][0] == "jane@new.example.org"
        undo = await client.call_tool(body["undo"]["tool"], body["undo"]["arguments"])
        assert undo.structured_content["status"] == "applied"
    restored = sandbox.store.get(jane)
    assert restored is not None
    assert restored.data["postal_code"] == before.data["postal_code"]
    assert restored.data["email"][0] == before.data["email"][0]


async def test_update_contact_replaces_in_place_and_keeps_nulls(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    facts = sandbox.store.demo_facts()
    uri = facts["deleted_member_uri"]
    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool("update_contact", {"uri": uri, "email": "george@new.example.org"})
    assert result.structured_content["status"] == "applied", result.structured_content
    record = sandbox.store.get(uri)
    assert record is not None and record.data["email"] == [None, "george@new.example.org"]


async def test_update_contact_warns_of_an_email_another_contact_has(sandbox: SandboxServer, connect: Any) -> None:
    facts = sandbox.store.demo_facts()
    asked: list[str] = []

    async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    async with connect(sandbox, elicitation=decline) as client:
        await client.call_tool("update_contact", {"uri": facts["lapsed_uri"], "email": facts["jane_email"]})
    assert "already belongs to Jane Austen" in asked[0] and facts["jane_uri"] in asked[0]


async def test_update_contact_warns_of_an_email_an_organisation_has(sandbox: SandboxServer, connect: Any) -> None:
    """The new email's check is create_contact's: the person and organisation listings read whole, each address
    compared whole. An organisation's email given to a person is warned of, naming the organisation by uri (the
    person search, which answers people only, never finds it)."""
    facts = sandbox.store.demo_facts()
    org = sandbox.store.get(facts["organisation_uri"])
    assert org is not None
    seen: list[str] = []
    async with connect(sandbox, elicitation=asking(seen, "decline")) as client:
        await client.call_tool("update_contact", {"uri": facts["jane_uri"], "email": primary(org.data["email"])})
    assert "already belongs to Pemberley Trust" in seen[0] and org.uri in seen[0], seen
    assert writes(sandbox) == []


async def test_the_email_taken_warning_names_the_uri_never_a_bare_uid(connect: Any) -> None:
    """The listings' records carry `id` as their bare uid beside `uri` (as the person search's record does under
    variant person-record): the warning reads the uri as search_contacts does (row_uri), never the bare uid as if
    it were the contact."""
    asked: list[str] = []

    async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    with SandboxServer(key=CANARY_KEY, variant="person-record") as sb:
        facts = sb.store.demo_facts()
        async with connect(sb, elicitation=decline) as client:
            await client.call_tool("update_contact", {"uri": facts["lapsed_uri"], "email": facts["jane_email"]})
    assert "already belongs to Jane Austen" in asked[0] and facts["jane_uri"] in asked[0], asked


async def test_update_contact_keeps_address_lines_four_and_beyond(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    lines = ["1 High St", "Flat 2", "Old Town", "Bath", "Somerset"]
    sandbox.store.update(jane, {"address_lines": lines}, message="five lines")
    seen: list[str] = []
    async with connect(sandbox, elicitation=answering("accept", {"confirm": True}, seen)) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "address_line_1": "3 High St"})
    assert result.structured_content["status"] == "applied"
    record = sandbox.store.get(jane)
    assert record is not None and record.data["address_lines"] == ["3 High St", *lines[1:]]
    assert 'address line 1: "1 High St" → "3 High St"' in seen[-1]
    line = [e for e in audit_lines(tmp_path) if e["outcome"] == "succeeded"][-1]
    assert line["before"]["address_lines"] == lines and line["after"]["address_lines"][3:] == lines[3:]


async def test_address_lines_held_as_one_string_are_one_line_in_the_preview_and_the_undo(
    sandbox: SandboxServer, connect: Any
) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(jane, {"address_lines": "4 Gay Street, Bath"}, message="one string")
    seen: list[str] = []
    async with connect(sandbox, elicitation=answering("accept", {"confirm": True}, seen)) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "address_line_1": "5 Gay Street"})
        body = result.structured_content
        assert body["status"] == "applied", body
        assert 'address line 1: "4 Gay Street, Bath" → "5 Gay Street"' in seen[-1]
        assert body["undo"]["arguments"]["address_line_1"] == "4 Gay Street, Bath"
        undo = await client.call_tool(body["undo"]["tool"], body["undo"]["arguments"])
        assert undo.structured_content["status"] == "applied", undo.structured_content
    record = sandbox.store.get(jane)
    assert record is not None and record.data["address_lines"] == ["4 Gay Street, Bath"]


async def test_address_lines_of_an_unknown_shape_are_could_not_read_and_not_written(
    sandbox: SandboxServer, connect: Any
) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(jane, {"address_lines": {"street": "4 Gay Street"}}, message="an object")
    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "address_line_1": "5 Gay Street"})
    assert result.is_error, result
    message = error_text(result)
    assert "Could not read" in message and "street" in message and "Gay Street" not in message
    assert writes(sandbox) == []


async def test_full_detail_carries_known_as_and_notes(shared_sandbox: SandboxServer, connect: Any) -> None:
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    full = await answer_body(connect, shared_sandbox, "get_contact", {"uri": facts["jane_uri"], "detail": "full"})
    jane = store.get(facts["jane_uri"])
    assert jane is not None
    assert (full["details"]["known_as"], full["details"]["notes"]) == (jane.data["known_as"], jane.data["notes"])


async def test_labelled_list_values_are_split_and_the_label_kept(connect: Any) -> None:
    """v1 list values stored as `value;label` (EVIDENCE.md; variant labelled-lists): the contact's email is the
    address alone, the full detail shows each label, search hits carry the address, and a new email replaces the
    primary entry keeping its label."""
    with SandboxServer(key=CANARY_KEY, variant="labelled-lists") as sb:
        facts = sb.store.demo_facts()
        jane, email = facts["jane_uri"], facts["jane_email"]
        full = await answer_body(connect, sb, "get_contact", {"uri": jane, "detail": "full"})
        hits = await answer_body(connect, sb, "search_contacts", {"query": "Austen"})
        async with connect(sb, elicitation=approve) as client:
            result = await client.call_tool("update_contact", {"uri": jane, "email": "jane@new.example.org"})
        record = sb.store.get(jane)
    assert full["email"] == email and f"{email} (home)" in full["details"]["emails"], full
    assert {h.get("email") for h in hits["contacts"] if h["uri"] == jane} == {email}, hits
    assert result.structured_content["status"] == "applied", result.structured_content
    assert record is not None and "jane@new.example.org;home" in record.data["email"], record.data["email"]


# ---- the pure mappers ----------------------------------------------------------------------


def test_positional_keeps_positions_and_nulls() -> None:
    assert contacts.positional([None, "a@x"]) == [None, "a@x"]
    assert contacts.positional("a@x") == ["a@x"] and contacts.positional(None) == []


def test_placed_replaces_the_primary_in_place() -> None:
    assert contacts.placed([None, "old@x", "b@x"], "old@x", "new@x") == [None, "new@x", "b@x"]
    assert contacts.placed([None, "b@x"], "", "new@x") == ["new@x", "b@x"]  # the first empty slot
    assert contacts.placed(["b@x"], "", "new@x") == ["b@x", "new@x"]  # or one more
    assert contacts.placed(["old@x", "b@x"], "old@x", "") == [None, "b@x"]  # cleared: null, not removed
    assert contacts.placed(["old@x;work", "b@x"], "old@x", "new@x") == ["new@x;work", "b@x"]  # the label kept


# ---- create_contact and delete_contact ------------------------------------------------------

# create_contact and delete_contact end to end: a real client session, the gate, the sandbox's v1 POST/DELETE.
# Expected values come from the sandbox's store; every POST and DELETE the sandbox received is counted.


JIM = {
    "first_name": "Jim", "last_name": "Lovell", "email": "jim.lovell@example.org", "phone": "+44 20 7946 0013",
    "address_lines": ["13 Aquarius Way", "Flat 2"], "postcode": "SW1A 2AA",
}


def sent(sb: SandboxServer, method: str) -> list[str]:
    return [r.path for r in sb.request_log if r.method == method]


def text_of(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


def asking(seen: list[str], action: str = "accept") -> Any:
    """A scripted person who reads each preview (kept in `seen`) and approves, or declines."""

    async def callback(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params.message)
        if action == "accept":
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action="decline")

    return callback


def uid_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[1]


async def test_a_created_record_read_back_as_another_shape_is_could_not_read(connect: Any) -> None:
    """The record read back after a create sent as a list (drift): the answer says sheepCRM's answer could not be
    read (the outcome is unknown), never a traceback."""
    with SandboxServer(key=CANARY_KEY, drift=["retyped-field:/api/v1/demo/person/[0-9a-f]{8,}/"]) as sb:
        async with connect(sb, elicitation=asking([])) as client:
            result = await client.call_tool("create_contact", JIM)
        made = sb.store.contacts_by_email(JIM["email"])
    said = text_of(result)
    assert made and "has no attribute" not in said and "nothing was changed" not in said, said
    assert "Could not read sheepCRM's answer to the created record" in said, said


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # both protocol eras
async def test_create_with_approval_reads_back_and_audits(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, mode: str
) -> None:
    seen: list[str] = []
    async with connect(sandbox, mode=mode, elicitation=asking(seen)) as client:
        result = await client.call_tool("create_contact", JIM)
    body = result.structured_content
    assert not result.is_error and body["status"] == "applied", text_of(result)
    [record] = sandbox.store.contacts_by_email(JIM["email"])
    assert (record.type, record.data["first_name"], record.data["last_name"]) == ("person", "Jim", "Lovell")
    assert record.data["address_lines"] == JIM["address_lines"] and record.data["postal_code"] == JIM["postcode"]
    assert record.data["telephone"] == [JIM["phone"]]
    assert sent(sandbox, "POST") == ["/api/v1/demo/person/"]
    assert f"Jim Lovell, {record.uri}" in body["message"] and "Location header" in body["message"]
    assert body["undo"] == {"tool": "delete_contact", "arguments": {"uri": record.uri}}
    [preview] = seen
    assert preview.startswith("Create person Jim Lovell") and 'first name: (empty) → "Jim"' in preview
    assert preview.rstrip().endswith("Create this contact?") and "Possibly already" not in preview
    attempt, outcome = audit_lines(tmp_path)
    assert (attempt["tool"], attempt["outcome"], outcome["outcome"]) == ("create_contact", "attempt", "succeeded")
    assert outcome["after"]["created"]["uri"] == record.uri and attempt["arguments"]["email"] == JIM["email"]


async def test_create_an_organisation(sandbox: SandboxServer, connect: Any) -> None:
    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool(
            "create_contact", {"type": "organisation", "name": "Aquarius Lunar Society", "postcode": "HP1 1AA"}
        )
    assert result.structured_content["status"] == "applied", text_of(result)
    [org] = [r for r in sandbox.store.by_type("organisation") if r.data["name"] == "Aquarius Lunar Society"]
    assert org.data["postal_code"] == "HP1 1AA" and org.uri in result.structured_content["message"]
    assert sent(sandbox, "POST") == ["/api/v1/demo/organisation/"]


async def test_decline_creates_nothing(sandbox: SandboxServer, connect: Any, tmp_path: Path) -> None:
    async with connect(sandbox, elicitation=decline) as client:
        result = await client.call_tool("create_contact", JIM)
    assert result.structured_content["status"] == "not_approved"
    assert sandbox.store.contacts_by_email(JIM["email"]) == [] and sent(sandbox, "POST") == []
    assert [e["outcome"] for e in audit_lines(tmp_path)] == ["declined"]


@pytest.mark.parametrize("email", ["jane.austen@example.org", "JANE.Austen@Example.org"])
async def test_an_exact_email_match_refuses_naming_the_record(
    sandbox: SandboxServer, connect: Any, email: str
) -> None:
    facts = sandbox.store.demo_facts()
    seen: list[str] = []
    async with connect(sandbox, elicitation=asking(seen)) as client:
        result = await client.call_tool("create_contact", {"first_name": "Janet", "last_name": "Smith", "email": email})
    assert result.is_error and seen == [] and sent(sandbox, "POST") == []
    assert "already belongs to Jane Austen" in text_of(result) and facts["jane_uri"] in text_of(result)


async def test_a_namesake_is_shown_with_a_link_and_the_person_asked_to_create_anyway(
    sandbox: SandboxServer, connect: Any
) -> None:
    facts = sandbox.store.demo_facts()
    jane = facts["jane_uri"]
    new = {"first_name": "jane", "last_name": "austen", "email": "j.austen@example.net"}  # names in another case
    seen: list[str] = []
    async with connect(sandbox, elicitation=asking(seen, "decline")) as client:
        declined = await client.call_tool("create_contact", new)
    assert declined.structured_content["status"] == "not_approved" and sent(sandbox, "POST") == []
    assert f"sheepcrm://contact/{uid_of(jane)}" in seen[0] and "same name (any case)" in seen[0]
    assert seen[0].rstrip().endswith("Create anyway?")
    # the documented rule (first + last + postcode, exact case) is named as such
    rule = {"first_name": "Jane", "last_name": "Austen", "postcode": facts["jane_postal_code"]}
    async with connect(sandbox, elicitation=asking(seen)) as client:
        created = await client.call_tool("create_contact", rule)
    assert "same first name, last name and postcode" in seen[1] and "Create anyway?" in seen[1]
    assert created.structured_content["status"] == "applied"
    assert len([r for r in sandbox.store.by_type("person") if r.data["last_name"] == "Austen"]) == 2


async def test_namesakes_are_checked_by_name_and_other_names_are_not_called_namesakes(connect: Any) -> None:
    """The v1 notes do not say how a plain filter matches (variant plain-prefix: `first_name=Jan` also finds Jane):
    each hit of the listing by name has its names checked; Jane Austen is not shown as a namesake of Jan Austen,
    and the preview says how many hits with other names were left out."""
    with SandboxServer(key=CANARY_KEY, variant="plain-prefix") as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        seen: list[str] = []
        async with connect(sb, elicitation=asking(seen, "decline")) as client:
            result = await client.call_tool(
                "create_contact", {"first_name": "Jan", "last_name": "Austen", "email": "jan.austen@example.net"})
    assert result.structured_content["status"] == "not_approved", text_of(result)
    assert uid_of(jane) not in seen[0] and "same name (any case)" not in seen[0], seen[0]
    assert "also answered 1 contact(s) whose names differ" in seen[0], seen[0]


async def test_namesakes_past_the_page_read_are_said_with_how_to_see_them(connect: Any) -> None:
    """The listing by name holds more contacts than the page of them checked for namesakes (its total says so): the
    preview says how many it holds, how many were checked, and how to see the rest, never a silent cut."""
    with SandboxServer(key=CANARY_KEY) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        clone_records(sb, jane, contacts.NAME_PAGE + 1, email=["another.jane@example.net"])
        seen: list[str] = []
        async with connect(sb, elicitation=asking(seen, "decline")) as client:
            result = await client.call_tool(
                "create_contact", {"first_name": "Jane", "last_name": "Austen", "email": "j.austen@example.net"})
    assert result.structured_content["status"] == "not_approved", text_of(result)
    held = contacts.NAME_PAGE + 2
    assert (f"sheepCRM's listing by name holds {held} contacts; only the first {contacts.NAME_PAGE} were checked "
            "for namesakes") in seen[0], seen[0]
    assert "search_contacts" in seen[0], seen[0]


def test_a_full_page_of_the_listing_by_name_with_no_total_may_hold_more() -> None:
    """With no total, a full page checked for namesakes may not be all of them (said); a short page, or a total the
    page reaches, is all of them (nothing said)."""
    page = [{"uri": f"/demo/person/{n:024x}/"} for n in range(contacts.NAME_PAGE)]
    assert "more namesakes may exist" in str(contacts._unchecked(V1Page(page, None, 0, contacts.NAME_PAGE, True)))
    assert contacts._unchecked(V1Page(page[:3], None, 0, contacts.NAME_PAGE, True)) is None
    assert contacts._unchecked(V1Page(page, contacts.NAME_PAGE, 0, contacts.NAME_PAGE, True)) is None


async def test_a_retried_call_after_a_timeout_creates_one_record(connect: Any, tmp_path: Path) -> None:
    """The POST is applied but its answer never comes: the call finds the record by searching; the model's
    retry answers with it; nothing is posted twice."""
    faults = ["timeout=5@after:1:^/api/v1/demo/person/$"]
    with SandboxServer(key=CANARY_KEY, faults=faults) as sb:
        async with connect(sb, elicitation=approve, timeout=0.5, connect_timeout=0.5) as client:
            first = await client.call_tool("create_contact", JIM)
            retry = await client.call_tool("create_contact", JIM)
        [record] = sb.store.contacts_by_email(JIM["email"])
        assert sent(sb, "POST") == ["/api/v1/demo/person/"]
    assert first.structured_content["status"] == "applied", text_of(first)
    assert "did not answer" in first.structured_content["message"] and "found by searching" in text_of(first)
    assert retry.structured_content["status"] == "no_change", text_of(retry)
    assert "already created" in text_of(retry) and record.uri in text_of(retry)
    assert retry.structured_content["undo"] == {"tool": "delete_contact", "arguments": {"uri": record.uri}}
    assert [e["outcome"] for e in audit_lines(tmp_path)] == ["attempt", "succeeded"]


@pytest.mark.slow  # two real server processes
async def test_a_server_killed_while_its_post_is_unanswered_never_posts_again_after_a_restart(tmp_path: Path) -> None:
    """The installed server sends the create and is killed (SIGKILL) before sheepCRM answers; the model's retry
    reaches a new server process: it finds the record by searching and answers with it, posting nothing. Without
    an email, the retry's preview would otherwise show only a namesake, which a person may approve."""
    fred = {"first_name": "Fred", "last_name": "Haise", "postcode": "SW1A 1AA"}

    with SandboxServer(key=CANARY_KEY, faults=["timeout=20@after:1:^/api/v1/demo/person/$"]) as sb:
        env = sandbox_env(sb, tmp_path, SHEEPCRM_TIMEOUT="30", SHEEPCRM_MCP_TOKEN=HTTP_TOKEN)
        # the scripted person answers the client's form: over HTTP that counts only when their own file says so
        approvals = "SHEEPCRM_HTTP_CLIENT_APPROVALS=true\n"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with anyio.fail_after(90):
            with run_http(["--port", str(port)], env, own_also=approvals) as first:
                wait_healthy(url, first)
                with contextlib.suppress(Exception):  # the session dies with its server
                    async with http_session(url, elicitation_callback=approve) as client:
                        async with anyio.create_task_group() as tg:
                            tg.start_soon(client.call_tool, "create_contact", fred)
                            while not sent(sb, "POST"):
                                await anyio.sleep(0.05)
                            first.kill()  # mid-POST: nothing in the process survives
                            first.wait(timeout=10)
            with run_http(["--port", str(port)], env, own_also=approvals) as second:
                wait_healthy(url, second)
                async with http_session(url, elicitation_callback=approve) as client:
                    retry = await client.call_tool("create_contact", fred)
        [record] = [r for r in sb.store.by_type("person") if r.data.get("last_name") == "Haise"]
        assert sent(sb, "POST") == ["/api/v1/demo/person/"]
    assert retry.structured_content["status"] == "no_change", text_of(retry)
    assert "already created" in text_of(retry) and record.uri in text_of(retry)
    assert [e["outcome"] for e in audit_lines(tmp_path)] == ["attempt"]  # the first server died before its outcome


async def test_a_refused_create_changes_nothing_and_may_be_tried_again(connect: Any, tmp_path: Path) -> None:
    """A 409 (sheepCRM: the values clash) is a definite no: said so, audited as failed, not remembered."""
    with SandboxServer(key=CANARY_KEY, faults=["409:1:^/api/v1/demo/person/$"]) as sb:
        async with connect(sb, elicitation=approve) as client:
            first = await client.call_tool("create_contact", JIM)
            again = await client.call_tool("create_contact", JIM)
        assert sb.store.contacts_by_email(JIM["email"]) == []
        assert sent(sb, "POST") == ["/api/v1/demo/person/"] * 2
    for result in (first, again):
        assert result.is_error and "nothing was changed" in text_of(result) and "409" in text_of(result)
    assert [e["outcome"] for e in audit_lines(tmp_path)] == ["attempt", "failed"] * 2


@pytest.mark.parametrize("variant", ["create-unnamed", "create-200"])
async def test_an_unnamed_or_odd_answer_is_resolved_by_reading_back(connect: Any, variant: str) -> None:
    args = {"first_name": "Fred", "last_name": "Haise", "postcode": "SW1A 1AA"}  # no email: found by name
    with SandboxServer(key=CANARY_KEY, variant=variant) as sb:
        async with connect(sb, elicitation=approve) as client:
            result = await client.call_tool("create_contact", args)
            again = await client.call_tool("create_contact", args)
        [record] = [r for r in sb.store.by_type("person") if r.data["last_name"] == "Haise"]
        assert len(sent(sb, "POST")) == 1
    message = result.structured_content["message"]
    assert result.structured_content["status"] == "applied" and record.uri in message
    if variant == "create-unnamed":
        assert "found by searching, as sheepCRM's answer did not name it" in message
    else:
        assert "answered 200, not the documented 201" in message and "Location header" in message
    assert again.structured_content["status"] == "no_change"


async def test_a_create_answer_naming_another_record_is_not_counted_as_made(connect: Any, tmp_path: Path) -> None:
    """sheepCRM's answer to a create points its Location at an existing member: the result says so, the record
    made is found by searching, and the named member can never be deleted as "created by this server"."""
    args = {"first_name": "Zed", "last_name": "Quinnell", "email": "zed.quinnell@example.org"}
    with SandboxServer(key=CANARY_KEY) as probe:
        jane = probe.store.demo_facts()["jane_uri"]
    with SandboxServer(key=CANARY_KEY, drift=[f"other-location={jane}"]) as sb:
        assert sb.store.demo_facts()["jane_uri"] == jane  # the seed is the same
        async with connect(sb, elicitation=approve) as client:
            result = await client.call_tool("create_contact", args)
            delete = await client.call_tool("delete_contact", {"uri": jane})
        [zed] = [r for r in sb.store.by_type("person") if r.data["last_name"] == "Quinnell"]
        assert sb.store.get(jane).state != "deleted" and sent(sb, "DELETE") == []  # type: ignore[union-attr]
    message = result.structured_content["message"]
    assert f"New person: Zed Quinnell, {zed.uri}" in message, message
    assert f"sheepCRM's answer named another record, {jane}, which is not counted as made by this server" in message
    assert "Jane Austen" not in message.split("sheepCRM's answer:")[0]
    assert "reported a failure" not in message
    assert delete.is_error and "Not deleted" in text_of(delete)
    [done] = [e for e in audit_lines(tmp_path) if e["tool"] == "create_contact" and e["outcome"] != "attempt"]
    assert f"Location header named {jane}" in done["detail"] and "not the one created" in done["detail"], done
    assert done["outcome"] == "succeeded"


async def test_undo_within_the_window_and_refused_outside_it(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    facts = sandbox.store.demo_facts()
    seen: list[str] = []
    async with connect(sandbox, elicitation=asking(seen)) as client:
        created = await client.call_tool("create_contact", JIM)
        undo = created.structured_content["undo"]
        deleted = await client.call_tool(undo["tool"], undo["arguments"])
        repeat = await client.call_tool("delete_contact", undo["arguments"])
        seeded = await client.call_tool("delete_contact", {"uri": facts["jane_uri"]})
    uri = undo["arguments"]["uri"]
    assert deleted.structured_content["status"] == "applied", text_of(deleted)
    assert "restore a deleted record in its own UI, not through its API" in deleted.structured_content["message"]
    assert "undo" not in deleted.structured_content
    record = sandbox.store.get(uri)
    assert f'Delete contact {uri} "Jim Lovell"' in seen[1] and "restore" in seen[1]  # the uri first, then the name
    assert record is not None and record.state == "deleted" and sandbox.store.contacts_by_email(JIM["email"]) == []
    assert repeat.is_error and "Not deleted" in text_of(repeat)  # forgotten once deleted
    assert seeded.is_error and "created in the last 60 minutes" in text_of(seeded)
    assert sent(sandbox, "DELETE") == [f"/api/v1{uri}"]
    outcomes = [(e["tool"], e["outcome"]) for e in audit_lines(tmp_path)]
    assert outcomes == [("create_contact", "attempt"), ("create_contact", "succeeded"),
                        ("delete_contact", "attempt"), ("delete_contact", "succeeded")]
    # outside the window: refused before anything is asked or sent
    async with connect(sandbox, elicitation=asking(seen), delete_window=1) as client:
        again = await client.call_tool("create_contact", {**JIM, "email": "jim2@example.org"})
        await anyio.sleep(1.2)
        late = await client.call_tool("delete_contact", again.structured_content["undo"]["arguments"])
    assert late.is_error and "Not deleted" in text_of(late) and len(sent(sandbox, "DELETE")) == 1


async def test_a_helpdesk_that_may_create_but_not_delete_is_offered_no_undo_it_cannot_make(
    sandbox: SandboxServer, connect: Any
) -> None:
    """SHEEPCRM_HELPDESK_WRITES lists create_contact only: the answer (and a repeated call's) offers no undo call
    and says who can undo it; a staff user then can."""
    async with connect(sandbox, elicitation=approve, profile="helpdesk", helpdesk_writes="create_contact") as client:
        assert "delete_contact" not in {t.name for t in (await client.list_tools()).tools}
        created = await client.call_tool("create_contact", JIM)
        repeated = await client.call_tool("create_contact", JIM)
    [record] = sandbox.store.contacts_by_email(JIM["email"])
    for result, status in ((created, "applied"), (repeated, "no_change")):
        assert result.structured_content["status"] == status and "undo" not in result.structured_content
        message = result.structured_content["message"]
        assert record.uri in message and "delete_contact, is not among your tools: a staff user can undo it" in message
        assert "delete_contact can undo it" not in message
    async with connect(sandbox, elicitation=approve) as staff:
        again = await staff.call_tool("create_contact", JIM)
        deleted = await staff.call_tool("delete_contact", {"uri": record.uri})
    assert again.structured_content["undo"] == {"tool": "delete_contact", "arguments": {"uri": record.uri}}
    assert deleted.structured_content["status"] == "applied" and sent(sandbox, "DELETE") == [f"/api/v1{record.uri}"]


async def test_the_preview_quotes_each_value_so_that_one_cannot_look_like_two(
    sandbox: SandboxServer, connect: Any
) -> None:
    """One address line holding ", " and two lines used to read alike ("13 Aquarius Way, Flat 2"); a quote or a
    line-break look-alike (U+2424) inside a value stays inside its quotes."""
    seen: list[str] = []
    async with connect(sandbox, elicitation=asking(seen, "decline")) as client:
        for lines, first in ((["13 Aquarius Way, Flat 2"], "Jim"), (["13 Aquarius Way", "Flat 2"], "Jim"),
                             (["13 Aquarius Way \u2424 Flat 2"], 'Jim", "Flat 2')):
            await client.call_tool("create_contact", {**JIM, "first_name": first, "address_lines": lines})
    one, two, odd = (next(line for line in preview.splitlines() if "address:" in line) for preview in seen)
    assert one == '• address: (empty) → ["13 Aquarius Way, Flat 2"]' and one != two
    assert two == '• address: (empty) → ["13 Aquarius Way", "Flat 2"]'
    assert odd == '• address: (empty) → ["13 Aquarius Way \u2424 Flat 2"]'
    assert 'first name: (empty) → "Jim\\", \\"Flat 2"' in seen[2] and sent(sandbox, "POST") == []


async def test_hidden_characters_are_refused(sandbox: SandboxServer, connect: Any) -> None:
    async with connect(sandbox, elicitation=approve) as client:
        for args in ({**JIM, "last_name": "Lov\u202eell"}, {**JIM, "address_lines": ["13 Aquarius\u200b Way"]}):
            result = await client.call_tool("create_contact", args)
            assert result.is_error and "invisible or control character" in text_of(result)
    assert sandbox.request_log == []


async def test_look_alike_letters_are_pointed_out(sandbox: SandboxServer, connect: Any) -> None:
    seen: list[str] = []
    async with connect(sandbox, elicitation=asking(seen, "decline")) as client:
        await client.call_tool("create_contact", {**JIM, "first_name": "J\u0456m"})  # Cyrillic і
        await client.call_tool("create_contact", {**JIM, "first_name": "Zoë"})
    assert "first name mixes alphabets" in seen[0] and "mixes alphabets" not in seen[1]


async def _tool_names(sb: SandboxServer, tmp_path: Path, profile: Any = None, **over: Any) -> set[str]:
    built = build_app(settings_for(sb, tmp_path, **over), **({"profile": profile} if profile else {}))
    try:
        async with Client(built.server, mode="legacy") as client:
            return {t.name for t in (await client.list_tools()).tools}
    finally:
        await built.aclose()


async def test_profiles_and_read_only(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    writes = {"create_contact", "delete_contact"}
    assert writes <= await _tool_names(shared_sandbox, tmp_path)
    assert not writes & await _tool_names(shared_sandbox, tmp_path, read_only=True)
    assert not writes & await _tool_names(shared_sandbox, tmp_path, profile=MEMBER)
    assert not writes & await _tool_names(shared_sandbox, tmp_path, profile=HELPDESK)
    listed = await _tool_names(shared_sandbox, tmp_path, profile=HELPDESK, helpdesk_writes="create_contact")
    assert "create_contact" in listed and "delete_contact" not in listed


async def test_one_spelling_per_name_and_compatibility_forms_refused(sandbox: SandboxServer, connect: Any) -> None:
    """NFC then NFD of the same name in a new session: the same call (one spelling, NFC), answered with the record
    the first made; with a postcode added, a new call that shows it as a namesake. Full-width letters are
    refused before anything is sent."""
    seen: list[str] = []
    async with connect(sandbox, elicitation=asking(seen)) as client:
        first = await client.call_tool("create_contact", {"first_name": "Zoë", "last_name": "Brontë"})
    assert first.structured_content["status"] == "applied", text_of(first)
    async with connect(sandbox, elicitation=asking(seen, "decline")) as client:
        nfd = {"first_name": "Zoe\u0308", "last_name": "Bronte\u0308"}
        repeat = await client.call_tool("create_contact", nfd)  # the same call, in another spelling
        second = await client.call_tool("create_contact", {**nfd, "postcode": "YO1 7HH"})
        before = len(sandbox.request_log)
        wide = await client.call_tool("create_contact", {"first_name": "Ｊａｎｅ", "last_name": "Ａｕｓｔｅｎ"})
        mail = await client.call_tool("create_contact", {**JIM, "email": "ｊｉｍ@example.org"})
    assert repeat.structured_content["status"] == "no_change" and "already created" in text_of(repeat)
    assert second.structured_content["status"] == "not_approved"
    assert "Possibly already in sheepCRM" in seen[1] and "same name (any case)" in seen[1], seen[1]
    assert 'first name: (empty) → "Zoë"' in seen[1] and "Zoe\u0308" not in seen[1]
    [zoe] = [r for r in sandbox.store.by_type("person") if r.data.get("last_name") == "Brontë"]
    assert zoe.data["first_name"] == "Zoë" and zoe.uri in text_of(repeat)
    for result, field in ((wide, "first_name"), (mail, "email")):
        assert result.is_error and "full-width or compatibility" in text_of(result) and field in text_of(result)
    assert "'Jane'" in text_of(wide) and len(sandbox.request_log) == before
    assert sent(sandbox, "POST") == ["/api/v1/demo/person/"]


async def test_a_person_search_404_without_a_body_is_no_duplicate(connect: Any) -> None:
    """openapi.yaml defines the person search's 404 as "Not found" with no body (variant bare-404 sends none): the
    duplicate check reads it as no match and the create goes ahead, never "could not check"."""
    with SandboxServer(key=CANARY_KEY, variant="bare-404") as sb:
        seen: list[str] = []
        async with connect(sb, elicitation=asking(seen)) as client:
            result = await client.call_tool("create_contact", JIM)
        assert any(r.path == "/search/v2/demo/person" and r.status == 404 for r in sb.request_log)
        assert sent(sb, "POST") == ["/api/v1/demo/person/"] and len(sb.store.contacts_by_email(JIM["email"])) == 1
    assert result.structured_content["status"] == "applied", text_of(result)
    assert "Possibly already" not in seen[0] and "could not" not in seen[0].lower(), seen[0]


async def test_an_email_nobody_has_warns_of_nothing(sandbox: SandboxServer, connect: Any) -> None:
    """update_contact's check of a new email: the person and organisation listings, read whole, hold no such
    address, so the preview carries no warning, "could not check" included."""
    seen: list[str] = []
    uri = sandbox.store.demo_facts()["lapsed_uri"]
    async with connect(sandbox, elicitation=asking(seen)) as client:
        result = await client.call_tool("update_contact", {"uri": uri, "email": "fresh.address@example.org"})
    asked = {r.path for r in sandbox.request_log if "email__startswithi=fresh.address" in r.query}
    assert asked == {"/api/v1/demo/person/", "/api/v1/demo/organisation/"}, asked
    assert result.structured_content["status"] == "applied", text_of(result)
    assert "Warning" not in seen[0] and "could not check" not in seen[0], seen[0]


async def test_an_email_another_type_of_contact_has_is_shown(sandbox: SandboxServer, connect: Any) -> None:
    """A person given an organisation's email (or the reverse) is shown in the preview, not passed silently."""
    org = {"type": "organisation", "name": "Aquarius Lunar Society", "email": "office@aquarius.example"}
    seen: list[str] = []
    async with connect(sandbox, elicitation=asking(seen)) as client:
        made = await client.call_tool("create_contact", org)
    [society] = sandbox.store.contacts_by_email(org["email"])
    async with connect(sandbox, elicitation=asking(seen, "decline")) as client:
        person = await client.call_tool("create_contact", {**JIM, "email": org["email"]})
        jane = {**org, "name": "Austen Society", "email": "jane.austen@example.org"}
        back = await client.call_tool("create_contact", jane)
    assert made.structured_content["status"] == "applied" and person.structured_content["status"] == "not_approved"
    assert "[same email, an organisation]" in seen[1] and uid_of(society.uri) in seen[1], seen[1]
    assert seen[1].rstrip().endswith("Create anyway?") and "[same email, a person]" in seen[2], seen[2]
    assert back.structured_content["status"] == "not_approved" and sent(sandbox, "POST") == [
        "/api/v1/demo/organisation/"
    ]


async def test_email_variants_are_refused_or_flagged(sandbox: SandboxServer, connect: Any) -> None:
    seen: list[str] = []
    async with connect(sandbox, elicitation=asking(seen, "decline")) as client:
        mailto = await client.call_tool("create_contact", {**JIM, "email": "mailto:jim@example.org"})
        dot = await client.call_tool("create_contact", {**JIM, "email": "jim@example.org."})
        assert sandbox.request_log == []
        await client.call_tool("create_contact", {**JIM, "email": "j\u0456m@example.org"})  # Cyrillic і
    assert mailto.is_error and "leave out 'mailto:'" in text_of(mailto)
    assert dot.is_error and "no dot at the end" in text_of(dot)
    assert "email mixes alphabets" in seen[0] and sent(sandbox, "POST") == []


async def test_two_concurrent_deletes_send_one_delete(sandbox: SandboxServer, connect: Any, tmp_path: Path) -> None:
    """Both previews are approved together: one DELETE is sent, the other call says so and sends nothing."""
    both = anyio.Event()
    seen: list[str] = []

    async def together(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params.message)
        if len([m for m in seen if m.startswith("Delete contact")]) == 2:
            both.set()
        if params.message.startswith("Delete contact"):
            await both.wait()
        return types.ElicitResult(action="accept", content={"confirm": True})

    results: list[types.CallToolResult] = []
    async with connect(sandbox, elicitation=together) as client:
        created = await client.call_tool("create_contact", JIM)
        undo = created.structured_content["undo"]

        async def delete() -> None:
            results.append(await client.call_tool(undo["tool"], undo["arguments"]))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(delete)
                tg.start_soon(delete)
    uri = undo["arguments"]["uri"]
    assert sent(sandbox, "DELETE") == [f"/api/v1{uri}"]
    texts = sorted((text_of(r) for r in results), key=lambda t: "already deleted, or being deleted" in t)
    assert len(texts) == 2 and "already deleted, or being deleted" not in texts[0], texts
    assert "already deleted, or being deleted" in texts[1] and "sent nothing" in texts[1], texts


async def test_a_contact_record_whose_data_is_not_an_object_is_could_not_read(connect: Any) -> None:
    """A v1 record whose `data` is not an object (drift) is 'could not read', not a contact with no fields: never a
    traceback."""
    with SandboxServer(key=CANARY_KEY, drift=["retyped-field=data:/api/v1/demo/person/"]) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        said = error_text(await answer(connect, sb, "get_contact", {"uri": jane}))
    assert "could not read sheepcrm's answer" in said.lower() and "`data` holding an object" in said, said
    assert "failed unexpectedly" not in said, said


async def test_a_record_whose_meta_is_not_an_object_is_could_not_read(connect: Any) -> None:
    """`meta` sent as a list (drift): get_contact says it could not read sheepCRM's answer, never a traceback."""
    with SandboxServer(key=CANARY_KEY, drift=["retyped-field=meta:/api/v1/"]) as sb:
        result = await answer(connect, sb, "get_contact", {"uri": sb.store.demo_facts()["jane_uri"]})
    said = error_text(result)
    assert "Could not read sheepCRM's answer" in said and "`meta` holding an object" in said, said


def refuse_the_key(sb: SandboxServer) -> None:
    """From now on the sandbox refuses the key it was started with, as sheepCRM's v1 does: 404 to everything."""
    from sheepcrm_mcp.sandbox.app import SandboxMiddleware

    layer: Any = sb._v1_app.middleware_stack  # type: ignore[union-attr]  # built by the first v1 request
    while not isinstance(layer, SandboxMiddleware):
        layer = layer.app
    layer.key = "a-key-sheepcrm-no-longer-accepts"


async def test_a_v1_404_from_a_refused_key_is_could_not_read_never_already_deleted(
    sandbox: SandboxServer, connect: Any
) -> None:
    """The v1 notes: 404 is also sheepCRM's answer to credentials it does not accept. A delete whose record reads
    404 while the bucket does too says it could not read the contact and sends nothing; it is never "already
    deleted" (no change)."""
    async with connect(sandbox, elicitation=approve) as client:
        created = await client.call_tool("create_contact", JIM)
        uri = created.structured_content["undo"]["arguments"]["uri"]
        refuse_the_key(sandbox)
        result = await client.call_tool("delete_contact", {"uri": uri})
    said = text_of(result)
    assert result.is_error and "Could not read the contact" in said and "HTTP 404" in said, said
    assert "already deleted" not in said and "no_change" not in said, said
    assert sent(sandbox, "DELETE") == [] and sandbox.store.get(uri).state != "deleted"  # type: ignore[union-attr]


async def test_a_contact_deleted_in_sheepcrm_is_already_deleted_once_the_key_is_seen_to_work(
    sandbox: SandboxServer, connect: Any
) -> None:
    async with connect(sandbox, elicitation=approve) as client:
        created = await client.call_tool("create_contact", JIM)
        uri = created.structured_content["undo"]["arguments"]["uri"]
        sandbox.store.delete(uri)
        result = await client.call_tool("delete_contact", {"uri": uri})
    assert result.structured_content["status"] == "no_change", text_of(result)
    assert sent(sandbox, "DELETE") == []


async def test_a_contact_read_back_marked_deleted_is_deleted(connect: Any, tmp_path: Path) -> None:
    """sheepCRM keeps a deleted record for its UI: read at its own address it may still answer, marked `state:
    deleted` in its meta (variant deleted-listed). A delete read back so is applied (done, audited as succeeded),
    never "nothing was changed"; a contact already marked deleted is not deleted again (no change, nothing sent)."""
    with SandboxServer(key=CANARY_KEY, variant="deleted-listed") as sb:
        async with connect(sb, elicitation=approve) as client:
            undo = (await client.call_tool("create_contact", JIM)).structured_content["undo"]
            done = await client.call_tool(undo["tool"], undo["arguments"])
            other = (await client.call_tool("create_contact", {**JIM, "email": "jim2@example.org"}))
            again = other.structured_content["undo"]["arguments"]
            sb.store.delete(again["uri"])  # deleted in sheepCRM's UI
            already = await client.call_tool("delete_contact", again)
        uri, kept, deletes = undo["arguments"]["uri"], sb.store.get(undo["arguments"]["uri"]), sent(sb, "DELETE")
    assert done.structured_content["status"] == "applied", text_of(done)
    assert "nothing was changed" not in text_of(done), text_of(done)
    outcomes = [e["outcome"] for e in audit_lines(tmp_path) if e["tool"] == "delete_contact"]
    assert outcomes == ["attempt", "succeeded"], outcomes
    assert already.structured_content["status"] == "no_change", text_of(already)
    assert kept is not None and kept.state == "deleted" and deletes == [f"/api/v1{uri}"], deletes


async def test_a_repeated_create_whose_record_is_now_marked_deleted_is_not_called_a_live_contact(connect: Any) -> None:
    """The contact a create made is deleted in sheepCRM's UI and still answers at its own address, marked `state:
    deleted` in its meta (variant deleted-listed): a repeated create says it was created and is now marked deleted,
    never "already created it" with delete_contact as its undo; nothing is posted again."""
    with SandboxServer(key=CANARY_KEY, variant="deleted-listed") as sb:
        async with connect(sb, elicitation=approve) as client:
            created = await client.call_tool("create_contact", JIM)
            uri = created.structured_content["undo"]["arguments"]["uri"]
            sb.store.delete(uri)  # deleted in sheepCRM's UI
            again = await client.call_tool("create_contact", JIM)
        posts = sent(sb, "POST")
    said = text_of(again)
    assert again.is_error and uri in said and "marks it deleted" in said and "not a live contact" in said, said
    assert "already created it" not in said and "delete_contact" not in said, said
    assert posts == ["/api/v1/demo/person/"]


async def test_a_created_record_read_back_as_404_with_a_refused_key_is_could_not_read(
    sandbox: SandboxServer, connect: Any
) -> None:
    """A repeated create whose record now reads 404 while the bucket does too: could not read, not "deleted?"."""
    async with connect(sandbox, elicitation=approve) as client:
        await client.call_tool("create_contact", JIM)
        refuse_the_key(sandbox)
        again = await client.call_tool("create_contact", JIM)
    said = text_of(again)
    assert again.is_error and "Could not read the contact" in said and "not created again" in said, said
    assert "deleted?" not in said and sent(sandbox, "POST") == ["/api/v1/demo/person/"], said


async def test_a_same_email_contact_past_the_listings_first_rows_is_found(sandbox: SandboxServer, connect: Any) -> None:
    """The same-email check reads the whole v1 listing: eleven organisations whose emails start with the address
    come first, the one with that exact address after them; it is found and the create refused, nothing sent."""
    email = "office@aquarius.example.org"
    orgs = sandbox.store.by_type("organisation")
    for i, org in enumerate(orgs[:11]):
        sandbox.store.update(org.uri, {"email": [f"{email}.x{i}"]}, message="t")
    sandbox.store.update(orgs[11].uri, {"email": [email]}, message="t")
    result = await answer(connect, sandbox, "create_contact",
                          {"type": "organisation", "name": "Aquarius Lunar Society", "email": email},
                          elicitation=approve)
    said = text_of(result)
    assert result.is_error and "already belongs" in said and orgs[11].uri in said, said
    assert sent(sandbox, "POST") == []


def listed_without(rtype: str, *keys: str) -> Any:
    """A change for sandbox_answers("v1_list", ...): the listing of `rtype` sends its rows without `keys`."""

    def change(request: Any, body: Any) -> Any:
        if request.path_params["rtype"] == rtype:
            body["results"] = [{k: v for k, v in row.items() if k not in keys} for row in body["results"]]
        return body

    return change


async def test_a_same_email_row_with_a_bare_uid_is_named_by_its_uri_once(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person listing's rows carry no `uri`, only their bare uid as `id` beside their `resource`: the duplicate
    check reads the uri as search_contacts does (row_uri), so Jane is named once, by her uri, never by her bare uid
    as if it were another contact."""
    sandbox_answers(monkeypatch, "v1_list", listed_without("person", "uri"))
    with SandboxServer(key=CANARY_KEY) as sb:
        facts = sb.store.demo_facts()
        result = await answer(connect, sb, "create_contact",
                              {"first_name": "J", "last_name": "Doe", "email": facts["jane_email"]},
                              elicitation=approve)
        posts = sent(sb, "POST")
    said = text_of(result)
    assert result.is_error and f"already belongs to Jane Austen ({facts['jane_uri']})." in said, said
    assert f"({uid_of(facts['jane_uri'])})" not in said and posts == [], said


async def test_same_email_rows_whose_uri_cannot_be_read_are_counted_never_dropped(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The organisation listing's rows carry neither `uri` nor `id`: an organisation with the same email is still
    known, so the create is refused, counting it and naming its keys (never its values); a namesake whose uri
    cannot be read is counted in the preview, never left out."""
    sandbox_answers(monkeypatch, "v1_list", listed_without("organisation", "uri", "id"))
    with SandboxServer(key=CANARY_KEY) as sb:
        org = sb.store.get(sb.store.demo_facts()["organisation_uri"])
        assert org is not None
        email, name = primary(org.data["email"]), org.data["name"]
        seen: list[str] = []
        refused = await answer(connect, sb, "create_contact", {"type": "organisation", "name": "New Society",
                                                               "email": email}, elicitation=approve)
        namesake = await answer(connect, sb, "create_contact", {"type": "organisation", "name": name},
                                elicitation=asking(seen, "decline"))
        posts = sent(sb, "POST")
    said = text_of(refused)
    assert refused.is_error and f"{email} already belongs to 1 organisation(s)" in said, said
    assert "uri could not be read (keys " in said and "data" in said and org.data["name"] not in said, said
    assert namesake.structured_content["status"] == "not_approved" and posts == [], text_of(namesake)
    assert "1 possible match(es) (same name (any case)) whose uri could not be read" in seen[0], seen[0]
    assert seen[0].rstrip().endswith("Create anyway?"), seen[0]
