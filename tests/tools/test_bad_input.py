"""Bad input gets an actionable isError result, never a traceback, and never reaches the upstream."""

from __future__ import annotations

import socket
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.errors import explain_validation
from sheepcrm_mcp.server.specs import Input
from sheepcrm_mcp.tools.catalogue import TOOLS
from tests.helpers import Readers

GOOD_UID = "ffffffffffffffffffffffff"

# (tool, arguments, words the error must contain)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("search_contacts", {}, "give query"),
    ("search_contacts", {"query": "x", "limit": 500}, "less than or equal to 50"),
    ("search_contacts", {"query": "x", "cursor": "not-a-cursor"}, "cursor is malformed"),
    ("search_contacts", {"query": "x" * 500}, "at most 200"),
    ("get_contact", {"uri": "/other/person/abc/"}, "outside bucket"),
    ("get_contact", {"uri": "/demo/person/../x/"}, "not a record uri"),
    ("get_contact", {"uri": "https://evil.example/demo/person/abc/"}, "not a record uri"),
    ("get_contact", {"uri": "/demo/person/abc/", "detail": "everything"}, "concise"),
    ("get_contact", {}, "uri"),
    ("check_membership", {}, "exactly one of uri or email"),
    ("check_membership", {"uri": "/demo/person/abc/", "email": "a@b.org"}, "exactly one of uri or email"),
    ("list_events", {"state": "someday"}, "future"),
    ("list_events", {"limit": 0}, "greater than or equal to 1"),
    ("get_event", {"uid": "../../etc"}, "not a uid"),
    ("get_event", {"uid": "Annual General Meeting"}, "list_events(query="),
    ("get_contact", {"uri": "jane.austen@example.org"}, "search_contacts(email="),
    ("get_event", {"uid": "/demo/person/5f1c0ffee0ddba11ab1e0001/"}, "expected one of booking"),
    ("get_event", {"uid": GOOD_UID}, "answered 404 for event"),
    ("list_attendees", {"uid": GOOD_UID}, "list_events"),
    ("list_attendees", {"uid": GOOD_UID, "status": "maybe"}, "attended"),
    ("list_tasks", {"scope": "theirs"}, "mine"),
    ("list_tasks", {"due_before": "next tuesday"}, "date"),
    ("list_tasks", {"due_before": "tomorrow"}, "due_before: use a date as YYYY-MM-DD (e.g. 2026-12-31)"),
    ("list_events", {"from_date": "31/12/2026"}, "from_date: use a date as YYYY-MM-DD (e.g. 2026-12-31)"),
    ("list_events", {"to_date": "2026-12-31T25:00"}, "to_date: use a date as YYYY-MM-DD"),
    ("list_events", {"from_date": "2027-01-01", "to_date": "2026-01-01"}, "from_date is after to_date"),
    ("get_task", {"uid": GOOD_UID}, "No task"),
    ("get_task", {"uid": "a b"}, "not a uid"),
    ("search_help", {"query": ""}, "at least 2"),
    ("find_segments", {"limit": -1}, "greater than or equal to 1"),
    ("query_segment", {"uid": GOOD_UID, "mode": "lookup"}, "needs q"),
    ("query_segment", {"uid": GOOD_UID}, "find_segments"),
    ("get_record_history", {"uri": "/demo/help/abc/"}, "expected one of"),
    ("get_record_history", {"uri": "/demo/person/abc/", "since_days": 0}, "greater than or equal to 1"),
    ("update_contact", {"uri": "/demo/person/abc/"}, "at least one field"),
    ("update_contact", {"uri": "/demo/person/abc/", "email": "not an email"}, "email must look like"),
    ("update_contact", {"uri": "/demo/person/abc/", "notes": "x"}, "takes only"),
    ("set_attendance", {"uid": GOOD_UID, "person_uris": [], "status": "attended"}, "at least 1"),
    ("set_attendance", {"uid": GOOD_UID, "person_uris": ["/demo/person/a/"] * 51, "status": "attended"}, "at most 50"),
    ("set_attendance", {"uid": GOOD_UID, "person_uris": ["/demo/person/a/", "/demo/person/a/"],
                        "status": "attended"}, "twice"),
    ("create_contact", {"first_name": "Jim"}, "needs first_name and last_name"),
    ("create_contact", {"type": "organisation", "first_name": "Jim", "name": "Acme"}, "a person's fields"),
    ("create_contact", {"type": "team", "name": "Acme"}, "organisation"),
    ("create_contact", {"first_name": "Jim", "last_name": "Lovell", "email": "jim at example"}, "email must look"),
    ("create_contact", {"first_name": "Jim", "last_name": "Lovell", "phone": "call me"}, "phone takes digits"),
    ("create_contact", {"first_name": "Jim", "last_name": "Lovell", "postcode": "<b>"}, "postcode takes"),
    ("create_contact", {"first_name": "Jim", "last_name": "Lovell", "address_lines": ["a", "b", "c", "d"]},
     "at most 3 lines"),
    ("create_contact", {"first_name": "Jim", "last_name": "Lovell", "date_of_birth": "12/04/1928"},
     "date_of_birth: use a date as YYYY-MM-DD"),
    ("create_contact", {"first_name": "Jim", "last_name": "Lovell", "notes": "x"}, "takes only"),
    ("delete_contact", {"uri": "jim@example.org"}, "search_contacts(email="),
    ("delete_contact", {"uri": "/other/person/abc/"}, "outside bucket"),
    ("update_task", {"uid": GOOD_UID, "action": "delete"}, "complete"),
    ("update_task", {"uid": GOOD_UID, "action": "snooze", "until": "2099-01-01"}, "takes only"),
]


@pytest.mark.parametrize(("tool", "args", "words"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_bad_input_is_an_actionable_error(
    sandbox: SandboxServer, connect: Any, tool: str, args: dict[str, Any], words: str
) -> None:
    async with connect(sandbox) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert words.lower() in text.lower(), text
    assert "Traceback" not in text and "unexpectedly" not in text
    assert "validation error for" not in text and "input_value" not in text, text  # our words, not pydantic's
    assert "invalid character" not in text and "too short" not in text, text
    dates = [v for k, v in args.items() if k.endswith(("_date", "_before"))]
    assert not any(v in text for v in dates), text  # the bad value is not echoed
    assert all(r.method == "GET" for r in sandbox.request_log)


async def test_invalid_input_never_reaches_the_upstream(sandbox: SandboxServer, connect: Any) -> None:
    async with connect(sandbox) as client:
        for tool, args, _ in CASES:
            if "GOOD_UID" in str(args) or GOOD_UID in str(args) or "nobody@" in str(args):
                continue  # well-formed requests for records that do not exist do reach sheepCRM
            await client.call_tool(tool, args)
    assert sandbox.request_log == []


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_upstream_down_is_explained(sandbox: SandboxServer, connect: Any) -> None:
    dead = f"http://127.0.0.1:{_dead_port()}"
    async with connect(sandbox, base_url=dead, v1_base_url=dead, retry_attempts=2, retry_budget=2) as client:
        result = await client.call_tool("search_contacts", {"query": "austen"})
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and "could not talk to sheepCRM" in text


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(tool=st.sampled_from([s.name for s in TOOLS]), args=st.dictionaries(
    st.sampled_from(["uri", "uid", "query", "email", "limit", "cursor", "status", "person_uris", "action",
                     "mode", "q", "detail", "until", "state", "since_days", "phone"]), JSONISH, max_size=5))
async def test_random_arguments_never_crash(shared_sandbox: SandboxServer, readers: Readers, tool: str,
                                            args: dict[str, Any]) -> None:
    client = await readers()  # one session for every example: the calls only read
    result = await client.call_tool(tool, args)
    if result.is_error:
        text = result.content[0].text  # type: ignore[union-attr]
        assert "Traceback" not in text and "unexpectedly" not in text, text
    assert not any(r.method == "PUT" for r in shared_sandbox.request_log)


async def test_argument_errors_never_echo_values(shared_sandbox: SandboxServer, connect: Any) -> None:
    secret = "sk-live-DO-NOT-ECHO-9f8e7d"
    async with connect(shared_sandbox) as client:
        for args in ({"query": "x", "api_key": secret}, {"query": "x", "limit": secret}, {"query": {"k": secret}}):
            result = await client.call_tool("search_contacts", args)
            text = result.content[0].text  # type: ignore[union-attr]
            assert result.is_error and secret not in text, text
            assert "search_contacts" in text


def test_every_date_and_datetime_argument_is_told_the_format() -> None:
    """The wording lives in the one argument-error path, for any date or datetime field of any input model."""

    class Dated(Input):
        on: date
        at: datetime | None = None

    with pytest.raises(ValidationError) as caught:
        Dated.model_validate({"on": "31/12/2026", "at": "tomorrow 9am"})
    text = explain_validation("a_tool", caught.value)
    assert "on: use a date as YYYY-MM-DD (e.g. 2026-12-31)" in text
    assert "at: use a date and time as YYYY-MM-DDTHH:MM:SSZ" in text
    assert "31/12/2026" not in text and "tomorrow" not in text and "invalid character" not in text
