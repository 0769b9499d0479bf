"""find_segments and query_segment."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from sheepcrm_mcp.server.errors import Refusal
from sheepcrm_mcp.server.paging import decode_cursor, encode_cursor, list_page
from sheepcrm_mcp.server.specs import Deps, Output, ReadTool, ToolSpec
from sheepcrm_mcp.sheepcrm import NotFoundError
from sheepcrm_mcp.tools.common import (
    ListOutput,
    Paged,
    UidOrUri,
    fetch_pages,
    text,
    uid_in,
    uid_or_uri,
    unreadable,
)
from sheepcrm_mcp.tools.search import ContactHit, hit, records

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
    if name:
        words = name.lower().split()
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
    items, envelope = list_page(
        segments, req.limit, req.cursor, f"segments:{req.name}",
        "No segment matches; try fewer words, or omit name to list all." if name else "No segments.",
        cut=None if complete else f"Stopped after {len(found)} segments (sheepCRM gives no total); use name.",
    )
    return FindSegmentsOutput(segments=items, **envelope)


class QuerySegmentInput(Paged):
    uid: SegmentUid
    mode: Annotated[Literal["count", "members", "lookup"], Field()] = "count"
    q: Annotated[str | None, Field(max_length=100, description="Name or email.")] = None

    @model_validator(mode="after")
    def _q(self) -> QuerySegmentInput:
        if self.mode == "lookup" and not self.q:
            raise ValueError("mode='lookup' needs q, a name or email to look for")
        return self


class QuerySegmentOutput(ListOutput):
    segment_uid: str
    count: int | None = Field(None, description="Records in the segment (of any resource type).")
    by_type: dict[str, int] | None = Field(None, description="Members in this answer by resource type.")
    members: list[ContactHit] = Field(default_factory=list)


def lookup_hit(row: dict[str, Any]) -> ContactHit:
    """A lookup row {display_value, id, label, text, uri, value} (EVIDENCE.md): `text` is the contact's email when
    it looks like one, `label` the name when display_value is missing."""
    found = hit(row)
    if found.name == "(no name)":
        found.name = text(row.get("label")) or found.name
    said = text(row.get("text"))
    if not found.email and said and "@" in said:
        found.email = said
    return found


def by_type(members: list[ContactHit]) -> dict[str, int] | None:
    return dict(sorted(Counter(m.type for m in members).items())) or None


async def query_segment(req: QuerySegmentInput, deps: Deps) -> QuerySegmentOutput:
    uid = uid_in(req.uid, deps.client.bucket, ("segment",))
    try:
        if req.mode == "count":
            data = await deps.client.segment_count(uid)
            count = data.get("count") if isinstance(data, dict) else None
            number = int(count) if isinstance(count, (int, str)) and not isinstance(count, bool) and str(
                count).isdigit() else None
            if number is None:  # absent or not a whole number: the size is unknown, never 0 or nothing
                raise unreadable("the segment's count", data, "`count` holding a whole number")
            return QuerySegmentOutput(segment_uid=uid, count=number, total=number)
        if req.mode == "lookup":
            assert req.q is not None
            found = [lookup_hit(r) for r in records(await deps.client.segment_lookup(uid, req.q), "the segment lookup")]
            items, envelope = list_page(
                found, req.limit, req.cursor, f"lookup:{uid}:{req.q}",
                f"Nobody matching {req.q!r} is in this segment.",
            )
            return QuerySegmentOutput(segment_uid=uid, members=items, by_type=by_type(items), **envelope)
        key = f"members:{uid}:{req.q}:{req.limit}"
        offset = decode_cursor(req.cursor, key)
        data = await deps.client.segment_members(uid, page=offset // req.limit + 1, page_size=req.limit, q=req.q)
    except NotFoundError:
        raise Refusal(f"No segment with uid {uid!r}; find segments with find_segments.") from None
    # "a list of records with contents depending on segment type": no documented wrapper and no total, so a
    # full page means there may be more.
    members = [hit(r) for r in records(data, "the segment's members")]
    end = offset + len(members)
    full = len(members) >= req.limit
    return QuerySegmentOutput(
        segment_uid=uid,
        members=members,
        by_type=by_type(members),
        next_cursor=encode_cursor(end, key) if full else None,
        total=None if full or offset else end,
        note=None if members else "No members on this page.",
    )


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
