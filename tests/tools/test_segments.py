"""query_segment end to end: members in a shape it cannot read are said to be unreadable; a lookup reads the
documented `lookup` fields (label, text)."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sandbox.records import primary
from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, answer, error_text


async def test_segment_members_in_another_shape_are_could_not_read(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, variant="other-wrappers") as sb:
        uid = sb.store.demo_facts()["segment_current_members_uid"]
        result = await answer(connect, sb, "query_segment", {"uid": uid, "mode": "members"})
    text = error_text(result)
    assert "Could not read sheepCRM's answer to the segment's members" in text and "members" in text.split("keys")[1]
    assert "No members" not in text


async def test_a_lookup_reads_the_email_from_text(shared_sandbox: SandboxServer, connect: Any) -> None:
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    seg = store.uri("segment", facts["segment_current_members_uid"])
    member, _ = store.segment_members(seg, limit=1)
    email = primary(member[0].data["email"])
    assert email
    result = await answer(connect, shared_sandbox, "query_segment",
                          {"uid": facts["segment_current_members_uid"], "mode": "lookup", "q": email})
    hits = result.structured_content["members"]
    assert [(h["uri"], h["email"]) for h in hits] == [(member[0].uri, email)], hits
