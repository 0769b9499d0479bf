"""get_contact end to end, through the one HTTP client: a wait sheepCRM asks for is honoured, never cut short."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import primary
from sheepcrm_mcp.tools import contacts
from tests.helpers import (
    CANARY_KEY,
    MODES,
    Readers,
    answer,
    answer_body,
    answering,
    approve,
    audit_lines,
    error_text,
    read,
    writes,
)


async def test_a_longer_wait_than_the_client_may_take_is_not_retried_early(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, faults=["429=30:1.0:/api/v1/demo/person/"]) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        result = await answer(connect, sb, "get_contact", {"uri": jane}, retry_budget=10.0)
        asked = [r for r in sb.request_log if r.path == f"/api/v1{jane}"]
    text = error_text(result)
    assert "wait 30s" in text and len(asked) == 1, (text, len(asked))



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
