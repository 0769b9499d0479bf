"""The per-tool manifest: one entry for every tool of the staff catalogue and of the member profile.

The suites that must reach every tool (the scope fuzz, the field contract, secrets, faults and load)
iterate this manifest instead of keeping their own lists, and `missing()` names any tool without an
entry, so a new tool cannot be silently left out of them. An entry says, for its tool:

- `calls`: calls with valid arguments against the demo sandbox (reads succeed; writes are real changes);
- `slots`: every argument that names a record or a query, filled with a value under test;
- `reads`: the upstream reads its calls make, by their names in tools/contract.py's READS;
- `write` (write tools): how to aim it at one record of a kind, and the upstream write that sends;
  or `unaimed`: why a write that makes or removes records cannot be aimed, and which tests cover it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sheepcrm_mcp.sandbox.store import Store
from sheepcrm_mcp.server.specs import ToolSpec, WriteTool
from sheepcrm_mcp.tools.catalogue import TOOLS
from sheepcrm_mcp.tools.self_service import TOOLS as MEMBER_TOOLS

Facts = dict[str, Any]
Args = dict[str, Any]
Kind = Literal["person", "task", "attendee"]
Profile = Literal["staff", "member"]
STATUSES = ("accepted", "attended", "no-show", "declined", "invited")


@dataclass(frozen=True)
class Aimed:
    """One write aimed at one record: its arguments and the upstream PUT it sends (path, person_uri or '')."""

    args: Args
    put: tuple[str, str]


@dataclass(frozen=True)
class Write:
    """How to aim a write tool at a record of `kind`; `turn` counts earlier writes to that record (from 0)."""

    kind: Kind
    aim: Callable[[Facts, str, str, int], Aimed]  # (facts, bucket, target, turn)


@dataclass(frozen=True)
class Entry:
    profiles: tuple[Profile, ...]
    calls: Callable[[Facts], list[Args]]
    slots: Callable[[Facts, str], list[Args]]
    reads: frozenset[str]
    write: Write | None = None
    unaimed: str = ""  # a write that makes or removes a record cannot be aimed at one: why, and what covers it


def _reads(*names: str) -> frozenset[str]:
    return frozenset(names)


def _none(_: Facts, __: str = "") -> list[Args]:
    return []


def _contact(facts: Facts, bucket: str, uri: str, turn: int) -> Aimed:
    return Aimed({"uri": uri, "phone": f"01632 {turn:06d}"}, (f"/api/v1{uri}", ""))


def _task(facts: Facts, bucket: str, uid: str, turn: int) -> Aimed:
    complete = turn % 2 == 0
    upstream = "complete" if complete else "uncomplete"
    return Aimed(
        {"uid": uid, "action": "complete" if complete else "reopen"},
        (f"/notifications/v2/{bucket}/task/{uid}/{upstream}", ""),
    )


def _attendance(facts: Facts, bucket: str, person: str, turn: int) -> Aimed:
    event = facts["past_event_uid"]
    return Aimed(
        {"uid": event, "person_uris": [person], "status": STATUSES[turn % len(STATUSES)]},
        (f"/events/v2/{bucket}/booking/{event}/attendance", person),
    )


MANIFEST: dict[str, Entry] = {
    "search_contacts": Entry(
        ("staff",),
        lambda f: [
            {"query": "austen"},
            {"last_name": "Dickens"},
            {"email": f["jane_email"]},
            {"plan": "Standard"},
            {"renewing_within_days": 60},
            {"organisation": f["organisation_uri"]},
        ],
        lambda f, bad: [{"query": bad}, {"email": bad}],
        _reads(
            "search", "person search", "organisation list", "connections", "member list", "membership_type list",
            "memberships", "v1 record",
        ),
    ),
    "get_contact": Entry(
        ("staff",),
        lambda f: [{"uri": f["jane_uri"]}, {"uri": f["jane_uri"], "detail": "full"}, {"uri": f["organisation_uri"]}],
        lambda f, bad: [{"uri": bad}, {"uri": bad, "detail": "full"}],
        _reads("v1 record"),
    ),
    "update_contact": Entry(
        ("staff",),
        lambda f: [{"uri": f["non_member_uri"], "phone": "01632 960111"}],
        lambda f, bad: [{"uri": bad, "phone": "01632 960000"}],
        _reads("v1 record"),
        Write("person", _contact),
    ),
    "create_contact": Entry(
        ("staff",),
        lambda f: [{"first_name": "Walk", "last_name": "Inmanifest", "email": "walk.in.manifest@example.org"}],
        lambda f, bad: [{"first_name": bad, "last_name": "Quill", "email": f"{bad}@example.org"}],
        _reads("organisation list", "person list", "v1 record"),
        unaimed="makes a new record (a POST) rather than changing one; tests/tools/test_contacts.py covers it",
    ),
    "delete_contact": Entry(
        ("staff",),
        _none,
        lambda f, bad: [{"uri": bad}],
        _reads(),
        unaimed="removes only a record this server made; tests/tools/test_contacts.py covers it",
    ),
    "check_membership": Entry(
        ("staff",),
        lambda f: [{"uri": f["lapsed_uri"]}, {"email": f["jane_email"], "detail": "full"}],
        lambda f, bad: [{"uri": bad}, {"email": bad}],
        _reads("memberships", "v1 membership by email", "display", "v1 record", "member list"),
    ),
    "get_record_history": Entry(
        ("staff",),
        lambda f: [{"uri": f["jane_uri"]}, {"uri": f["jane_uri"], "since_days": 3650}],
        lambda f, bad: [{"uri": bad}],
        _reads("record history"),
    ),
    "list_events": Entry(
        ("staff",),
        lambda f: [{"state": "all", "limit": 20}, {"state": "future"}, {"state": "all", "person": f["jane_uri"]}],
        lambda f, bad: [{"state": "all", "query": bad}],
        _reads("events", "tickets", "event", "person orders", "attendance"),
    ),
    "get_event": Entry(
        ("staff",),
        lambda f: [{"uid": f["future_event_uid"]}, {"uid": f["past_event_uid"], "detail": "full"}],
        lambda f, bad: [{"uid": bad, "detail": "full"}],
        _reads("event", "tickets", "attendance"),
    ),
    "list_attendees": Entry(
        ("staff",),
        lambda f: [{"uid": f["past_event_uid"]}, {"uid": f["past_event_uid"], "status": "attended"}],
        lambda f, bad: [{"uid": bad}],
        _reads("event", "attendance"),
    ),
    "set_attendance": Entry(
        ("staff",),
        lambda f: [{"uid": f["past_event_uid"], "person_uris": [f["jane_uri"]], "status": "no-show"}],
        lambda f, bad: [
            {"uid": bad, "person_uris": [f["jane_uri"]], "status": "attended"},
            {"uid": f["past_event_uid"], "person_uris": [bad], "status": "attended"},
        ],
        _reads("event", "attendance"),
        Write("attendee", _attendance),
    ),
    "list_tasks": Entry(
        ("staff",),
        lambda f: [{"scope": "mine"}, {"scope": "all", "status": "any", "limit": 50}, {"status": "done"}],
        lambda f, bad: [{"cursor": bad}],
        _reads("my tasks", "all tasks"),
    ),
    "get_task": Entry(
        ("staff",),
        lambda f: [{"uid": f["my_open_task_uid"]}, {"uid": f["my_open_task_uid"], "detail": "full"}],
        lambda f, bad: [{"uid": bad}, {"uid": f["my_open_task_uid"], "detail": bad}],
        _reads("task"),
    ),
    "update_task": Entry(
        ("staff",),
        lambda f: [{"uid": f["my_open_task_uid"], "action": "complete"}],
        lambda f, bad: [{"uid": bad, "action": "complete"}],
        _reads("task"),
        Write("task", _task),
    ),
    "search_help": Entry(
        ("staff", "member"),
        lambda f: [{"query": "refund booking"}, {"query": "refund booking", "detail": "full"}],
        lambda f, bad: [{"query": bad + "xx"}],
        _reads("help search"),
    ),
    "find_segments": Entry(
        ("staff",),
        lambda f: [{}, {"name": "members"}],
        lambda f, bad: [{"name": bad}],
        _reads("segments"),
    ),
    "query_segment": Entry(
        ("staff",),
        lambda f: [
            {"uid": f["segment_current_members_uid"]},
            {"uid": f["segment_fellows_uid"], "mode": "members", "limit": 5},
            {"uid": f["segment_current_members_uid"], "mode": "lookup", "q": "austen"},
        ],
        lambda f, bad: [
            {"uid": bad},
            {"uid": bad, "mode": "members"},
            {"uid": bad, "mode": "lookup", "q": "austen"},
            {"uid": f["segment_fellows_uid"], "mode": "lookup", "q": bad},
        ],
        _reads("segment count", "segment members", "segment lookup"),
    ),
    "my_membership": Entry(
        ("member",),
        lambda f: [{}, {"detail": "full"}],
        lambda f, bad: [{"detail": bad}],
        _reads("memberships", "display"),
    ),
    "my_bookings": Entry(
        ("member",),
        lambda f: [{}, {"when": "all"}],
        lambda f, bad: [{"when": bad}, {"cursor": bad}],
        _reads("events", "attendance", "person orders"),
    ),
    "upcoming_events": Entry(
        ("member",),
        lambda f: [{}, {"query": "austen"}],
        lambda f, bad: [{"query": bad}, {"cursor": bad}],
        _reads("events", "tickets", "event"),
    ),
}


def tools_of(profile: Profile) -> tuple[ToolSpec, ...]:
    """The tools a profile serves: the staff catalogue or the member's self-service tools."""
    return tuple(TOOLS) if profile == "staff" else tuple(MEMBER_TOOLS)


def every_tool() -> dict[str, ToolSpec]:
    """Every tool of both catalogues, by name."""
    return {spec.name: spec for profile in ("staff", "member") for spec in tools_of(profile)}


def missing(tools: Iterable[ToolSpec], manifest: dict[str, Entry] = MANIFEST) -> list[str]:
    """What is wrong with the manifest for `tools`, one line per tool, naming it (empty when complete)."""
    problems = []
    for spec in tools:
        entry = manifest.get(spec.name)
        if entry is None:
            problems.append(
                f"{spec.name}: no entry in tests/manifest.py MANIFEST; add its valid calls, record-argument "
                "slots and upstream reads, so the scope fuzz, field contract, secrets, faults and load suites call it"
            )
        elif isinstance(spec, WriteTool) and entry.write is None and not entry.unaimed:
            problems.append(
                f"{spec.name}: a write tool; its MANIFEST entry needs `write` (how to aim it) or `unaimed` (why not)"
            )
    return problems


def entry(name: str) -> Entry:
    """The manifest entry of one tool; a tool without one fails the calling suite, naming it and what to add."""
    found = MANIFEST.get(name)
    if found is None:
        raise AssertionError("\n".join(missing([every_tool()[name]], MANIFEST)))
    return found


def entries(profile: Profile) -> dict[str, Entry]:
    """The manifest entries a session of `profile` can call, in catalogue order (every tool must have one)."""
    return {spec.name: entry(spec.name) for spec in tools_of(profile)}


def calls(facts: Facts, profile: Profile, *, writes: bool = True) -> list[tuple[str, Args]]:
    """Every valid call of the profile's tools (reads only unless `writes`)."""
    return [
        (name, args)
        for name, entry in entries(profile).items()
        if writes or not (entry.write or entry.unaimed)
        for args in entry.calls(facts)
    ]


def slots(facts: Facts, bad: str, profile: Profile = "staff") -> list[tuple[str, Args]]:
    """Every record-argument slot of the profile's tools, filled with `bad` (other arguments valid)."""
    return [(name, args) for name, entry in entries(profile).items() for args in entry.slots(facts, bad)]


def write_targets(store: Store, groups: int, per: int = 2) -> list[dict[Kind, list[str]]]:
    """Records to aim writes at, `per` of each kind for each of `groups` (disjoint, none of the demo facts)."""
    facts = store.demo_facts()
    fixed = {v for k, v in facts.items() if k.endswith("_uri")} | set(facts["injection_uris"])
    people = [r.uri for r in store.by_type("person") if r.uri not in fixed]
    keep = {facts["my_open_task_uid"], facts["injection_task_uid"]}
    tasks = [t.uid for t in store.tasks() if t.uid not in keep]
    event = f"/{store.bucket}/booking/{facts['past_event_uid']}/"
    attendees = [a for a in dict.fromkeys(a.data["person_ref"] for a in store.attendance(event)) if a not in fixed]
    pools: dict[Kind, list[str]] = {"person": people, "task": tasks, "attendee": attendees}
    return [{kind: pool[g * per : g * per + per] for kind, pool in pools.items()} for g in range(groups)]
