"""get_record_history: who changed what and when."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from sheepcrm_mcp.server.toolkit import Deps, Output, ReadTool, ToolSpec, list_page, or_refuse
from sheepcrm_mcp.sheepcrm.scope import RECORD_TYPES, parse_uri
from sheepcrm_mcp.tools.common import ListOutput, Paged, rows, text

HISTORY_TYPES = ("person", "organisation", "booking", "task", "member")


class GetRecordHistoryInput(Paged):
    uri: Annotated[str, Field(min_length=1, max_length=200, description="Record uri.")]
    since_days: Annotated[int, Field(ge=1, le=3650)] = 180


class FieldChange(Output):
    field: str
    before: Any = None
    after: Any = None


class HistoryEntry(Output):
    date: str | None
    user: str | None
    message: str | None
    changes: list[FieldChange]


class GetRecordHistoryOutput(ListOutput):
    uri: str
    entries: list[HistoryEntry]


async def get_record_history(req: GetRecordHistoryInput, deps: Deps) -> GetRecordHistoryOutput:
    uri = parse_uri(req.uri, deps.client.bucket, HISTORY_TYPES)
    data = await or_refuse(
        deps.client.record_audit(uri, since_days=req.since_days),
        f"No record {uri}; find it with search_contacts, list_events or list_tasks.",
    )
    entries = [
        HistoryEntry(
            date=text(e.get("date")),
            user=text(e.get("user_display")) or text(e.get("user")),
            message=text(e.get("message")),
            changes=[
                FieldChange(field=text(d.get("field")) or "?", before=d.get("prev"), after=d.get("value"))
                for d in rows(e.get("clean_diff") or e.get("diff") or [])
            ],
        )
        for e in rows(data, "results")
    ]
    entries.sort(key=lambda e: e.date or "", reverse=True)
    items, envelope = list_page(
        entries, req.limit, req.cursor, f"history:{uri}:{req.since_days}",
        f"No changes in the last {req.since_days} days.",
    )
    return GetRecordHistoryOutput(uri=str(uri), entries=items, **envelope)


assert set(HISTORY_TYPES) <= set(RECORD_TYPES)

TOOLS: list[ToolSpec] = [
    ReadTool(
        name="get_record_history",
        title="Record history",
        toolset="history",
        description="Who changed what when on a contact, event, task or membership; newest first.",
        input=GetRecordHistoryInput,
        output=GetRecordHistoryOutput,
        handler=get_record_history,
    ),
]
