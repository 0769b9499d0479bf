"""get_record_history: who changed what and when."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field

from sheepcrm_mcp.server.errors import or_refuse
from sheepcrm_mcp.server.paging import list_page
from sheepcrm_mcp.server.specs import Deps, Output, ReadTool, ToolSpec
from sheepcrm_mcp.sheepcrm import SheepError
from sheepcrm_mcp.sheepcrm.scope import RECORD_TYPES, parse_uri
from sheepcrm_mcp.tools.common import ListOutput, Paged, count_of, listed, ref, text

HISTORY_TYPES = ("person", "organisation", "booking", "task", "journal", "member")


class GetRecordHistoryInput(Paged):
    uri: Annotated[str, Field(min_length=1, max_length=200, description="Record uri.")]
    since_days: Annotated[int, Field(ge=1, le=3650)] = 180


class FieldChange(Output):
    field: str
    before: Any = None
    after: Any = None


class HistoryEntry(Output):
    date: str | None = None
    record: str | None = Field(None, description="Name of a related record changed (e.g. the attendee).")
    user: str | None = Field(None, description="The user's uri: sheepCRM's history names no user.")
    message: str | None = None
    changes: list[FieldChange] = []


class GetRecordHistoryOutput(ListOutput):
    uri: str
    entries: list[HistoryEntry]


def value(v: Any) -> Any:
    """A diff value as a value: sheepCRM's clean_diff writes lists as JSON text ('["a", null]')."""
    if isinstance(v, str) and v[:1] in "[{" and v[-1:] in "]}":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


async def _names(uris: set[str], deps: Deps) -> dict[str, str]:
    """Record uris of this bucket to display values via /api/v2/{bucket}/{type}/{uid}/display; a uri that cannot
    be named stays a uri. Not for users: they live in sheepCRM's own bucket (/sheepcrm/user/{uid}/), and nothing
    shows that this bucket's /display names them."""
    names: dict[str, str] = {}
    for uri in sorted(uris)[:MAX_NAMES]:
        parts = uri.strip("/").split("/")
        if len(parts) != 3:
            continue
        try:
            name = await deps.client.display(parts[1], parts[2])
        except SheepError:
            continue
        if name:
            names[uri] = name
    return names


MAX_NAMES = 10  # distinct users named per answer; more keep their uris


async def get_record_history(req: GetRecordHistoryInput, deps: Deps) -> GetRecordHistoryOutput:
    uri = parse_uri(req.uri, deps.client.bucket, HISTORY_TYPES)
    data = await or_refuse(
        deps.client.record_audit(uri, since_days=req.since_days),
        f"No history found at /audit/v2/{uri.bucket}/{uri.type}/{uri.uid}/audit: the record may not exist. "
        "Find it with search_contacts, list_events or list_tasks.",
    )
    found = listed(data, "the record's history", "results")
    related = {u for e in found if (u := text(e.get("uri"))) and u.rstrip("/") != str(uri).rstrip("/")}
    records = await _names(related, deps)
    entries = [
        HistoryEntry(
            date=text(e.get("date")),
            record=records.get(r, r) if (r := text(e.get("uri"))) in related else None,
            user=ref(e.get("user")),
            message=text(e.get("message")),
            changes=[
                FieldChange(field=text(d.get("field")) or "?", before=value(d.get("prev")), after=value(d.get("value")))
                for d in (listed(e["clean_diff"], "a history entry's changes") if e.get("clean_diff") is not None
                          else [])
            ],
        )
        for e in found
    ]
    entries.sort(key=lambda e: e.date or "", reverse=True)
    longer = (
        f" Older changes may exist: call again with a longer window (since_days={min(req.since_days * 4, 3650)}, "
        "up to 3650)." if req.since_days < 3650 else ""
    )
    items, envelope = list_page(
        entries, req.limit, req.cursor, f"history:{uri}:{req.since_days}",
        f"No changes in the last {req.since_days} days.{longer}",
        cut=_cut(data, len(found)),
    )
    window = f"The last {req.since_days} days only (total counts those).{longer}" if entries else None
    envelope["note"] = " ".join(filter(None, [window, envelope.get("note"), USERS_NOTE if any(e.user for e in items)
                                              else None])) or None
    return GetRecordHistoryOutput(uri=str(uri), entries=items, **envelope)


def _cut(data: Any, sent: int) -> str | None:
    """Why the history may not be whole: sheepCRM's `count` ("the number of changes", openapi.yaml diff_list, read
    with count_of) above the entries sent, or one that cannot be read (never its value), or a full 250 (the limit
    asked for; `count` may be the number sent). An answer without a count says nothing either way."""
    count = count_of(data)
    if count is None and isinstance(data, dict) and data.get("count") is not None:
        return ("Could not read the history's `count` (not a whole number), so whether it holds every change is "
                "unknown: older changes may be missing.")
    if count is not None and count > sent:
        return f"sheepCRM counts {count} changes but sent {sent}: older changes may be missing."
    if sent >= 250:
        return "sheepCRM sent its limit of 250 entries; older changes may be missing."
    return None


USERS_NOTE = "Users are shown by their uri (/sheepcrm/user/<uid>/): sheepCRM's history does not name them."


assert set(HISTORY_TYPES) <= set(RECORD_TYPES)

TOOLS: list[ToolSpec] = [
    ReadTool(
        name="get_record_history",
        toolset="history",
        description="Who (user uri) changed what when on a contact, event, task or membership; newest first.",
        input=GetRecordHistoryInput,
        output=GetRecordHistoryOutput,
        handler=get_record_history,
        about="who (by user uri: sheepCRM's history does not name users) changed what and when on a contact, event "
        "(attendees named), task or membership",
    ),
]
