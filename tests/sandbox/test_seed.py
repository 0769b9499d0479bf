"""Seed data: sizes, determinism, coverage of every state the tools need."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest

from sheepcrm_mcp.sandbox import SandboxServer, Store
from sheepcrm_mcp.sandbox.store import ATTENDANCE_STATUSES, now_utc, parse_dt

UID = re.compile(r"^[a-f0-9]{24}$")


def test_demo_sizes(read_sandbox: SandboxServer) -> None:
    store = read_sandbox.store
    contacts = store.count("person") + store.count("organisation")
    assert 280 <= contacts <= 320
    assert store.count("booking") == 15
    assert store.count("journal") == 60
    assert store.count("segment") == 10
    assert store.count("help") == 40
    assert all(UID.match(r.uid) for r in store.by_type("person"))


def test_same_seed_same_data() -> None:
    one, two, other = Store.create(seed=5), Store.create(seed=5), Store.create(seed=6)
    try:
        assert one.demo_facts() == two.demo_facts()
        assert [r.data for r in one.by_type("person")] == [r.data for r in two.by_type("person")]
        assert one.demo_facts()["jane_uid"] != other.demo_facts()["jane_uid"]
    finally:
        for store in (one, two, other):
            store.close()


def test_a_reused_build_is_a_private_copy() -> None:
    """Store.create(reuse=True) (what SandboxServer does) copies a recent build: the same data as seeding again,
    and a write to one store is never seen by another."""
    first = Store.create(seed=7, reuse=True)
    second, seeded = Store.create(seed=7, reuse=True), Store.create(seed=7)
    try:
        assert first.path != second.path
        assert second.build_seconds < first.build_seconds
        assert [r.data for r in second.by_type("person")] == [r.data for r in seeded.by_type("person")]
        uri = first.demo_facts()["jane_uri"]
        with first.transaction() as db:
            db.execute("DELETE FROM records WHERE uri = ?", (uri,))
        assert first.get(uri) is None
        third = Store.create(seed=7, reuse=True)
        assert second.get(uri) is not None and third.get(uri) is not None
        third.close()
    finally:
        for store in (first, second, seeded):
            store.close()


def test_well_known_people(read_sandbox: SandboxServer) -> None:
    store, facts = read_sandbox.store, read_sandbox.store.demo_facts()
    assert facts["jane_email"] == "jane.austen@example.org"
    jane = store.get(facts["jane_uri"])
    assert jane is not None and jane.display_value == "Jane Austen"
    assert store.membership_status(facts["jane_uri"])[0] == "current"
    assert store.membership_status(facts["lapsed_uri"])[0] == "lapsed"
    assert store.membership_status(facts["future_uri"])[0] == "future"
    assert store.membership_status(facts["non_member_uri"])[0] == "none"
    assert len(store.contacts_by_email(facts["shared_email"])) == 2
    statuses = Counter(store.membership_status(r.uri)[0] for r in store.by_type("person"))
    assert all(statuses[s] >= 5 for s in ("current", "lapsed", "future", "none")), statuses
    plans = {store.display_of(m.data["membership_type"]) for m in store.by_type("member")}
    assert store.membership_status(facts["unpaid_uri"])[0] == "none"  # unpaid and deleted records do not count
    assert store.membership_status(facts["deleted_member_uri"])[0] == "none"
    assert plans == {"Standard", "Concession", "Fellow", "Corporate"}


def test_events_tasks_segments_help(read_sandbox: SandboxServer) -> None:
    store, facts = read_sandbox.store, read_sandbox.store.demo_facts()
    for state in ("draft", "future", "running", "current", "past"):
        assert store.events(state), state
    all_statuses = {s.data["status"] for e in store.events("all") for s in store.attendance(e.uri)}
    assert all_statuses == set(ATTENDANCE_STATUSES)
    past = store.get_record("booking", facts["past_event_uid"])
    assert past is not None and {s.data["status"] for s in store.attendance(past.uri)} == set(ATTENDANCE_STATUSES)
    free = store.get_record("booking", facts["free_event_uid"])
    assert free is not None and all(t.data["amount"] == "0.00" for t in store.ticket_types(free.uri))
    tasks = store.tasks()
    assert Counter(store.task_status(t) for t in tasks).keys() == {"open", "done"}
    assert all(t.uri.startswith("/demo/journal/") for t in tasks)  # the 2025-02 draft: /{bucket}/journal/{uid}/
    mine = store.tasks(store.api_user)
    week = now_utc() + timedelta(days=7)
    assert any(store.task_status(t) == "open" and parse_dt(t.data["date"]) < week for t in mine)
    assert len(mine) < len(tasks)
    assert all(store.segment_count(s.uri) > 0 for s in store.segments())
    assert any(not s.data["active"] for s in store.segments())
    refund = store.search_help("refund booking")[0]
    assert refund.uid == facts["refund_help_uid"] and refund.data["link"].startswith("https://")


def test_injection_strings_are_seeded_as_data(read_sandbox: SandboxServer) -> None:
    store = read_sandbox.store
    uris = store.demo_facts()["injection_uris"]
    assert len(uris) >= 3
    for uri in uris:
        record = store.get(uri)
        assert record is not None and "Ignore previous instructions" in str(record.data)


@pytest.mark.slow
def test_large_build() -> None:
    """What the large seed holds; how long it takes to build is a bench figure (`python -m bench`, scale)."""
    store = Store.create(size="large", seed=1)
    try:
        assert store.count("person") + store.count("organisation") >= 50_000
        assert store.count("booking") >= 300 and store.count("journal") >= 10_000
        assert max(store.segment_count(s.uri) for s in store.segments()) >= 10_000
        found, total = store.search_contacts("smith", limit=10)
        assert total > 100 and len(found) == 10
    finally:
        store.close()
