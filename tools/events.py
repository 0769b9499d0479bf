"""list_events, get_event, list_attendees and set_attendance."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from sheepcrm_mcp.server.toolkit import Deps, Input, Output, ReadTool, Refusal, ToolSpec, WriteDeps, WriteTool, paginate
from sheepcrm_mcp.server.writes import NAME_CAP, Change, WritePlan, visible
from sheepcrm_mcp.sheepcrm import NotFoundError
from sheepcrm_mcp.sheepcrm.scope import check_uid, parse_uri
from sheepcrm_mcp.tools.common import Detail, ListOutput, Paged, rows, text

State = Literal["current", "future", "past", "running", "draft", "all"]
AttendanceStatus = Literal["invited", "accepted", "declined", "attended", "no-show"]
STATUSES: tuple[AttendanceStatus, ...] = ("invited", "accepted", "declined", "attended", "no-show")
EventUid = Annotated[str, Field(min_length=1, max_length=64, description="Event uid.")]


class EventBrief(Output):
    uid: str
    title: str
    start: str | None = None
    end: str | None = None
    location: str | None = None
    status: str | None = None
    sold_out: bool | None = None


def brief(e: dict[str, Any]) -> EventBrief:
    return EventBrief(
        uid=text(e.get("uid")) or "",
        title=text(e.get("display_value")) or text(e.get("title")) or "(untitled)",
        start=text(e.get("start_datetime")) or text(e.get("start_date")),
        end=text(e.get("end_datetime")) or text(e.get("end_date")),
        location=text(e.get("location")),
        status="cancelled" if e.get("cancelled") else text(e.get("status")),
        sold_out=e.get("is_sold_out"),
    )


async def _event_or_refuse(uid: str, deps: Deps) -> dict[str, Any]:
    try:
        return await deps.client.event(check_uid(uid, "event uid"))
    except NotFoundError:
        raise Refusal(
            f"No event with uid {uid!r}. Find events with list_events (state='all' to include past and draft ones)."
        ) from None


# ---- list_events ------------------------------------------------------------------------


class ListEventsInput(Paged):
    state: Annotated[State, Field()] = "future"
    query: Annotated[str | None, Field(max_length=100, description="Words in title or location.")] = None


class ListEventsOutput(ListOutput):
    events: list[EventBrief]


async def list_events(req: ListEventsInput, deps: Deps) -> ListEventsOutput:
    data = await deps.client.events(req.state)
    events = [brief(e) for e in rows(data, "bookings", "results")]
    if req.query:
        words = req.query.lower().split()
        events = [e for e in events if all(w in f"{e.title} {e.location or ''}".lower() for w in words)]
    page = paginate(events, req.limit, req.cursor, f"events:{req.state}:{req.query}")
    note = page.note or (None if events else f"No {req.state} events match; try state='all' or fewer words.")
    return ListEventsOutput(events=page.items, total=len(events), next_cursor=page.next_cursor, note=note)


# ---- get_event --------------------------------------------------------------------------


class GetEventInput(Input):
    uid: EventUid
    detail: Detail = "concise"


class TicketType(Output):
    name: str
    price: str | None = None
    member_only: bool | None = None
    capacity: int | None = None
    booked: int | None = None
    free: int | None = Field(None, description="Tickets still available.")


class Event(EventBrief):
    capacity: int | None = None
    tickets: list[TicketType]
    tickets_free: int | None = Field(None, description="Free places over all ticket types.")
    attendance: dict[str, int] = Field(description="Attendees by status: invited, accepted, declined, ...")
    description: str | None = None
    address: str | None = None
    website: str | None = None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def get_event(req: GetEventInput, deps: Deps) -> Event:
    e = await _event_or_refuse(req.uid, deps)
    tickets_data = await deps.client.event_tickets(req.uid)
    attendance = await deps.client.attendance(req.uid)
    tickets = [
        TicketType(
            name=text(t.get("name")) or "ticket",
            price=text(t.get("amount")),
            member_only=t.get("member_only"),
            capacity=_int(t.get("total")),
            booked=_int(t.get("allocated")),
            free=_int(t.get("available")),
        )
        for t in rows(tickets_data, "available_tickets", "tickets")
    ]
    counts = Counter(text(a.get("status")) or "unknown" for a in rows(attendance, "sessions", "attendance"))
    frees = [t.free for t in tickets if t.free is not None]
    event = Event(
        **brief(e).model_dump(),
        capacity=_int(e.get("capacity")),
        tickets=tickets,
        tickets_free=sum(frees) if frees else None,
        attendance=dict(sorted(counts.items())),
    )
    if req.detail == "full":
        event.description = text(e.get("description"))
        event.address = text(e.get("location_address_string"))
        event.website = text(e.get("website"))
    return event


# ---- list_attendees ---------------------------------------------------------------------


class ListAttendeesInput(Paged):
    uid: EventUid
    status: Annotated[AttendanceStatus | None, Field()] = None
    name: Annotated[str | None, Field(max_length=100, description="Part of a name.")] = None


class Attendee(Output):
    person_uri: str | None
    name: str
    email: str | None = None
    status: str
    ticket: str | None = None


class ListAttendeesOutput(ListOutput):
    event: str
    counts: dict[str, int] = Field(description="All attendees of the event by status (before filters).")
    attendees: list[Attendee]


async def list_attendees(req: ListAttendeesInput, deps: Deps) -> ListAttendeesOutput:
    e = await _event_or_refuse(req.uid, deps)
    data = await deps.client.attendance(req.uid)
    people = [
        Attendee(
            person_uri=text(a.get("person_ref")),
            name=text(a.get("attendee_name")) or "(no name)",
            email=text(a.get("attendee_email")),
            status=text(a.get("status")) or "unknown",
            ticket=text(a.get("ticket")),
        )
        for a in rows(data, "sessions", "attendance")
    ]
    counts = dict(sorted(Counter(p.status for p in people).items()))
    if req.status:
        people = [p for p in people if p.status == req.status]
    if req.name:
        people = [p for p in people if req.name.lower() in p.name.lower()]
    page = paginate(people, req.limit, req.cursor, f"attendees:{req.uid}:{req.status}:{req.name}")
    return ListAttendeesOutput(
        event=text(e.get("display_value")) or req.uid,
        counts=counts,
        attendees=page.items,
        total=len(people),
        next_cursor=page.next_cursor,
        note=page.note or (None if people else "No attendees match these filters."),
    )


# ---- set_attendance (write, gated) ------------------------------------------------------


class SetAttendanceInput(Input):
    uid: EventUid
    person_uris: Annotated[
        list[str], Field(min_length=1, max_length=50, description="person_uris from list_attendees.")
    ]
    status: Annotated[AttendanceStatus, Field()]

    @field_validator("person_uris")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("person_uris lists someone twice")
        return value


async def set_attendance(req: SetAttendanceInput, deps: WriteDeps) -> WritePlan:
    bucket = deps.client.bucket
    people = [parse_uri(u, bucket, ("person",)) for u in req.person_uris]
    e = await _event_or_refuse(req.uid, deps)
    title = visible(text(e.get("display_value")) or req.uid, NAME_CAP)

    wanted = {str(p) for p in people}

    async def read() -> dict[str, Any]:
        # Only the attendees being changed: the gate fingerprints this state, and a colleague marking
        # someone else at the same event must not abort this change as a conflict.
        data = await deps.client.attendance(req.uid, fresh=True)
        return {
            ref: {"name": text(a.get("attendee_name")), "status": text(a.get("status"))}
            for a in rows(data, "sessions", "attendance")
            if (ref := text(a.get("person_ref")) or "") in wanted
        }

    def diff(state: dict[str, Any]) -> list[Change]:
        missing = [str(p) for p in people if str(p) not in state]
        if missing:
            raise Refusal(
                f"Not on the attendance list of {title}: {', '.join(missing)}. "
                "Check with list_attendees; only listed attendees can be marked."
            )
        return [
            Change(str(p), f"{state[str(p)]['name']} ({p.uid})", state[str(p)]["status"], req.status)
            for p in people
            if state[str(p)]["status"] != req.status
        ]

    async def apply(changes: list[Change], _: Any) -> None:
        for change in changes:
            await deps.client.set_attendance(req.uid, parse_uri(change.key, bucket, ("person",)), req.status)

    def undo(applied: list[Change]) -> dict[str, Any] | None:
        before = {c.before for c in applied}
        if len(before) == 1:
            return {"uid": req.uid, "person_uris": [c.key for c in applied], "status": before.pop()}
        return None  # mixed previous statuses: undo needs one call per status

    return WritePlan(
        summary=f"Set {len(people)} attendee(s) of {title} to '{req.status}'",
        read=read,
        diff=diff,
        apply=apply,
        undo=undo,
        one_write_per_change=True,
    )


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="list_events",
        title="List events",
        toolset="events",
        description="Events by state, optionally with words from the title or location.",
        input=ListEventsInput,
        output=ListEventsOutput,
        handler=list_events,
    ),
    ReadTool(
        name="get_event",
        title="Get event",
        toolset="events",
        description="One event: dates, ticket types with free places, attendance counts by status. full: "
        "description, address.",
        input=GetEventInput,
        output=Event,
        handler=get_event,
    ),
    ReadTool(
        name="list_attendees",
        title="List attendees",
        toolset="events",
        description="An event's attendees (person_uri, status, ticket) and counts by status; filter by status or name.",
        input=ListAttendeesInput,
        output=ListAttendeesOutput,
        handler=list_attendees,
    ),
    WriteTool(
        name="set_attendance",
        title="Set attendance",
        toolset="events",
        description="Set 1-50 attendees of one event to a status. A person approves the batch; returns each "
        "outcome and undo.",
        input=SetAttendanceInput,
        handler=set_attendance,
        destructive=False,
        idempotent=True,
    ),
]
