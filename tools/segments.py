"""find_segments and query_segment."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sheepcrm_mcp.server.toolkit import (
    Deps,
    Output,
    ReadTool,
    Refusal,
    ToolSpec,
    decode_cursor,
    encode_cursor,
    list_page,
)
from sheepcrm_mcp.sheepcrm import NotFoundError
from sheepcrm_mcp.tools.common import ListOutput, Paged, Uid, rows, text
from sheepcrm_mcp.tools.search import ContactHit, hit


class FindSegmentsInput(Paged):
    name: Annotated[str | None, Field(max_length=100, description="Words in the name.")] = None


class Segment(Output):
    uid: str
    name: str
    description: str | None = None
    type: str | None = None


class FindSegmentsOutput(ListOutput):
    segments: list[Segment]


async def find_segments(req: FindSegmentsInput, deps: Deps) -> FindSegmentsOutput:
    data = await (
        deps.client.find_segments(req.name, page_size=250) if req.name else deps.client.all_segments(page_size=250)
    )
    segments = [
        Segment(
            uid=text(s.get("uid")) or "",
            name=text(s.get("name")) or text(s.get("display_value")) or "",
            description=text(s.get("description")),
            type=text(s.get("segment_type")),
        )
        for s in rows(data, "segments", "results")
    ]
    items, envelope = list_page(
        segments, req.limit, req.cursor, f"segments:{req.name}", "No segment matches; omit name to list all."
    )
    return FindSegmentsOutput(segments=items, **envelope)


class QuerySegmentInput(Paged):
    uid: Annotated[Uid, Field(description="Segment uid.")]
    mode: Annotated[Literal["count", "members", "lookup"], Field()] = "count"
    q: Annotated[str | None, Field(max_length=100, description="Name or email.")] = None

    @model_validator(mode="after")
    def _q(self) -> QuerySegmentInput:
        if self.mode == "lookup" and not self.q:
            raise ValueError("mode='lookup' needs q, a name or email to look for")
        return self


class QuerySegmentOutput(ListOutput):
    segment_uid: str
    count: int | None = Field(None, description="People in the segment.")
    members: list[ContactHit] = Field(default_factory=list)


async def query_segment(req: QuerySegmentInput, deps: Deps) -> QuerySegmentOutput:
    uid = req.uid
    try:
        if req.mode == "count":
            data = await deps.client.segment_count(uid)
            count = data.get("count") if isinstance(data, dict) else None
            return QuerySegmentOutput(
                segment_uid=uid,
                count=int(count) if count is not None else None,
                total=int(count) if count is not None else None,
            )
        if req.mode == "lookup":
            assert req.q is not None
            found = [hit(r) for r in rows(await deps.client.segment_lookup(uid, req.q), "results")]
            items, envelope = list_page(
                found, req.limit, req.cursor, f"lookup:{uid}:{req.q}",
                f"Nobody matching {req.q!r} is in this segment.",
            )
            return QuerySegmentOutput(segment_uid=uid, members=items, **envelope)
        key = f"members:{uid}:{req.q}:{req.limit}"
        offset = decode_cursor(req.cursor, key)
        data = await deps.client.segment_members(uid, page=offset // req.limit + 1, page_size=req.limit, q=req.q)
    except NotFoundError:
        raise Refusal(f"No segment with uid {uid!r}; find segments with find_segments.") from None
    members = [hit(r) for r in rows(data, "results")]
    total = data.get("total") if isinstance(data, dict) else None
    end = offset + len(members)
    more = total is not None and end < int(total)
    return QuerySegmentOutput(
        segment_uid=uid,
        members=members,
        total=total,
        count=total,
        next_cursor=encode_cursor(end, key) if more else None,
    )


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="find_segments",
        title="Find segments",
        toolset="segments",
        description="Saved segments (contact lists) by name, or all.",
        input=FindSegmentsInput,
        output=FindSegmentsOutput,
        handler=find_segments,
    ),
    ReadTool(
        name="query_segment",
        title="Query segment",
        toolset="segments",
        description="A segment's size (count), members (paged), or whether someone is in it (lookup, with q).",
        input=QuerySegmentInput,
        output=QuerySegmentOutput,
        handler=query_segment,
    ),
]
