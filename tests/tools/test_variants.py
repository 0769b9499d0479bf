"""The tools' answers under every sandbox variant (sandbox/variants.py): where the documents are silent, the
sandbox's own choice is only one of the answers sheepCRM may give. Each scenario asks the questions an
assistant asks, end to end through a real MCP client, and checks the answer against the truth read from the
sandbox's store: a right answer, or one that says it could not tell. A confident wrong answer fails.

The sandbox's own choices run in the default suite; every variant runs with `-m slow`.
`WRONG` lists the cases where today's tools still answer wrongly: strict xfails, so fixing a tool turns its
case into an unexpected pass, and the entry must then be removed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.records import now_utc
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.variants import NAMES
from tests.helpers import CANARY_KEY, answering, approve

VARIANT_PARAMS = [None, *(pytest.param(name, marks=pytest.mark.slow) for name in NAMES)]

# (scenario, variant) -> the wrong answer today's tools give under that variant.
WRONG: dict[tuple[str, str], str] = {}


@pytest.fixture(autouse=True)
def _known_wrong(request: pytest.FixtureRequest) -> None:
    """Mark the cases of WRONG as strict xfails."""
    callspec = getattr(request.node, "callspec", None)
    variant = callspec.params.get("variant") if callspec else None
    scenario = request.node.originalname.removeprefix("test_")
    if variant and (why := WRONG.get((scenario, variant))):
        request.applymarker(pytest.mark.xfail(strict=True, reason=why))


@pytest.fixture(scope="module", params=VARIANT_PARAMS, ids=lambda v: v or "sandbox")
def variant(request: pytest.FixtureRequest) -> str | None:
    value: str | None = request.param
    return value


@pytest.fixture(scope="module")
def reading(variant: str | None) -> Iterator[SandboxServer]:
    """One sandbox per variant for the read scenarios (they never write)."""
    with SandboxServer(key=CANARY_KEY, variant=variant) as sb:
        yield sb
        assert not [r for r in sb.request_log if r.method != "GET"]


@pytest.fixture
def writing(variant: str | None) -> Iterator[SandboxServer]:
    with SandboxServer(key=CANARY_KEY, variant=variant) as sb:
        yield sb


async def ask(client: Any, tool: str, args: dict[str, Any]) -> tuple[Any, str, bool]:
    """(structured answer, text the model reads, is_error)."""
    result = await client.call_tool(tool, args)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    return result.structured_content, text, bool(result.is_error)


async def every(client: Any, args: dict[str, Any]) -> tuple[list[str], bool]:
    """The uris search_contacts lists, following next_cursor to the end, and whether an answer (or the error that
    ended the list) said it could not read the list completely."""
    seen: list[str] = []
    incomplete = False
    for _ in range(40):
        body, text, is_error = await ask(client, "search_contacts", args)
        if is_error:
            assert "could not be read completely" in text, text
            return seen, True
        incomplete = incomplete or "could not be read completely" in (body.get("note") or "")
        seen += [c["uri"] for c in body["contacts"]]
        if not body.get("next_cursor"):
            return seen, incomplete
        args = {**args, "cursor": body["next_cursor"]}
    raise AssertionError("more than 40 pages")


def could_not_tell(body: Any, text: str, is_error: bool) -> bool:
    """An answer that says it could not read or interpret sheepCRM's answer (never a 'no')."""
    said = (text + " " + json.dumps(body or {})).lower()
    return is_error or "could not" in said or "unknown" in said


# ---- reads --------------------------------------------------------------------------------------------


async def test_membership(reading: SandboxServer, connect: Any, variant: str | None) -> None:
    """Jane (a paid record covering today), Dickens (lapsed), Hardy (never a member): the same answer by email
    and by uri, and a record status nobody documents is `unknown`, never 'not a member'."""
    async with connect(reading) as client:
        facts = reading.store.demo_facts()
        jane_record = reading.store.live_memberships(facts["jane_uri"])[0].data["membership_record_status"]
        known = {"active", "lapsed", "cancelled", "future", "incomplete", "pending"}
        expected = {
            "jane": {"current"} if jane_record in known else {"unknown"},
            "lapsed": {"lapsed", "grace", "cancelled"},  # a record sheepCRM marks cancelled is said so
            "non_member": {"none"},
        }
        for who, allowed in expected.items():
            by_uri, text, is_error = await ask(client, "check_membership", {"uri": facts[f"{who}_uri"]})
            assert not is_error, text
            assert by_uri["status"] in allowed, (who, by_uri["summary"])
            by_email, text, is_error = await ask(client, "check_membership", {"email": facts[f"{who}_email"]})
            assert not is_error, text
            assert by_email["status"] == by_uri["status"], (who, by_email["summary"], by_uri["summary"])


async def test_search(reading: SandboxServer, connect: Any, variant: str | None) -> None:
    """Jane by email and by last name: found with her plain email, or 'could not read'; never 'no match'."""
    async with connect(reading) as client:
        facts = reading.store.demo_facts()
        for args in ({"email": facts["jane_email"]}, {"last_name": "Austen"}):  # a last name alone: by free text
            body, text, is_error = await ask(client, "search_contacts", args)
            if "last_name" in args and not is_error:
                assert "Searched by name" in (body or {}).get("note", ""), body
            found = {c["uri"]: c for c in (body or {}).get("contacts", [])}
            if facts["jane_uri"] not in found:
                assert could_not_tell(body, text, is_error), (args, text)
                continue
            assert found[facts["jane_uri"]].get("email") in (None, facts["jane_email"]), found[facts["jane_uri"]]
        contact, text, is_error = await ask(client, "get_contact", {"uri": facts["jane_uri"]})
        assert not is_error and contact["email"] == facts["jane_email"], text


async def test_help(reading: SandboxServer, connect: Any, variant: str | None) -> None:
    """The refund article is found, or the answer says sheepCRM's answer could not be read."""
    async with connect(reading) as client:
        refund = reading.store.require("help", reading.store.demo_facts()["refund_help_uid"]).data["title"]
        body, text, is_error = await ask(client, "search_help", {"query": "refund booking"})
        titles = [a["title"] for a in (body or {}).get("articles", [])]
        assert refund in titles or could_not_tell(body, text, is_error), text


async def test_person_events(reading: SandboxServer, connect: Any, variant: str | None) -> None:
    """A person attended the past event on a place someone else paid for: it is among their events."""
    async with connect(reading) as client:
        facts = reading.store.demo_facts()
        body, text, is_error = await ask(client, "list_events", {"person": facts["booked_by_other_uri"]})
        uids = {e["uid"] for e in (body or {}).get("events", [])}
        assert facts["past_event_uid"] in uids or could_not_tell(body, text, is_error), text


async def test_organisation(reading: SandboxServer, connect: Any, variant: str | None) -> None:
    """The people connected to the Pemberley Trust, or an answer that says it cannot tell; never 'nobody'."""
    async with connect(reading) as client:
        facts = reading.store.demo_facts()
        body, text, is_error = await ask(client, "search_contacts", {"organisation": facts["organisation_uri"]})
        found = {c["uri"] for c in (body or {}).get("contacts", [])}
        if found:
            assert found == set(facts["organisation_people"]), text
        else:
            assert could_not_tell(body, text, is_error), text


async def test_renewals(reading: SandboxServer, connect: Any, variant: str | None) -> None:
    """Due for renewal in 60 days: paid, live memberships covering today that end within 60 days and have not
    been renewed already. No renewed one is listed; no one listed lacks such a membership."""
    async with connect(reading) as client:
        store = reading.store
        today = now_utc().date()
        due, renewed = set(), set()
        for person in store.by_type("person") + store.by_type("organisation"):
            for m in store.live_memberships(person.uri):
                d = m.data
                if d["start_date"] <= today.isoformat() <= d["end_date"] <= (today + timedelta(days=60)).isoformat():
                    (renewed if d.get("has_renewed") else due).add(person.uri)
        found, incomplete = await every(client, {"renewing_within_days": 60, "limit": 50})
        listed = set(found)
        assert not listed & (renewed - due), f"already renewed, listed as due: {sorted(listed & renewed)[:3]}"
        assert listed <= due | renewed, sorted(listed - due - renewed)[:3]
        assert incomplete or listed == due, sorted(due - listed)[:3]  # nobody due is left out unsaid


async def test_plan_pages(reading: SandboxServer, connect: Any, variant: str | None) -> None:
    """Current Standard members, page by page: no contact twice, none without a live Standard membership."""
    async with connect(reading) as client:
        store = reading.store
        plan = store.demo_facts()["plans"]["Standard"]
        today = now_utc().date().isoformat()
        truth = {
            c.uri for c in store.by_type("person") + store.by_type("organisation")
            if any(m.data["membership_type"] == plan and m.data["start_date"] <= today <= m.data["end_date"]
                   for m in store.live_memberships(c.uri))
        }
        seen, incomplete = await every(client, {"plan": "Standard", "limit": 20})
        assert len(seen) == len(set(seen)), "a contact listed twice"
        assert set(seen) <= truth, sorted(set(seen) - truth)[:3]
        assert incomplete or set(seen) == truth, sorted(truth - set(seen))[:3]  # a shorter list says so


async def test_history(reading: SandboxServer, connect: Any, variant: str | None) -> None:
    """Who changed Jane's record: a user's own name or their uri (never another's name)."""
    async with connect(reading) as client:
        facts = reading.store.demo_facts()
        body, text, is_error = await ask(client, "get_record_history", {"uri": facts["jane_uri"]})
        assert not is_error and body["entries"], text
        names = {u.uri: u.display_value for u in reading.store.by_type("user")}
        for entry, raw in zip(body["entries"], reading.store.audit(facts["jane_uri"]), strict=False):
            assert entry["user"] in (raw["user"], names.get(raw["user"])), entry


async def test_tasks(reading: SandboxServer, connect: Any, variant: str | None) -> None:
    """My open tasks: exactly the store's."""
    async with connect(reading) as client:
        store = reading.store
        mine = {t.uid for t in store.tasks(store.api_user) if not t.data["completed"]}
        body, text, is_error = await ask(client, "list_tasks", {"limit": 50})
        assert not is_error, text
        assert {t["uid"] for t in body["tasks"]} == mine


# ---- writes -------------------------------------------------------------------------------------------


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


async def test_attendance_write(writing: SandboxServer, connect: Any, tmp_path: Path, variant: str | None) -> None:
    """Jane holds two sessions at the free event; mark her declined. The answer and the audit say what changed:
    'applied' when both changed, never 'nothing was changed' when one did."""
    async with connect(writing, elicitation=approve) as writer:
        store, facts = writing.store, writing.store.demo_facts()
        event = store.uri("booking", facts["multi_session_event_uid"])

        def hers() -> list[str]:
            return [s.data["status"] for s in store.attendance(event)
                    if s.data.get("person_ref") == facts["jane_uri"] and not s.data.get("guest")]

        before = hers()
        body, text, _ = await ask(
            writer, "set_attendance",
            {"uid": facts["multi_session_event_uid"], "person_uris": [facts["jane_uri"]], "status": "declined"},
        )
        after = hers()
        changed = sum(a != b for a, b in zip(after, before, strict=True))
        outcome = audit(tmp_path)[-1]["outcome"]
        if changed == len(after):
            assert body and body["status"] == "applied" and outcome == "succeeded", text
        elif changed:
            assert "nothing was changed" not in text.lower() and outcome != "failed", text
        else:
            assert outcome == "failed", text


async def test_task_write(writing: SandboxServer, connect: Any, tmp_path: Path, variant: str | None) -> None:
    """Complete my open task: applied, and done in the store."""
    async with connect(writing, elicitation=approve) as writer:
        store, uid = writing.store, writing.store.demo_facts()["my_open_task_uid"]
        body, text, is_error = await ask(writer, "update_task", {"uid": uid, "action": "complete"})
        assert not is_error and body["status"] == "applied", text
        assert store.require("journal", uid).data["completed"] is True
        assert audit(tmp_path)[-1]["outcome"] == "succeeded"


async def test_contact_write(writing: SandboxServer, connect: Any, tmp_path: Path, variant: str | None) -> None:
    """Change Jane's postcode: applied, stored, and the answer's undo names the old one."""
    async with connect(writing, elicitation=approve) as writer:
        store, jane = writing.store, writing.store.demo_facts()["jane_uri"]
        old = store.get(jane).data["postal_code"]  # type: ignore[union-attr]
        body, text, is_error = await ask(writer, "update_contact", {"uri": jane, "postcode": "BA1 1AA"})
        assert not is_error and body["status"] == "applied", text
        assert store.get(jane).data["postal_code"] == "BA1 1AA"  # type: ignore[union-attr]
        assert old in json.dumps(body)



async def test_contact_create(writing: SandboxServer, connect: Any, tmp_path: Path, variant: str | None) -> None:
    """Add a new person: created once and named by uri (however sheepCRM answers the POST); a known email is
    refused naming its record (however the searches answer)."""
    store, facts = writing.store, writing.store.demo_facts()
    args = {"first_name": "Ken", "last_name": "Mattingly", "email": "ken.mattingly@example.org"}
    async with connect(writing, elicitation=approve) as writer:
        body, text, is_error = await ask(writer, "create_contact", args)
        again, again_text, _ = await ask(writer, "create_contact", args)
        _, refused, refused_error = await ask(
            writer, "create_contact", {"first_name": "J", "last_name": "Doe", "email": facts["jane_email"]})
    [made] = [r for r in store.by_type("person") if r.data.get("last_name") == "Mattingly"]
    assert not is_error and body["status"] == "applied" and made.uri in text, text
    assert again["status"] == "no_change" and made.uri in again_text, again_text
    assert [r.path for r in writing.request_log if r.method == "POST"] == ["/api/v1/demo/person/"]
    if variant == "other-wrappers":  # the person search's matches cannot be read: "could not check", no create
        assert refused_error and "Could not check sheepCRM for an existing contact" in refused, refused
    else:
        assert refused_error and facts["jane_uri"] in refused, refused


async def test_contact_delete(writing: SandboxServer, connect: Any, tmp_path: Path, variant: str | None) -> None:
    """Add a person, undo it with delete_contact, then ask about the email and add them again: the deleted record
    (however the listings show deleted records) is nobody's contact, no duplicate of the new one, and no other
    contact holding the email."""
    store, jane = writing.store, writing.store.demo_facts()["jane_uri"]
    args = {"first_name": "Ken", "last_name": "Mattingly", "email": "ken.mattingly@example.org"}
    seen: list[str] = []
    async with connect(writing, elicitation=answering("accept", {"confirm": True}, seen)) as writer:
        made, text, is_error = await ask(writer, "create_contact", args)
        assert not is_error and made["status"] == "applied", text
        old = made["undo"]["arguments"]["uri"]
        gone, text, is_error = await ask(writer, made["undo"]["tool"], made["undo"]["arguments"])
        assert not is_error and gone["status"] == "applied", text
        member, member_text, member_error = await ask(writer, "check_membership", {"email": args["email"]})
        seen.clear()
        again, again_text, is_error = await ask(writer, "create_contact", args)
        assert not is_error and again["status"] == "applied", again_text
        new, previews = again["undo"]["arguments"]["uri"], list(seen)
        seen.clear()
        _, text, is_error = await ask(writer, "update_contact", {"uri": jane, "email": args["email"]})
    assert store.get(old).state == "deleted" and new != old  # type: ignore[union-attr]
    assert member_error or member["status"] in ("none", "unknown"), member_text
    assert previews and not [p for p in previews if old in p] and old not in again_text, (previews, again_text)
    assert not is_error and new in seen[0] and old not in seen[0], seen

