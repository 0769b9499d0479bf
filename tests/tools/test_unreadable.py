"""An answer whose records sit under a key the documents do not name (drift `other-wrapper`) is 'could not read',
never an empty list read as 'none': no membership, no attendees, no changes, no events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, answer


@pytest.fixture(scope="module")
def drifted() -> Iterator[SandboxServer]:
    with SandboxServer(key=CANARY_KEY, drift=["other-wrapper"]) as sb:
        yield sb


def said_unknown(result: Any) -> str:
    """The text of an answer that says sheepCRM's answer could not be read (an error, or a body saying so)."""
    said = " ".join(getattr(c, "text", "") for c in result.content)
    assert "could not read sheepcrm's answer" in said.lower(), said
    assert "items" in said  # the key it found is named (never a value)
    return said


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("check_membership", {"uri": "jane_uri"}),
        ("list_attendees", {"uid": "past_event_uid"}),
        ("get_record_history", {"uri": "jane_uri"}),
        ("list_events", {"state": "future"}),
    ],
)
async def test_an_unreadable_list_is_not_none(
    drifted: SandboxServer, connect: Any, tool: str, args: dict[str, str]
) -> None:
    facts = drifted.store.demo_facts()
    result = await answer(connect, drifted, tool, {k: facts[v] if v in facts else v for k, v in args.items()})
    said = said_unknown(result)
    for wrong in ("has no membership on record", "No changes", '"is_member": false'):
        assert wrong not in said, said


async def test_a_membership_without_paid_is_unknown(connect: Any) -> None:
    """`paid` is optional (openapi.yaml): a record covering today that does not say it is paid is `unknown`."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=paid:membership/all"]) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        result = await answer(connect, sb, "check_membership", {"uri": jane})
    body = result.structured_content
    assert not result.is_error and body["status"] == "unknown", body
    assert body.get("is_member") is not True and "paid" in json.dumps(body), body


async def test_a_task_without_completed_is_unknown_not_open(connect: Any) -> None:
    """`completed` respelled (drift): the tasks are shown with status unknown and the answer says so."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=completed"]) as sb:
        result = await answer(connect, sb, "list_tasks", {"status": "open"})
    body = result.structured_content
    assert not result.is_error and body["tasks"], body
    assert {t["status"] for t in body["tasks"]} == {"unknown"}, body
    assert "`completed`" in body["note"] and "unknown" in body["note"], body


async def test_a_v1_404_by_email_is_not_nobody_when_the_key_reads_nothing(connect: Any) -> None:
    """v1 answers 404 to a key it does not accept too: with such a key, 'no contact has the email' is not said."""
    with SandboxServer(key=CANARY_KEY) as sb:
        email = sb.store.demo_facts()["jane_email"]
        result = await answer(connect, sb, "check_membership", {"email": email}, api_key="sk-not-accepted")
    said = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error and "doctor" in said and "No contact" not in said, said


async def test_unreadable_tickets_and_plans_are_not_none(connect: Any) -> None:
    """A ticket list or plan listing under an unknown key: get_event says the tickets could not be read (not 'no
    tickets'), and a plan search says the plans could not be read (not 'no plan named ...')."""
    drift = ["other-wrapper=available_tickets:available_tickets", "other-wrapper=results:/membership_type/"]
    with SandboxServer(key=CANARY_KEY, drift=drift) as sb:
        facts = sb.store.demo_facts()
        event = await answer(connect, sb, "get_event", {"uid": facts["free_event_uid"]})
        plan = await answer(connect, sb, "search_contacts", {"plan": "Standard"})
    body = event.structured_content
    assert not event.is_error and body.get("tickets_free") is None, body
    assert "could not read sheepcrm's answer to the event's tickets" in body["note"].lower(), body
    said = said_unknown(plan)
    assert "No plan named" not in said, said


@pytest.mark.parametrize(
    ("tool", "args", "path"),
    [
        ("list_attendees", {"uid": "past_event_uid"}, "/attendance"),
        ("get_record_history", {"uri": "jane_uri"}, "/audit"),
        ("list_events", {"state": "future"}, "/bookings/future"),
    ],
)
async def test_a_list_holding_an_item_that_is_not_a_record_is_not_a_shorter_list(
    connect: Any, tool: str, args: dict[str, str], path: str
) -> None:
    """A null among the records of a list (drift null-item) is an item that could not be read: the answer says how
    many, never a list or count silently one shorter."""
    with SandboxServer(key=CANARY_KEY, drift=[f"null-item:{path}"]) as sb:
        facts = sb.store.demo_facts()
        result = await answer(connect, sb, tool, {k: facts[v] if v in facts else v for k, v in args.items()})
    said = " ".join(getattr(c, "text", "") for c in result.content)
    assert "Could not read 1 of the" in said and "null" in said, said


@pytest.mark.parametrize("person", [False, True], ids=["list", "a person's events"])
async def test_an_event_without_record_state_is_not_called_live(connect: Any, person: bool) -> None:
    """openapi.yaml's EventSingle does not name `record_state`: an event listed without one (here respelled, drift)
    is shown, and the answer says whether it is deleted is unknown; an event marked deleted is still left out."""
    facts: dict[str, Any] = {}

    async def listed(drift: list[str]) -> dict[str, Any]:
        with SandboxServer(key=CANARY_KEY, drift=drift) as sb:
            facts.update(sb.store.demo_facts())
            event = sb.store.get(f"/demo/booking/{facts['future_event_uid']}/")
            assert event is not None
            sb.store.replace_data(event.uri, {**event.data, "record_state": "deleted"})
            args = {"state": "all", "limit": 50} | ({"person": facts["jane_uri"]} if person else {})
            result = await answer(connect, sb, "list_events", args)
        assert not result.is_error, result.content
        body: dict[str, Any] = result.structured_content or {}
        return body

    kept = await listed([])
    assert facts["future_event_uid"] not in {e["uid"] for e in kept["events"]}, kept
    assert "whether any of them is deleted is unknown" not in (kept.get("note") or ""), kept
    body = await listed(["renamed-field=record_state:^/events/v2/"])
    assert body["events"] and "do not say whether they are deleted (no `record_state`" in body["note"], body
    assert f"{len(body['events'])} listed event(s)" in body["note"], body
