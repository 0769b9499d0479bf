"""query_segment end to end: members in a shape it cannot read are said to be unreadable; a lookup reads the
documented `lookup` fields (label, text)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest

from sheepcrm_mcp.sandbox.records import primary
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store
from sheepcrm_mcp.tools import segments
from sheepcrm_mcp.tools.search import ContactHit
from tests.helpers import (
    CANARY_KEY,
    MODES,
    Readers,
    answer,
    answer_body,
    clone_records,
    error_text,
    read,
    sandbox_answers,
)


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



async def test_a_lookup_that_sends_its_first_matches_claims_no_total(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    """The lookup (openapi.yaml `lookup`: an array, no total) may send only its first matches (the sandbox: 10):
    the number of rows is never given as the total, and the answer says there may be more."""
    store, facts = shared_sandbox.store, shared_sandbox.store.demo_facts()
    seg = store.uri("segment", facts["segment_current_members_uid"])
    q = "example"  # in every member's email
    shown, matching = store.segment_members(seg, q=q, limit=10)
    assert len(shown) == 10 < matching
    body = await answer_body(connect, shared_sandbox, "query_segment",
                             {"uid": facts["segment_current_members_uid"], "mode": "lookup", "q": q, "limit": 50})
    assert len(body["members"]) == 10 and body.get("total") is None, body
    assert "no total" in body["note"] and "there may be more" in body["note"], body


async def test_a_row_with_a_bare_id_takes_its_uri_and_one_without_a_type_is_could_not_read(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segment members are "a list of records with contents depending on segment type": a row may carry its record's
    bare uid as `id` beside its `resource`, with no `uri` (drift bare-id). Each member's uri is then built from the
    bucket, its type and uid, never "". A lookup row with a bare id and no type takes its documented `value`, the
    record's uri (openapi.yaml `lookup`); one without that either names no record: it is counted as could not read
    (its keys), never a member with an empty uri nor "found no one"."""
    with SandboxServer(key=CANARY_KEY, drift=["bare-id:/segments/v2/"]) as sb:
        store, facts = sb.store, sb.store.demo_facts()
        uid = facts["segment_current_members_uid"]
        first, _ = store.segment_members(store.uri("segment", uid), limit=5)
        page = await answer_body(connect, sb, "query_segment", {"uid": uid, "mode": "members", "limit": 5})
        look = await answer_body(connect, sb, "query_segment",
                                 {"uid": uid, "mode": "lookup", "q": facts["jane_email"]})
    assert [m["uri"] for m in page["members"]] == [m.uri for m in first], page
    assert [(m["uri"], m["type"]) for m in look["members"]] == [(facts["jane_uri"], "person")], look
    assert "Could not read" not in (look.get("note") or ""), look
    sandbox_answers(monkeypatch, "segment_lookup",
                    lambda request, body: [{k: v for k, v in row.items() if k != "value"} for row in body])
    with SandboxServer(key=CANARY_KEY, drift=["bare-id:/segments/v2/"]) as sb:
        facts = sb.store.demo_facts()
        look = await answer_body(connect, sb, "query_segment",
                                 {"uid": facts["segment_current_members_uid"], "mode": "lookup",
                                  "q": facts["jane_email"]})
    assert look["members"] == [] and "Could not read 1 of the results (keys" in look["note"], look
    assert "found no one" not in look["note"] and "Jane" not in look["note"], look


def test_a_lookup_in_a_shape_the_documents_do_not_give_is_could_not_read() -> None:
    """`lookup` is an array: an empty object (an empty body), a null or a wrapper no document gives is "could not
    read", never "nobody matching"."""
    for body in ({}, {"rows": []}, None, "none", [None]):
        with pytest.raises(Exception, match=r"Could not read .*the segment lookup"):
            segments.looked_up(body)
    assert segments.looked_up([]) == []


@pytest.mark.parametrize("mode", MODES)
async def test_find_segments(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    body = await read(readers, "find_segments", {"limit": 50}, mode=mode)
    assert {s["uid"] for s in body["segments"]} == {s.uid for s in store.segments()}
    named = await read(readers, "find_segments", {"name": "lapsed"}, mode=mode)
    assert store.demo_facts()["segment_lapsed_members_uid"] in {s["uid"] for s in named["segments"]}


async def test_a_server_that_caps_the_page_size_below_the_one_asked_still_gives_every_segment(connect: Any) -> None:
    """Variant page-cap: sheepCRM serves 100 segments a page although 250 are asked; a page of 100 is not the last
    one, so every segment is found."""
    with SandboxServer(key=CANARY_KEY, variant="page-cap") as sb:
        clone_records(sb, sb.store.segments()[0].uri, 140)
        every = {s.uid for s in sb.store.segments(active_only=False)}
        uids: set[str] = set()
        cursor = None
        while True:
            args = {"limit": 50, **({"cursor": cursor} if cursor else {})}
            body = await answer_body(connect, sb, "find_segments", args)
            uids |= {s["uid"] for s in body["segments"]}
            if not (cursor := body.get("next_cursor")):
                break
        asked = {r.query for r in sb.request_log if r.path.endswith("/all")}
    assert len(every) == 150 and uids == every and body["total"] == len(every), (len(uids), len(every), body)
    assert all("page_size=250" in q for q in asked), asked


@pytest.mark.parametrize("mode", MODES)
async def test_query_segment(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    uid = store.demo_facts()["segment_current_members_uid"]
    seg_uri = store.uri("segment", uid)
    count = await read(readers, "query_segment", {"uid": uid}, mode=mode)
    assert count["count"] == store.segment_count(seg_uri)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        args: dict[str, Any] = {"uid": uid, "mode": "members", "limit": 7}
        if cursor:
            args["cursor"] = cursor
        page = await read(readers, "query_segment", args, mode=mode)
        seen += [m["uri"] for m in page["members"]]
        cursor = page["next_cursor"]
    members, _ = store.segment_members(seg_uri, offset=0, limit=21)
    assert seen == [m.uri for m in members]
    jane = store.demo_facts()["jane_email"]
    look = await read(readers, "query_segment", {"uid": uid, "mode": "lookup", "q": jane}, mode=mode)
    assert store.demo_facts()["jane_uri"] in {m["uri"] for m in look["members"]}


async def test_segments_show_active_and_record_type_and_members_page_without_total(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    store = shared_sandbox.store
    every = await answer_body(connect, shared_sandbox, "find_segments", {"limit": 50})
    assert {s["uid"]: s.get("active") for s in every["segments"]} == {s.uid: s.data["active"] for s in store.segments()}
    assert all(s.get("records") == "person" or s.get("records") for s in every["segments"])
    uid = store.demo_facts()["segment_current_members_uid"]
    page = await answer_body(connect, shared_sandbox, "query_segment", {"uid": uid, "mode": "members", "limit": 5})
    assert page.get("total") is None and page["next_cursor"] and page["by_type"] == {"person": 5}


async def test_a_short_page_is_the_last_only_when_the_segment_count_agrees(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sheepCRM sending fewer members than asked (a page size of its own) before the end of the segment: the answer
    says it could not read all members (N of M, M from /count), never a total of what was read. A segment read to
    its end (the count agrees) has its total."""
    pages = Store.segment_members

    def three_at_most(store: Store, segment_uri: str, **kw: Any) -> Any:
        return pages(store, segment_uri, **{**kw, "limit": min(kw.get("limit") or 3, 3)})

    monkeypatch.setattr(Store, "segment_members", three_at_most)  # before the sandbox builds its routes
    with SandboxServer(key=CANARY_KEY) as sb:
        uid = sb.store.demo_facts()["segment_current_members_uid"]
        count = sb.store.segment_count(sb.store.uri("segment", uid))
        short = await answer_body(connect, sb, "query_segment", {"uid": uid, "mode": "members", "limit": 10})
    assert count > 3 and len(short["members"]) == 3 and short.get("total") is None, short
    assert f"Could not read all members (3 of {count})" in short["note"], short
    monkeypatch.undo()
    with SandboxServer(key=CANARY_KEY) as sb:
        uid = sb.store.demo_facts()["segment_current_members_uid"]
        count = sb.store.segment_count(sb.store.uri("segment", uid))
        args: dict[str, Any] = {"uid": uid, "mode": "members", "limit": 50}
        async with connect(sb) as client:
            while True:
                whole = (await client.call_tool("query_segment", args)).structured_content
                if not whole.get("next_cursor"):
                    break
                args["cursor"] = whole["next_cursor"]
    assert whole["total"] == count and not whole.get("note"), whole  # the last, short page: the count agrees


async def test_an_inactive_segment_says_so(shared_sandbox: SandboxServer, connect: Any) -> None:
    store = shared_sandbox.store
    inactive = next(s for s in store.by_type("segment") if not s.data["active"])
    segs = await answer_body(connect, shared_sandbox, "find_segments", {"name": inactive.data["name"].split()[0]})
    assert {"uid": inactive.uid, "active": False}.items() <= next(
        s for s in segs["segments"] if s["uid"] == inactive.uid
    ).items()


# ---- the pure mappers ----------------------------------------------------------------------


def test_by_type_counts_members_by_record_type() -> None:
    hits = [
        ContactHit(uri=f"/demo/{t}/{i}/", name="x", type=t) for i, t in enumerate(["person", "organisation", "person"])
    ]
    assert segments.by_type(hits) == {"organisation": 1, "person": 2}
    assert segments.by_type([]) is None


@pytest.mark.parametrize("drift", ["retyped-field=count:/count", "renamed-field=count:/count"])
async def test_a_segment_count_that_cannot_be_read_is_said_so(connect: Any, drift: str) -> None:
    """A count sent as another type, or under another name (drift): 'could not read', naming the keys, never a size
    left out or 0."""
    with SandboxServer(key=CANARY_KEY, drift=[drift]) as sb:
        uid = sb.store.demo_facts()["segment_current_members_uid"]
        said = error_text(await answer(connect, sb, "query_segment", {"uid": uid}))
    assert "Could not read sheepCRM's answer to the segment's count" in said and "count" in said, said


async def test_an_empty_lookup_states_its_basis_and_a_short_filtered_page_may_not_be_all(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    """What the lookup matches on is not documented: finding no one is said as sheepCRM's lookup finding no one,
    never "nobody matching is in this segment". A page of members filtered by q shorter than asked is not taken as
    the whole list (the segment's count is of every member): no total, and the note says there may be more."""
    facts = shared_sandbox.store.demo_facts()
    uid = facts["segment_current_members_uid"]
    empty = await answer_body(connect, shared_sandbox, "query_segment", {"uid": uid, "mode": "lookup", "q": "zzqx"})
    said = empty.get("note") or ""
    assert not empty["members"] and "Nobody matching" not in said, empty
    assert "lookup found no one for 'zzqx'. openapi.yaml types the lookup's q as a uid" in said, empty
    assert "not documented" in said and "total" not in empty, empty  # no count of its matches is known, not even 0
    page = await answer_body(connect, shared_sandbox, "query_segment",
                             {"uid": uid, "mode": "members", "q": facts["jane_email"], "limit": 20})
    assert page["members"] and page.get("total") is None, page
    assert "there may be more" in page["note"], page


@pytest.mark.parametrize("mode", ["count", "members"])
async def test_a_404_for_a_segment_says_both_readings_never_no_such_segment(shared_sandbox: SandboxServer,
                                                                             connect: Any, mode: str) -> None:
    """openapi.yaml lists 200/400/401 for the segment reads: a 404 is said as sheepCRM answering 404 (no such
    segment, or not readable with this key), never flatly "No segment"."""
    result = await answer(connect, shared_sandbox, "query_segment", {"uid": "nosuchsegment0", "mode": mode})
    said = error_text(result)
    assert "sheepCRM answered 404 for segment 'nosuchsegment0'" in said and "with this key" in said, said
    assert "No segment with" not in said, said


async def test_segments_without_a_readable_name_are_counted_never_no_match(connect: Any) -> None:
    """find_segments(name=...) over segments whose `name` and `display_value` cannot be read (drift: respelled):
    they may or may not match, so the answer counts them, never "No segment matches"."""
    drift = ["renamed-field=name:/segments/v2/", "renamed-field=display_value:/segments/v2/"]
    with SandboxServer(key=CANARY_KEY, drift=drift) as sb:
        live = [s for s in sb.store.by_type("segment") if s.data.get("record_state") != "deleted"]
        body = await answer_body(connect, sb, "find_segments", {"name": "members"})
    assert body["segments"] == [] and "No segment matches" not in body["note"], body
    assert f"{len(live)} segment(s) have no readable name" in body["note"], body


async def test_a_lookup_by_a_contact_sends_its_uid_as_the_documents_type_q(connect: Any) -> None:
    """openapi.yaml types the lookup's `q` as a `uid`: a contact's uri (or uid) is sent as its uid and finds them.
    Variant lookup-uid-only matches nothing else: a name that finds no one is not "not in the segment", and no
    count (not even 0) is given."""
    with SandboxServer(key=CANARY_KEY, variant="lookup-uid-only") as sb:
        facts = sb.store.demo_facts()
        uid, jane = facts["segment_current_members_uid"], facts["jane_uri"]
        by_uri = await answer_body(connect, sb, "query_segment", {"uid": uid, "mode": "lookup", "q": jane})
        by_uid = await answer_body(connect, sb, "query_segment",
                                   {"uid": uid, "mode": "lookup", "q": jane.split("/")[3]})
        by_name = await answer_body(connect, sb, "query_segment", {"uid": uid, "mode": "lookup", "q": "Jane Austen"})
        sent = [parse_qs(r.query)["q"] for r in sb.request_log if r.path.endswith("/lookup")]
    assert [m["uri"] for m in by_uri["members"]] == [m["uri"] for m in by_uid["members"]] == [jane], by_uri
    assert sent[0] == [jane.split("/")[3]], sent
    assert by_name["members"] == [] and "total" not in by_name, by_name
    assert "this is not 'not in the segment'" in by_name["note"] and "uri as q" in by_name["note"], by_name
