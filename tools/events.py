"""list_events, get_event, list_attendees and set_attendance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from sheepcrm_mcp.server.toolkit import (
    Deps,
    Input,
    Output,
    ReadTool,
    Refusal,
    ToolSpec,
    WriteDeps,
    WriteTool,
    list_page,
    or_refuse,
)
from sheepcrm_mcp.server.writes import NAME_CAP, Change, WritePlan, visible
from sheepcrm_mcp.sheepcrm import PermissionDenied
from sheepcrm_mcp.sheepcrm.scope import parse_uri
from sheepcrm_mcp.tools.common import Detail, ListOutput, Paged, Uid, fetch_pages, ref, rows, text

State = Literal["current", "future", "past", "running", "draft", "all"]
AttendanceStatus = Literal["invited", "accepted", "declined", "attended", "no-show"]
STATUSES: tuple[AttendanceStatus, ...] = ("invited", "accepted", "declined", "attended", "no-show")
EventUid = Annotated[Uid, Field(description="Event uid.")]


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


REDUCED = (
    "This API key may not read the full event, so these are the reduced fields of sheepCRM's event summary "
    "(its endpoint for accounts without access to the full event details)."
)


async def _event_or_refuse(uid: str, deps: Deps) -> tuple[dict[str, Any], str | None]:
    """The event, or its reduced summary when the key lacks the permission for the full one (403)."""
    missing = f"No event with uid {uid!r}. Find events with list_events (state='all' to include past and draft ones)."
    try:
        return await or_refuse(deps.client.event(uid), missing), None
    except PermissionDenied as exc:
        summary = await or_refuse(deps.client.event_summary(uid), missing)
        return summary, f"{REDUCED} ({exc})"


async def _optional(call: Awaitable[Any], what: str, notes: list[str]) -> Any:
    """A part of an answer this key may not be allowed to read: None and a note on 403."""
    try:
        return await call
    except PermissionDenied as exc:
        notes.append(f"{what} not available to this key: {exc}")
        return None


# ---- list_events ------------------------------------------------------------------------


class ListEventsInput(Paged):
    state: Annotated[State, Field()] = "future"
    query: Annotated[str | None, Field(max_length=100, description="Words in title or location.")] = None


class ListEventsOutput(ListOutput):
    events: list[EventBrief]


async def list_events(req: ListEventsInput, deps: Deps) -> ListEventsOutput:
    found, complete = await fetch_pages(lambda page, size: deps.client.events(req.state, page, size), "bookings")
    events = [brief(e) for e in found if text(e.get("record_state")) != "deleted"]
    if req.query:
        words = req.query.lower().split()
        events = [e for e in events if all(w in f"{e.title} {e.location or ''}".lower() for w in words)]
    items, envelope = list_page(
        events, req.limit, req.cursor, f"events:{req.state}:{req.query}",
        f"No {req.state} events match; try state='all' or fewer words.",
        cut=None if complete else f"Stopped after {len(found)} events (sheepCRM gives no total); narrow the state.",
    )
    return ListEventsOutput(events=items, **envelope)


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
    attendance: dict[str, int] = Field(description="Sessions by status: invited, accepted, declined, ...")
    description: str | None = None
    address: str | None = None
    website: str | None = None
    note: str | None = Field(None, description="What this key could not read, if anything.")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def get_event(req: GetEventInput, deps: Deps) -> Event:
    e, reduced = await _event_or_refuse(req.uid, deps)
    notes = [reduced] if reduced else []
    tickets_data = await _optional(deps.client.event_tickets(req.uid), "Tickets", notes)
    attendance = await _optional(deps.client.attendance(req.uid), "Attendance", notes)
    tickets = [
        TicketType(
            name=text(t.get("name")) or "ticket",
            price=text(t.get("amount")),
            member_only=t.get("member_only") if isinstance(t.get("member_only"), bool) else None,
            capacity=_int(t.get("total")),
            booked=_int(t.get("allocated")),
            free=_int(t.get("available")),
        )
        for t in rows(tickets_data, "available_tickets")
    ]
    counts = Counter(s.status for s in sessions(attendance)[0])
    frees = [t.free for t in tickets if t.free is not None]
    event = Event(
        **brief(e).model_dump(),
        capacity=_int(e.get("capacity")),
        tickets=tickets,
        tickets_free=sum(frees) if frees else None,
        attendance=dict(sorted(counts.items())),
        note=" ".join(notes) or None,
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
    session_uid: str | None = None
    person_uri: str | None = Field(None, description="The booker; for a guest, whose guest they are.")
    name: str
    email: str | None = None
    status: str
    ticket: str | None = None
    guest: bool | None = None
    guest_uri: str | None = None


class ListAttendeesOutput(ListOutput):
    event: str
    counts: dict[str, int] = Field(description="All sessions of the event by status (before filters).")
    attendees: list[Attendee]


def sessions(data: Any) -> tuple[list[Attendee], int]:
    """Every attendance session (several per person are possible), guests included; deleted ones left out.
    Returns (sessions, how many deleted ones were left out)."""
    out, deleted = [], 0
    for a in rows(data, "sessions"):
        if text(a.get("record_state")) == "deleted":
            deleted += 1
            continue
        guest = a.get("guest") if isinstance(a.get("guest"), bool) else None
        out.append(
            Attendee(
                session_uid=text(a.get("uid")),
                person_uri=ref(a.get("person_ref")),
                name=text(a.get("attendee_name")) or text(a.get("display_value")) or "(no name)",
                email=text(a.get("attendee_email")),
                status=text(a.get("status")) or "unknown",
                ticket=text(a.get("ticket")),
                guest=guest,
                guest_uri=ref(a.get("guest_ref")),
            )
        )
    return out, deleted


def session_notes(people: list[Attendee], deleted: int) -> list[str]:
    notes = []
    per_person = Counter(p.person_uri for p in people if p.person_uri and not p.guest)
    multi = sorted(u for u, n in per_person.items() if n > 1)
    if multi:
        notes.append(
            f"Several sessions for {', '.join(multi[:5])}{' and others' if len(multi) > 5 else ''}: "
            "set_attendance changes every session of a person."
        )
    if deleted:
        notes.append(f"{deleted} deleted session(s) left out.")
    return notes


async def list_attendees(req: ListAttendeesInput, deps: Deps) -> ListAttendeesOutput:
    e, reduced = await _event_or_refuse(req.uid, deps)
    people, deleted = sessions(await deps.client.attendance(req.uid))
    counts = dict(sorted(Counter(p.status for p in people).items()))
    notes = [*([reduced] if reduced else []), *session_notes(people, deleted)]
    if req.status:
        people = [p for p in people if p.status == req.status]
    if req.name:
        people = [p for p in people if req.name.lower() in p.name.lower()]
    items, envelope = list_page(
        people, req.limit, req.cursor, f"attendees:{req.uid}:{req.status}:{req.name}",
        "No attendees match these filters.",
    )
    envelope["note"] = " ".join(filter(None, [*notes, envelope["note"]])) or None
    return ListAttendeesOutput(
        event=text(e.get("display_value")) or text(e.get("title")) or req.uid, counts=counts, attendees=items,
        **envelope,
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
    e, _ = await _event_or_refuse(req.uid, deps)
    title = visible(text(e.get("display_value")) or text(e.get("title")) or req.uid, NAME_CAP)

    wanted = {str(p) for p in people}

    async def read() -> dict[str, Any]:
        # Only the attendees being changed: the gate fingerprints this state, and a colleague marking
        # someone else at the same event must not abort this change as a conflict. A person may hold
        # several sessions (the PUT sets them all); guest sessions are not set through the booker.
        found, _ = sessions(await deps.client.attendance(req.uid, fresh=True))
        state: dict[str, Any] = {}
        for a in found:
            if a.person_uri in wanted and not a.guest:
                entry = state.setdefault(a.person_uri, {"name": a.name, "statuses": []})
                entry["statuses"].append(a.status)
        return state

    def diff(state: dict[str, Any]) -> list[Change]:
        missing = [str(p) for p in people if str(p) not in state]
        if missing:
            raise Refusal(
                f"Not on the attendance list of {title}: {', '.join(missing)}. "
                "Check with list_attendees; only listed attendees can be marked (guests are set through sheepCRM)."
            )
        changes = []
        for p in people:
            statuses = state[str(p)]["statuses"]
            if all(s == req.status for s in statuses):
                continue
            several = f", all {len(statuses)} sessions" if len(statuses) > 1 else ""
            label = f"{state[str(p)]['name']} ({p.uid}){several}"
            before = statuses[0] if len(set(statuses)) == 1 else " / ".join(statuses)
            changes.append(Change(str(p), label, before, req.status))
        return changes

    async def apply(changes: list[Change], _: Any) -> None:
        for change in changes:
            await deps.client.set_attendance(req.uid, parse_uri(change.key, bucket, ("person",)), req.status)

    def undo(applied: list[Change]) -> dict[str, Any] | None:
        before = {c.before for c in applied}
        if len(before) == 1 and next(iter(before)) in STATUSES:
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
        description="One event: dates, ticket types with free places, attendance counts by status (reduced when "
        "the key lacks event permissions). full: description, address.",
        input=GetEventInput,
        output=Event,
        handler=get_event,
    ),
    ReadTool(
        name="list_attendees",
        title="List attendees",
        toolset="events",
        description="An event's attendance sessions (person_uri, status, ticket, guests) and counts by status; "
        "filter by status or name.",
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
