"""find_segments and query_segment."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from sheepcrm_mcp.server.errors import Refusal
from sheepcrm_mcp.server.paging import decode_cursor, encode_cursor, list_page
from sheepcrm_mcp.server.specs import Deps, Output, ReadTool, ToolSpec
from sheepcrm_mcp.sheepcrm import NotFoundError, SheepError
from sheepcrm_mcp.sheepcrm.scope import CONTACT_TYPES, parse_uri
from sheepcrm_mcp.tools.common import (
    ListOutput,
    Paged,
    UidOrUri,
    count_of,
    fetch_pages,
    listed,
    text,
    uid_in,
    uid_or_uri,
    unreadable,
)
from sheepcrm_mcp.tools.search import LOOKUP_URIS, ContactHit, hit, records, row_uri, unread_rows

SegmentUid = Annotated[UidOrUri, uid_or_uri("find_segments(name=...)")]


class FindSegmentsInput(Paged):
    name: Annotated[str | None, Field(max_length=100, description="Words in the name.")] = None


class Segment(Output):
    uid: str
    name: str
    description: str | None = None
    type: str | None = None
    records: str | None = Field(None, description="The resource type it holds (person, organisation, ...).")
    active: bool | None = None


class FindSegmentsOutput(ListOutput):
    segments: list[Segment]


async def find_segments(req: FindSegmentsInput, deps: Deps) -> FindSegmentsOutput:
    # /find lists only active segments (openapi.yaml); /all every one, inactive too. A name search reads /all and
    # matches the name here, so active and inactive segments are found alike, each showing `active`.
    name = req.name
    found, complete = await fetch_pages(
        lambda page, size: deps.client.all_segments(page, size), "the segment list", "segments"
    )
    nameless = 0
    if name:
        words = name.lower().split()
        # A segment whose name cannot be read may or may not match: counted and said, never "no segment matches".
        nameless = sum(1 for s in found if not (text(s.get("name")) or text(s.get("display_value")))
                       and text(s.get("record_state")) != "deleted")
        found = [
            s for s in found
            if all(w in f"{text(s.get('name')) or text(s.get('display_value')) or ''}".lower() for w in words)
        ]
    segments = [
        Segment(
            uid=text(s.get("uid")) or "",
            name=text(s.get("name")) or text(s.get("display_value")) or "",
            description=text(s.get("description")),
            type=text(s.get("segment_type")),
            records=text(s.get("resource_type")),
            active=s.get("active") if isinstance(s.get("active"), bool) else None,
        )
        for s in found
        if text(s.get("record_state")) != "deleted"
    ]
    unnamed = (
        f"{nameless} segment(s) have no readable name (no `name` or `display_value` sheepCRM sent could be read), so "
        "whether they match is unknown; find_segments without name lists them."
    ) if nameless else None
    items, envelope = list_page(
        segments, req.limit, req.cursor, f"segments:{req.name}",
        "No readable segment name matches." if nameless else
        "No segment matches; try fewer words, or omit name to list all." if name else "No segments.",
        cut=None if complete else f"Stopped after {len(found)} segments (sheepCRM gives no total); use name.",
    )
    if unnamed:
        envelope["note"] = " ".join(filter(None, [unnamed, envelope["note"]]))
    return FindSegmentsOutput(segments=items, **envelope)


class QuerySegmentInput(Paged):
    uid: SegmentUid
    mode: Annotated[Literal["count", "members", "lookup"], Field()] = "count"
    q: Annotated[str | None, Field(max_length=100, description="Name or email (lookup: contact uri best).")] = None

    @model_validator(mode="after")
    def _q(self) -> QuerySegmentInput:
        if self.mode == "lookup" and not self.q:
            raise ValueError("mode='lookup' needs q: a contact's uri or uid (best), a name or an email")
        return self


class QuerySegmentOutput(ListOutput):
    segment_uid: str
    count: int | None = Field(None, description="Records in the segment (of any resource type).")
    by_type: dict[str, int] | None = Field(None, description="Members in this answer by resource type.")
    members: list[ContactHit] = Field(default_factory=list)


def lookup_hit(row: dict[str, Any], uri: str) -> ContactHit:
    """A lookup row {display_value, id, label, text, uri, value} (EVIDENCE.md; openapi.yaml `lookup`: `id`, `uri`
    and `value` are the record's uri): `text` is the contact's email when it looks like one, `label` the name when
    display_value is missing."""
    found = hit(row, uri)
    if found.name == "(no name)":
        found.name = text(row.get("label")) or found.name
    said = text(row.get("text"))
    if not found.email and said and "@" in said:
        found.email = said
    return found


LOOKUP_CUT = (
    "sheepCRM's lookup gives no total and may send only its first matches ({n} here): there may be more; "
    "mode='members' with q pages through them."
)


LOOKUP_NONE = (
    "sheepCRM's lookup found no one for {q!r}. openapi.yaml types the lookup's q as a uid (and calls it \"a simple "
    "single search term\"), so whether a name or email is matched is not documented: this is not 'not in the "
    "segment'. Pass the contact's uri as q, or page through the members (mode='members')."
)
LOOKUP_NONE_UID = (
    "sheepCRM's lookup found no record with the uid {q!r} in this segment (openapi.yaml types the lookup's q as a "
    "uid); mode='members' pages through every member to check."
)
UID = re.compile(r"[0-9a-zA-Z]{8,40}")  # openapi.yaml `uid`: "an alphanumeric unique identifier"


def lookup_term(q: str, bucket: str) -> tuple[str, bool]:
    """What the lookup is sent (openapi.yaml types its `q` as a `uid`): a contact uri of this bucket as its uid,
    anything else as given; and whether it is sent as a uid."""
    try:
        return parse_uri(q.strip(), bucket, CONTACT_TYPES).uid, True
    except ValueError:
        return q, bool(UID.fullmatch(q.strip())) and any(c.isdigit() for c in q)


def looked_up(data: Any) -> list[dict[str, Any]]:
    """The rows of a lookup answer: openapi.yaml's `lookup` is an array (`results` holding one, or one row object,
    tolerated: tools/contract.py). Any other shape, an empty body included, is "could not read", never "nobody"."""
    return listed(data, "the segment lookup", "results", single=("id", "uri", "value"))


def members_of(
    rows: list[dict[str, Any]], bucket: str, make: Callable[[dict[str, Any], str], ContactHit] = hit,
    also: tuple[str, ...] = (),
) -> tuple[list[ContactHit], str | None]:
    """The rows as members, each with its record's uri (row_uri: `uri`, an `id` that is a uri, the keys `also` of
    its kind of row, or a bare-uid `id` with its `resource`), and what to say of the rows whose uri cannot be read
    (counted, with their keys): never a member with an empty uri."""
    members: list[ContactHit] = []
    unread: list[dict[str, Any]] = []
    for row in rows:
        if (uri := row_uri(row, bucket, also)) is None:
            unread.append(row)
        else:
            members.append(make(row, uri))
    return members, unread_rows(unread)


def by_type(members: list[ContactHit]) -> dict[str, int] | None:
    return dict(sorted(Counter(m.type for m in members).items())) or None


async def query_segment(req: QuerySegmentInput, deps: Deps) -> QuerySegmentOutput:
    uid = uid_in(req.uid, deps.client.bucket, ("segment",))
    try:
        if req.mode == "count":
            data = await deps.client.segment_count(uid)
            number = count_of(data)
            if number is None:  # absent or not a whole number: the size is unknown, never 0 or nothing
                raise unreadable("the segment's count", data, "`count` holding a whole number")
            return QuerySegmentOutput(segment_uid=uid, count=number, total=number)
        if req.mode == "lookup":
            assert req.q is not None
            q, by_uid = lookup_term(req.q, deps.client.bucket)
            rows = looked_up(await deps.client.segment_lookup(uid, q))
            found, unread = members_of(rows, deps.client.bucket, lookup_hit, LOOKUP_URIS)
            items, envelope = list_page(
                found, req.limit, req.cursor, f"lookup:{uid}:{q}",
                "" if unread else  # the rows that could not be read are said instead of "found no one"
                (LOOKUP_NONE_UID if by_uid else LOOKUP_NONE).format(q=q),
                cut=LOOKUP_CUT.format(n=len(rows)) if rows and not by_uid else None,  # a uid names one record
            )
            envelope["total"] = None  # the lookup gives no total: no count of its matches, nor a 0, is known
            envelope["note"] = " ".join(filter(None, [unread, envelope["note"]])) or None
            return QuerySegmentOutput(segment_uid=uid, members=items, by_type=by_type(items), **envelope)
        key = f"members:{uid}:{req.q}:{req.limit}"
        offset = decode_cursor(req.cursor, key)
        data = await deps.client.segment_members(uid, page=offset // req.limit + 1, page_size=req.limit, q=req.q)
    except NotFoundError:
        # openapi.yaml lists 200/400/401 for these reads: a 404 is not documented, so both readings are said
        raise Refusal(
            f"sheepCRM answered 404 for segment {uid!r}: no such segment, or it cannot be read with this key; check "
            "the uid with find_segments."
        ) from None
    # "a list of records with contents depending on segment type": no documented wrapper and no total, so a
    # full page means there may be more.
    rows = records(data, "the segment's members")
    members, unread = members_of(rows, deps.client.bucket)
    end = offset + len(rows)
    full = len(rows) >= req.limit
    total, note = None if full or offset else end, unread if rows else "No members on this page."
    if not full and not req.q:  # a short page is the last only when the segment's count agrees
        total, ended = await _checked_end(uid, end, deps)
        note = " ".join(filter(None, [ended, note])) or None
    elif not full:  # filtered by q: the segment's count is of every member, so it cannot confirm the end
        total = None
        note = " ".join(filter(None, [note, (
            f"sheepCRM answered {len(rows)} member(s) for {req.q!r}, fewer than asked; it gives no total for a "
            "filtered list and what q matches on is not documented, so there may be more: query_segment without q "
            "pages through every member.")]))
    return QuerySegmentOutput(
        segment_uid=uid,
        members=members,
        by_type=by_type(members),
        next_cursor=encode_cursor(end, key) if full else None,
        total=total,
        note=note,
    )


async def _checked_end(uid: str, end: int, deps: Deps) -> tuple[int | None, str | None]:
    """The total when the members read (`end`, up to a short page) agree with the segment's /count, and what to say
    when they do not or the count cannot be read (the total is then unknown, never the number read)."""
    try:
        count = count_of(await deps.client.segment_count(uid))
    except SheepError:
        count = None
    if count is None:
        return None, "The segment's count could not be read, so whether these are all its members is unknown."
    if count > end:
        return None, (
            f"Could not read all members ({end} of {count}): sheepCRM's members list ended before the segment's "
            "count. This is not the whole segment."
        )
    if count < end:
        return None, f"sheepCRM listed {end} members but the segment's count says {count}: the total is unknown."
    return end, None


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="find_segments",
        toolset="segments",
        description="Saved segments (active and inactive), all or by words in the name; each with its record type.",
        input=FindSegmentsInput,
        output=FindSegmentsOutput,
        handler=find_segments,
        about=(
            "saved segments, all or by words in the name, active and inactive alike, with the record type each "
            "holds"
        ),
    ),
    ReadTool(
        name="query_segment",
        toolset="segments",
        description="A segment's size (count), members (paged, any record type), or whether someone is in it "
        "(lookup, with q).",
        input=QuerySegmentInput,
        output=QuerySegmentOutput,
        handler=query_segment,
        about="a segment's size, members (paged; any record type, counted by type) or whether someone is in it",
    ),
]
