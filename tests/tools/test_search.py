"""search_contacts end to end: an answer it cannot read is said to be unreadable (never "no match"), and each hit
carries what a person needs to act on it: the real postcode, the town, member or not. Expected values come from
the sandbox's store."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, answer, error_text


async def test_a_person_search_answer_in_another_shape_is_could_not_read(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, variant="other-wrappers") as sb:  # {"people": [...]}
        result = await answer(connect, sb, "search_contacts", {"last_name": "Austen"})
    text = error_text(result)
    assert "Could not read sheepCRM's answer to the person search" in text and "people" in text, text
    assert "No contacts match" not in text and "Jane" not in text  # keys are named, values never


async def test_a_postcode_prefix_shows_each_contacts_real_postcode(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    store = shared_sandbox.store
    people = [p for p in store.by_type("person") if p.data.get("postal_code")]
    outward = Counter(p.data["postal_code"].split()[0] for p in people).most_common(1)[0][0]
    result = await answer(connect, shared_sandbox, "search_contacts", {"postcode": outward, "limit": 50})
    hits = result.structured_content["contacts"]
    assert len({h["postcode"] for h in hits}) > 1, hits  # several real postcodes, not the prefix asked for
    for h in hits:
        record = store.get(h["uri"])
        assert record is not None and h["postcode"] == record.data["postal_code"] != outward


async def test_namesakes_carry_town_and_membership_and_a_note(sandbox: SandboxServer, connect: Any) -> None:
    store, facts = sandbox.store, sandbox.store.demo_facts()
    member, other = facts["jane_uri"], facts["non_member_uri"]  # a current member and someone who never was
    for uri in (member, other):
        store.update(uri, {"first_name": "Thomas", "last_name": "Smith", "formatted_name": "Thomas Smith"},
                     message="t")
    result = await answer(connect, sandbox, "search_contacts", {"first_name": "Thomas", "last_name": "Smith"})
    body = result.structured_content
    hits = {h["uri"]: h for h in body["contacts"]}
    assert set(hits) == {member, other}, body
    for uri, is_member in ((member, True), (other, False)):
        record = store.get(uri)
        assert record is not None
        assert (hits[uri]["town"], hits[uri]["postcode"]) == (record.data["locality"], record.data["postal_code"])
        assert hits[uri]["member"] is is_member
    assert "Several contacts share the name 'Thomas Smith'" in body["note"]


async def test_inputs_of_two_searches_are_refused_not_dropped(shared_sandbox: SandboxServer, connect: Any) -> None:
    result = await answer(connect, shared_sandbox, "search_contacts", {"query": "Austen", "renewing_within_days": 30})
    assert "cannot be combined" in error_text(result)
    result = await answer(connect, shared_sandbox, "search_contacts", {"last_name": "Austen", "plan": "Standard"})
    assert "cannot be combined" in error_text(result)
