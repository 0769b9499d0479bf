"""get_record_history end to end: an empty window is not "never changed"."""

from __future__ import annotations

from typing import Any

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.tools import history
from tests.helpers import CANARY_KEY, MODES, Readers, answer, answer_body, read, sandbox_answers, scripted


async def test_an_empty_window_suggests_a_longer_one(shared_sandbox: SandboxServer, connect: Any) -> None:
    jane = shared_sandbox.store.demo_facts()["jane_uri"]  # she moved house 20 days ago
    result = await answer(connect, shared_sandbox, "get_record_history", {"uri": jane, "since_days": 1})
    body = result.structured_content
    assert body["entries"] == [] and "since_days=4" in body["note"], body


@pytest.mark.parametrize("mode", MODES)
async def test_get_record_history(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    uri = store.demo_facts()["jane_uri"]
    body = await read(readers, "get_record_history", {"uri": uri, "limit": 50}, mode=mode)
    expected = store.audit(uri)
    assert body["total"] == len(expected) > 0
    assert body["note"].startswith("The last 180 days only (total counts those).") and "since_days=720" in body[
        "note"], body  # the total is the window's, never the record's whole history
    assert {e["message"] for e in body["entries"]} == {e["message"] for e in expected}


async def test_history_accepts_journal_uris(shared_sandbox: SandboxServer, connect: Any) -> None:
    uid = shared_sandbox.store.demo_facts()["my_open_task_uid"]
    body = await answer_body(connect, shared_sandbox, "get_record_history", {"uri": f"/demo/journal/{uid}/"})
    assert body["uri"] == f"/demo/journal/{uid}/"


async def test_history_shows_users_by_uri_and_says_so(shared_sandbox: SandboxServer, connect: Any) -> None:
    """Users live in sheepCRM's own bucket; nothing shows that the client bucket's /display names them
    (EVIDENCE.md, users): the history shows their uri and says why, and never asks /display for a user."""
    facts = shared_sandbox.store.demo_facts()
    body = await answer_body(
        connect, shared_sandbox, "get_record_history", {"uri": facts["jane_uri"], "since_days": 3650}
    )
    users = {e.get("user") for e in body["entries"]}
    assert users and users <= {u.uri for u in shared_sandbox.store.by_type("user")}
    assert "shown by their uri" in body["note"]
    assert not [r for r in shared_sandbox.request_log if "/user/" in r.path and r.path.endswith("/display")]


async def test_history_names_users_and_attendees(sandbox: SandboxServer, connect: Any) -> None:
    facts = sandbox.store.demo_facts()
    body = await answer_body(connect, sandbox, "get_record_history", {"uri": facts["jane_uri"]})
    moved = next(e for e in body["entries"] if any(c["field"] == "postal_code" for c in e["changes"]))
    priya = next(u.uri for u in sandbox.store.by_type("user") if u.display_value == "Priya Shah")
    assert moved["user"] == priya and "shown by their uri" in body["note"]  # sheepCRM's history names no user
    event = f"/demo/booking/{facts['future_event_uid']}/"
    person = next(s.data["person_ref"] for s in sandbox.store.attendance(event) if s.data.get("person_ref"))
    sandbox.store.set_attendance(event, person, "declined")
    sandbox.store.update(facts["jane_uri"], {"tags": ["newsletter", "volunteer"]}, message="tags")
    history = await answer_body(connect, sandbox, "get_record_history", {"uri": event})
    assert history["entries"][0]["record"] == sandbox.store.display_of(person)
    jane = await answer_body(connect, sandbox, "get_record_history", {"uri": facts["jane_uri"]})
    assert jane["entries"][0]["changes"][0]["after"] == ["newsletter", "volunteer"]


@pytest.mark.parametrize(("count", "said"), [
    ("300", "sheepCRM counts 300 changes but sent"),  # a whole number sent as a string of digits (count_of)
    (300.0, "sheepCRM counts 300 changes but sent"),
    ([300], "Could not read the history's `count` (not a whole number)"),
])
async def test_a_history_count_is_read_as_every_count_is(
    connect: Any, monkeypatch: pytest.MonkeyPatch, count: Any, said: str
) -> None:
    """The history's `count` is read as the tools read every count (count_of): a whole number sent as digits or
    as 300.0 still says the history is cut; one that is not a count is said by its key, never taken as whole."""
    sandbox_answers(monkeypatch, "record_audit", lambda request, body: {**body, "count": count})
    with SandboxServer(key=CANARY_KEY) as sb:
        body = await answer_body(connect, sb, "get_record_history", {"uri": sb.store.demo_facts()["jane_uri"]})
    assert said in (body.get("note") or "") and "older changes may be missing" in body["note"], body


# ---- the pure mappers ----------------------------------------------------------------------


async def test_a_history_count_above_the_entries_sent_says_the_history_is_cut() -> None:
    """sheepCRM's `count` (openapi.yaml diff_list: "the number of changes") above the entries it sent: the history
    is cut, said so, though far fewer than 250 came; a count equal to them is whole."""
    entry = {"date": "2026-01-02T10:00:00", "message": "changed", "uri": "/demo/person/abc/", "clean_diff": []}
    path = "/audit/v2/demo/person/abc/audit"
    cut = await history.get_record_history(
        history.GetRecordHistoryInput(uri="/demo/person/abc/"), scripted({path: {"results": [entry] * 2, "count": 40}})
    )
    assert cut.note and "sheepCRM counts 40 changes but sent 2" in cut.note, cut
    whole = await history.get_record_history(
        history.GetRecordHistoryInput(uri="/demo/person/abc/"), scripted({path: {"results": [entry] * 2, "count": 2}})
    )
    assert not whole.note or "missing" not in whole.note, whole


def test_value_reads_json_text_lists() -> None:
    assert history.value('["a", null]') == ["a", None]
    assert history.value("[not json]") == "[not json]" and history.value(3) == 3
