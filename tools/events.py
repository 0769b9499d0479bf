"""list_events, get_event, list_attendees and set_attendance."""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

import anyio
from pydantic import Field, PrivateAttr, field_validator, model_validator

from sheepcrm_mcp.server.errors import Refusal, or_refuse
from sheepcrm_mcp.server.paging import as_of, list_page
from sheepcrm_mcp.server.schema import SHOWN
from sheepcrm_mcp.server.specs import Deps, Input, Output, ReadTool, ToolSpec, WriteDeps, WriteTool
from sheepcrm_mcp.server.writes import NAME_CAP, Change, WritePlan, record_label, visible
from sheepcrm_mcp.sheepcrm import NotFoundError, PermissionDenied, SheepError, UpstreamError
from sheepcrm_mcp.sheepcrm.scope import RecordUri, parse_uri
from sheepcrm_mcp.tools.common import (
    FREE_BASIS,
    ContactRef,
    Detail,
    ListOutput,
    Paged,
    TimedListOutput,
    UidOrUri,
    day,
    fetch_pages,
    flag,
    free_places,
    listed,
    places,
    ref,
    shared_stock,
    shares_stock,
    text,
    today,
    uid_in,
    uid_or_uri,
    v1_none_found,
)

State = Literal["upcoming", "current", "future", "past", "running", "draft", "all"]
AttendanceStatus = Literal["invited", "accepted", "declined", "attended", "no-show"]
STATUSES: tuple[AttendanceStatus, ...] = ("invited", "accepted", "declined", "attended", "no-show")
# "Booked", the one definition every tool uses: a session that holds a place (accepted, then attended or no-show);
# an invitation is not a booking, nor is a declined one.
BOOKED: frozenset[str] = frozenset({"accepted", "attended", "no-show"})
BOOKED_MEANS = "accepted, attended or no-show; never invited"
UNKNOWN = "unknown"  # a session whose status is not one of STATUSES: "unknown: <what sheepCRM said>"


def status_word(value: Any) -> str:
    """A session's status as one of STATUSES (any letter case), else 'unknown: <value>' (neither booked nor not)."""
    said = text(value)
    word = (said or "").lower()
    return word if word in STATUSES else f"{UNKNOWN}: {said}" if said else UNKNOWN


def unknown_statuses(people: Iterable[Attendee]) -> str | None:
    """A note when sessions have statuses sheepCRM's documents do not name: who is booked is then unknown."""
    odd = Counter(p.status for p in people if p.status.startswith(UNKNOWN))
    if not odd:
        return None
    named = ", ".join(f"'{s.removeprefix(UNKNOWN).lstrip(': ') or '(none)'}' x{n}" for s, n in sorted(odd.items()))
    return (f"{sum(odd.values())} session(s) have a status sheepCRM's documents do not name ({named}): whether they "
            "are booked is unknown, so the booked count is not given.")
# openapi.yaml declares a session's `guest`, `guest_ref` and `person_ref` without meaning, and EVIDENCE.md (guest
# sessions) finds no text saying whose contact guest_ref is: on a guest session each ref may be the guest's own
# contact or the booker's (sandbox: the guest's and the booker's; variant guest-ref-booker: the other way round).
GUEST_REFS = (
    "sheepCRM's documents do not say whose contact a guest session's person_ref and guest_ref are (the guest's own "
    "or the booker's): both are shown as sent."
)
GUEST_SESSION = (
    "'guest session' means this person is named in a guest session, as the guest or as the one who booked it: "
    "sheepCRM's documents do not say whose contact its person_ref and guest_ref are, so which is not known."
)
EventUid = Annotated[UidOrUri, uid_or_uri("list_events(query=...)")]
BOOKING = ("booking",)


class EventBrief(Output):
    uid: str
    uri: str | None = None
    title: str
    start: str | None = None
    end: str | None = None
    location: str | None = None
    status: str | None = None
    sold_out: bool | None = None


class ListedEvent(EventBrief):
    free: int | None = Field(None, description=f"Free places: {FREE_BASIS}.")
    person_status: str | None = Field(
        None, description="'guest session: <status>': guest or booker (note).", json_schema_extra=SHOWN)
    guest_session_with: str | None = Field(None, description="The other contact that guest session names.")


def unmarked(events: Iterable[dict[str, Any]]) -> str | None:
    """A note for listed events that do not say whether they are deleted: the tools leave out an event marked
    `record_state: deleted`, but openapi.yaml's EventSingle does not name `record_state`, so an event without one is
    listed, and whether it is deleted is said to be unknown (never taken for "not deleted")."""
    n = sum(1 for e in events if "record_state" not in e)
    return (f"{n} listed event(s) do not say whether they are deleted (no `record_state`, which sheepCRM's documents "
            "do not name for events): whether any of them is deleted is unknown; check them in sheepCRM."
            ) if n else None


def with_note(envelope: dict[str, Any], note: str | None) -> dict[str, Any]:
    """The list envelope with one more note."""
    return {**envelope, "note": " ".join(filter(None, [envelope.get("note"), note])) or None}


def _status(e: dict[str, Any]) -> str | None:
    """`cancelled` decides when it is a boolean (openapi.yaml EventSingle); any other value: status unknown."""
    cancelled = e.get("cancelled")
    if cancelled is True:
        return "cancelled"
    return text(e.get("status")) if cancelled in (None, False) else "unknown"


def brief(e: dict[str, Any]) -> EventBrief:
    uid = text(e.get("uid")) or ""
    return EventBrief(
        uid=uid,
        uri=text(e.get("uri")),
        title=text(e.get("display_value")) or text(e.get("title")) or "(untitled)",
        start=text(e.get("start_datetime")) or text(e.get("start_date")),
        end=text(e.get("end_datetime")) or text(e.get("end_date")),
        location=text(e.get("location")),
        status=_status(e),
        sold_out=flag(e.get("is_sold_out")),
    )


REDUCED = (
    "This API key may not read the full event, so these are the reduced fields of sheepCRM's event summary "
    "(its endpoint for accounts without access to the full event details)."
)


async def _event_or_refuse(uid: str, deps: Deps) -> tuple[dict[str, Any], str | None]:
    """The event, or its reduced summary when the key lacks the permission for the full one (403)."""
    # openapi.yaml lists 200/400/401 for the event reads: a 404 is not documented, so both of its readings are said
    missing = (
        f"sheepCRM answered 404 for event {uid!r}: no such event, or it cannot be read with this key; check the uid "
        "with list_events (state='all' to include past and draft ones)."
    )
    try:
        return await or_refuse(deps.client.event(uid), missing), None
    except PermissionDenied as exc:
        summary = await or_refuse(deps.client.event_summary(uid), missing)
        return summary, f"{REDUCED} ({exc})"


async def _optional(call: Awaitable[Any], refused: str, notes: list[str]) -> Any:
    """A part of an answer this key may not be allowed to read: None and a note on 403 saying in words what was
    refused (`refused`) and why (sheepCRM's answer)."""
    try:
        return await call
    except PermissionDenied as exc:
        notes.append(f"{refused} ({exc})")
        return None


# ---- list_events ------------------------------------------------------------------------


class ListEventsInput(Paged):
    state: Annotated[
        State | None,
        Field(
            description="Default upcoming (running+future; all with person); current: from 14 days ago to 90 days "
            "ahead; draft: unpublished."
        ),
    ] = None
    query: Annotated[str | None, Field(max_length=100, description="Words in title or location.")] = None
    from_date: Annotated[date | None, Field(description="Ends on/after.")] = None
    to_date: Annotated[date | None, Field(description="Starts on/before.")] = None
    person: Annotated[ContactRef | None, Field(description="Contact uri: their events.")] = None

    @model_validator(mode="after")
    def _range(self) -> ListEventsInput:
        if self.from_date and self.to_date and self.from_date > self.to_date:
            raise ValueError("from_date is after to_date, so no event could match: swap them")
        return self


class ListEventsOutput(TimedListOutput):
    events: list[ListedEvent]


async def stock_of(uid: str, row: dict[str, Any], deps: Deps) -> dict[str, Any] | None:
    """What says whether an event's ticket types share one stock (`ticket_stock_control`, `total_stock_available`):
    the list's row when it carries the flag, else the full event, as get_event reads it (openapi.yaml calls the event
    lists "a summary packet, call individual events for full details"); None when that cannot be read."""
    if "ticket_stock_control" in row:
        return row
    try:
        full = await deps.client.event(uid)
    except SheepError:
        return None
    return full if isinstance(full, dict) else None


SUMMARY_FREE = (
    "Free places of {n} event(s) are the sum of their ticket types' available places: sheepCRM's event list (a "
    "summary packet) does not say whether their stock is shared (ticket_stock_control) and their full event could "
    "not be read, so get_event's figure may be lower."
)


async def free_of(
    uid: str, row: dict[str, Any], deps: Deps
) -> tuple[list[dict[str, Any]] | None, int | None, dict[str, Any] | None]:
    """An event's free places as its list row and tickets give them: its ticket types (None: they could not be read,
    so free places are unknown), the free places (free_places over what says whether the stock is shared: stock_of),
    and what said so (None: neither the row nor the full event could be read, so the figure is the ticket types' sum,
    which may overstate a shared stock: SUMMARY_FREE)."""
    try:
        tickets = listed(await deps.client.event_tickets(uid), "the event's tickets", "available_tickets")
    except SheepError:  # not allowed, or an answer that could not be read: free places stay unknown
        return None, None, None
    basis = await stock_of(uid, row, deps)
    return tickets, free_places(basis if basis is not None else row, tickets), basis


async def _free(event: ListedEvent, raw: dict[str, Any], deps: Deps, unsure: list[str]) -> None:
    tickets, event.free, basis = await free_of(event.uid, raw, deps)
    if tickets is not None and basis is None and event.free is not None:
        unsure.append(event.uid)


@dataclass
class PersonEvent:
    """An event in a person's life: the sessions they hold themselves, the guest sessions that name them (as the guest
    or as the one who brought the guest: GUEST_REFS), and whether an order of theirs names it (orders are keyed by
    buyer)."""

    event: dict[str, Any]
    own: list[Attendee]
    guest_sessions: list[Attendee]
    ordered: bool
    unsure: list[Attendee]  # sessions naming them whose `guest` is absent or unreadable: unknown whether a guest
    unread: bool = False  # some sessions of the event name no readable person or guest: theirs may be among them


SCAN = 60  # events per answer whose attendance is read for sessions that no order of the person shows


async def person_events(
    person: RecordUri, deps: Deps, states: tuple[str, ...], missing: str,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[list[PersonEvent], str | None]:
    """The events a person ordered (openapi.yaml getEventOrdersForContact; orders are keyed by the buyer) or holds
    a session at (their own, or a guest session naming them), listed under one of `states` ('all': every one) and
    passing `keep`. Orders alone would miss an attendee booked by someone else and every guest, so the attendance of the
    listed events is read too (at most SCAN besides the ordered ones; sheepCRM's person session endpoints document
    no body). Returns the events and a note when the answer may be incomplete."""
    notes = []
    try:
        data = await deps.client.person_orders(person.uid)
    except PermissionDenied:  # this key may not read orders: the bookings come from attendance alone
        data = {"orders": []}
        notes.append("This person's orders could not be read (403: this API key may not read them), so the bookings "
                     "come from the events' attendance only: events bought for others are not shown.")
    except NotFoundError:  # openapi.yaml lists 200/400/401 here: whether the person exists, their record says
        await or_refuse(_person_exists(person, deps), missing)
        data = {"orders": []}
        notes.append("This person's orders could not be read (HTTP 404, which sheepCRM's documents do not list for "
                     "them; the contact exists), so the bookings come from the events' attendance only: events "
                     "bought for others are not shown.")
    rows = listed(data, "the person's event orders", "orders")
    orders = {b.uid: text(o.get("booking_display")) for o in rows if (b := _booking_uri(o, deps))}
    if unparsed := sum(1 for o in rows if not _booking_uri(o, deps)):
        notes.append(f"{unparsed} of this person's orders give no event that could be read (`booking_uri`): their "
                     "events are found only through attendance, so this list may be incomplete.")
    events: dict[str, dict[str, Any]] = {}
    complete = True
    for state in states:
        found, done = await fetch_pages(functools.partial(_events_page, deps, state), f"the {state} events", "bookings")
        complete = complete and done
        for e in found:
            if (uid := text(e.get("uid"))) and text(e.get("record_state")) != "deleted":
                events.setdefault(uid, e)
    if "all" not in states:
        orders = {uid: title for uid, title in orders.items() if uid in events}
    if keep is not None:
        orders = {uid: title for uid, title in orders.items() if uid not in events or keep(events[uid])}
    others = sorted(
        (uid for uid, e in events.items() if uid not in orders and (keep is None or keep(e))),
        key=lambda uid: abs((day(text(events[uid].get("start_date")) or text(events[uid].get("start_datetime")))
                             or today()).toordinal() - today().toordinal()),
    )
    scanned, skipped = [*orders, *others[:SCAN]], len(others) - SCAN
    out: dict[str, PersonEvent] = {}
    failed: list[str] = []
    unreadable: list[str] = []
    me = str(person)

    async def one(uid: str) -> None:
        try:
            found = await deps.client.attendance(uid)
            people, _ = sessions(found)
        except SheepError:  # no answer, or one that could not be read: said, never "not there"
            failed.append(uid)
            return
        booking = found.get("booking") if isinstance(found, dict) else None
        event = {
            "uid": uid, "display_value": orders.get(uid), **events.get(uid, {}),
            **(booking if isinstance(booking, dict) else {}),
        }
        own = [a for a in people if a.person_uri == me and a.guest is False]
        # whose contact a guest session's person_ref and guest_ref are is not documented (GUEST_REFS): one naming
        # this person in either is theirs, as the guest or as the one who brought them, under both readings
        guests = [a for a in people if a.guest and me in (a.person_uri, a.guest_uri)]
        unsure = [a for a in people if a.guest is None and me in (a.person_uri, a.guest_uri)]
        unread = any(a._unread for a in people)  # sessions naming nobody readable: this person may hold them
        if unread:
            unreadable.append(uid)
        if own or guests or unsure or uid in orders:
            out[uid] = PersonEvent(event, own, guests, uid in orders, unsure, unread)

    async with anyio.create_task_group() as tg:
        for uid in scanned:
            tg.start_soon(one, uid)
    if skipped > 0:
        notes.append(
            f"Read the attendance of {len(scanned)} events; {skipped} more events were not read, where this person "
            "may attend as a guest or booked by someone else: narrow with state or dates."
        )
    if not complete:
        notes.append(f"sheepCRM's event list was cut after {len(events)} events (it gives no total).")
    if failed:
        notes.append(f"The attendance of {len(failed)} event(s) could not be read, so this list may be incomplete.")
    if unreadable:
        notes.append(
            f"At {len(unreadable)} event(s) some sessions do not give their person or guest as a uri (person_ref, "
            "guest_ref absent or of another shape): whether this person holds them is unknown, so this list may be "
            "incomplete."
        )
    found_events = [out[u] for u in scanned if u in out and text(out[u].event.get("record_state")) != "deleted"]
    return found_events, " ".join(notes) or None


async def _person_exists(person: RecordUri, deps: Deps) -> None:
    """Returns when the person's record reads; a 404 that the same key also gets for the bucket is not "no such
    person" (sheepCRM's v1 answers 404 to credentials it refuses): that raises UpstreamError."""
    try:
        await deps.client.record(person)
    except NotFoundError:
        await v1_none_found(deps.client, f"the contact {person}")
        raise


def person_status(found: PersonEvent) -> str:
    """The person's part in an event in a few words: their own statuses, as a guest, or only ordered."""
    parts = sorted({a.status for a in found.own})
    parts += [f"guest session: {s}" for s in sorted({a.status for a in found.guest_sessions})]
    parts += [f"unknown whether guest: {s}" for s in sorted({a.status for a in found.unsure})]
    if found.unread:  # some sessions name nobody readable: theirs may be among them, never "for others"
        return "/".join([*parts, "other sessions could not be read"]) if parts else (
            "ordered; sessions could not be read")
    return "/".join(parts) or "ordered for others"


async def _events_page(deps: Deps, state: str, page: int, size: int) -> Any:
    return await deps.client.events(state, page, size)


UPCOMING = ("running", "future")  # sheepCRM's "current" is -14 to +90 days, so it holds events that have ended


def state_lists(state: str) -> tuple[str, ...]:
    """The sheepCRM state lists behind a state of list_events or my_bookings: upcoming = running + future."""
    return UPCOMING if state == "upcoming" else (state,)


def _in_range(start: date | None, end: date | None, e: dict[str, Any]) -> bool:
    """An event dict inside list_events' from_date/to_date (an unreadable date keeps it)."""
    b = brief(e)
    if start and (d := day(b.end or b.start)) is not None and d < start:
        return False
    return not (end and (d := day(b.start)) is not None and d > end)


def _booking_uri(order: dict[str, Any], deps: Deps) -> Any:
    value = ref(order.get("booking_uri"))
    try:
        return parse_uri(value or "", deps.client.bucket, BOOKING)
    except ValueError:
        return None


async def list_events(req: ListEventsInput, deps: Deps) -> ListEventsOutput:
    statuses: dict[str, str] = {}
    hosts: dict[str, str | None] = {}
    cut = None
    if req.person:
        state = req.state or "all"
        uri = parse_uri(req.person, deps.client.bucket, ("person",))
        missing = f"No person {uri}; find people with search_contacts."
        booked, cut = await person_events(uri, deps, state_lists(state), missing, keep=functools.partial(
            _in_range, req.from_date, req.to_date))
        found = [b.event for b in booked]
        for b in booked:
            statuses[str(b.event["uid"])] = person_status(b)
            if b.guest_sessions and not b.own:  # the other contact the guest session names
                first = b.guest_sessions[0]
                hosts[str(b.event["uid"])] = first.guest_uri if first.person_uri == str(uri) else first.person_uri
    else:
        state = req.state or "upcoming"
        found, complete = [], True
        for one in state_lists(state):
            part, done = await fetch_pages(functools.partial(_events_page, deps, one), f"the {one} events", "bookings")
            found, complete = found + part, complete and done
        if not complete:
            cut = f"Stopped after {len(found)} events (sheepCRM gives no total); narrow the state or dates."
    raw = {text(e.get("uid")) or "": e for e in found}
    events = [ListedEvent(**brief(e).model_dump()) for e in found if text(e.get("record_state")) != "deleted"]
    for e in events:
        e.uri = e.uri or f"/{deps.client.bucket}/booking/{e.uid}/"
        e.person_status = statuses.get(e.uid)
        e.guest_session_with = hosts.get(e.uid)
    if req.query:
        words = req.query.lower().split()
        events = [e for e in events if all(w in f"{e.title} {e.location or ''}".lower() for w in words)]
    if req.from_date:
        events = [e for e in events if (d := day(e.end or e.start)) is None or d >= req.from_date]
    if req.to_date:
        events = [e for e in events if (d := day(e.start)) is None or d <= req.to_date]
    events.sort(key=lambda e: e.start or "")
    items, envelope = list_page(
        events, req.limit, req.cursor, f"events:{state}:{req.query}:{req.from_date}:{req.to_date}:{req.person}",
        f"No {state} events match" + (
            (" for this person (state='all' shows every one)." if state != "all" else " for this person.")
            if req.person else _widen(state, req)),
        cut=cut,
    )
    envelope = with_note(envelope, unmarked(raw.get(e.uid, {}) for e in events))
    if any("guest session" in (e.person_status or "") for e in items):
        envelope = with_note(envelope, GUEST_SESSION)
    if not req.person:
        unsure: list[str] = []
        async with anyio.create_task_group() as tg:
            for e in items:
                tg.start_soon(_free, e, raw.get(e.uid, {}), deps, unsure)
        if unsure:
            envelope = with_note(envelope, SUMMARY_FREE.format(n=len(unsure)))
    return ListEventsOutput(events=items, as_of=as_of(), **envelope)


def _widen(state: str, req: ListEventsInput) -> str:
    """The end of "No ... events match", with only the widenings the caller has not made already."""
    tries = [*(["state='all'"] if state != "all" else []), *(["other dates"] if req.from_date or req.to_date else []),
             *(["fewer words"] if req.query else [])]
    return f"; try {', '.join(tries)}." if tries else "."


# ---- get_event --------------------------------------------------------------------------


class GetEventInput(Input):
    uid: EventUid
    detail: Detail = "concise"


class TicketType(Output):
    """A ticket type as sheepCRM's EventAvailableTickets gives it (openapi.yaml): its `total`, `allocated`,
    `reserved` and `available` are numbers the documents do not define, so they are shown under their own names,
    with no sum asserted between them."""

    name: str
    uri: str | None = None
    price: str | None = None
    member_only: bool | None = None
    total: int | None = Field(None, description="sheepCRM's `total`: undocumented, not capacity.")
    booked: int | None = Field(None, description=f"Sessions of this ticket: {BOOKED_MEANS}.")
    allocated: int | None = None
    reserved: int | None = None
    free: int | None = Field(None, description="sheepCRM's `available`.")


class Event(EventBrief):
    capacity: int | None = None
    tickets: list[TicketType] | None = Field(None, description="Absent: not read (note says why).")
    tickets_free: int | None = Field(None, description=f"Free places: {FREE_BASIS}.")
    attendance: dict[str, int] | None = Field(None, description="Sessions by status. Absent: not read (see note).")
    booked: int | None = Field(None, description=BOOKED_MEANS, json_schema_extra=SHOWN)
    description: str | None = None
    address: str | None = None
    website: str | None = None
    note: str | None = Field(None, description="What this key could not read, if anything.")


def _tickets(data: Any, notes: list[str]) -> list[dict[str, Any]] | None:
    """The ticket types of an answer this key could read; None (not read) for one refused or that cannot be read,
    said in the notes, never an empty list."""
    if data is None:
        return None
    try:
        return listed(data, "the event's tickets", "available_tickets")
    except UpstreamError as exc:
        notes.append(str(exc))
        return None


async def get_event(req: GetEventInput, deps: Deps) -> Event:
    uid = uid_in(req.uid, deps.client.bucket, BOOKING)
    e, reduced = await _event_or_refuse(uid, deps)
    notes = [reduced] if reduced else []
    tickets_data = await _optional(
        deps.client.event_tickets(uid),
        "sheepCRM refused this key the event's ticket types: tickets and free places are not shown (unknown).", notes)
    attendance = await _optional(
        deps.client.attendance(uid),
        "sheepCRM refused this key the event's attendance: sessions and who is booked are not shown (unknown, not "
        "nobody).", notes)
    read = _tickets(tickets_data, notes)
    types = read or []
    tickets = [
        TicketType(
            name=text(t.get("name")) or "(no name)",
            uri=text(t.get("uri")),
            price=text(t.get("amount")),
            member_only=t.get("member_only") if isinstance(t.get("member_only"), bool) else None,
            total=places(t.get("total")),
            allocated=places(t.get("allocated")),
            reserved=places(t.get("reserved")),
            free=places(t.get("available")),
        )
        for t in types
    ]
    people = sessions(attendance)[0] if attendance is not None else []
    counts = Counter(s.status for s in people)
    odd = unknown_statuses(people)
    if odd:
        notes.append(odd)
    exact = attendance is not None and not odd  # booked by the one definition (never invitations), when knowable
    # A session names its ticket type by ticket_ref, the type's uri (openapi.yaml); two types may share a name.
    held = [(s._ticket_ref or "").rstrip("/") for s in people if s.status in BOOKED]
    if exact and all(held) and all(text(t.get("uri")) for t in types):
        for t, raw in zip(tickets, types, strict=True):
            t.booked = held.count((text(raw.get("uri")) or "").rstrip("/"))
    elif exact and tickets:
        notes.append("Some sessions or ticket types do not name their ticket type's uri (ticket_ref): booked per "
                     "ticket type unknown.")
    free = free_places(e, types)  # as list_events and upcoming_events count them
    if any(t.free is None for t in tickets):  # a sum over some ticket types would pass for the event's free places
        notes.append("Some ticket types do not say how many places are free (available): free places unknown.")
    if shared_stock(e) is not None:
        notes.append("Free places are the event's total_stock_available: its ticket types share one stock "
                     "(ticket_stock_control), so their own available places are not added up.")
    elif shares_stock(e):  # the sum of the ticket types would overstate the one stock they share
        notes.append("The event's ticket types share one stock (ticket_stock_control), but its figure "
                     "(total_stock_available) could not be read: free places unknown.")
    elif free is not None and len(tickets) > 1:
        notes.append("Free places are the sum of the ticket types' available places: sheepCRM does not say their "
                     "stock is shared (ticket_stock_control), and if it is the sum overstates them.")
    event = Event(
        **(brief(e).model_dump() | {"uri": text(e.get("uri")) or f"/{deps.client.bucket}/booking/{uid}/"}),
        capacity=places(e.get("capacity")),
        tickets=tickets if read is not None else None,
        tickets_free=free,
        attendance=dict(sorted(counts.items())) if attendance is not None else None,
        booked=sum(n for status, n in counts.items() if status in BOOKED) if exact else None,
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
    status: Annotated[
        Literal["invited", "accepted", "declined", "attended", "no-show", "booked"] | None,
        Field(description=f"booked: {BOOKED_MEANS}."),
    ] = None
    name: Annotated[str | None, Field(max_length=200, description="Name part, email or uri.")] = None


class Attendee(Output):
    session_uid: str | None = None
    person_uri: str | None = Field(None, description="Attendee; guest session: guest or booker.",
                                   json_schema_extra=SHOWN)
    name: str
    email: str | None = None
    status: str
    ticket: str | None = None
    guest: bool | None = Field(None, description="Absent: unknown.", json_schema_extra=SHOWN)
    guest_uri: str | None = Field(None, description="sheepCRM's guest_ref: the guest's or the booker's contact.")
    _ticket_ref: str | None = PrivateAttr(None)  # the ticket type's uri (openapi.yaml: ticket_ref); not shown
    _unread: tuple[str, ...] = PrivateAttr(())  # the keys (person_ref, guest_ref) that could not be read; not shown


class ListAttendeesOutput(ListOutput):
    event: str
    counts: dict[str, int] = Field(description="All sessions of the event by status (before filters).")
    booked: int | None = Field(None, description=f"{BOOKED_MEANS}. Absent: unknown.", json_schema_extra=SHOWN)
    attendees: list[Attendee]


def _uri_at(session: dict[str, Any], key: str) -> tuple[str | None, bool]:
    """A session's person_ref or guest_ref (openapi.yaml: a uri; an expanded uri {ref} tolerated; null: none) and
    whether it could be read: a key that is absent, or of another shape (a list, a number), is not read, never
    taken as "none" or as its first entry."""
    if key not in session:
        return None, False
    value = session[key]
    if value is None:
        return None, True
    if isinstance(value, dict):
        value = value.get("ref")
    return (value.strip(), True) if isinstance(value, str) and value.strip().startswith("/") else (None, False)


def unread_people(people: list[Attendee]) -> str | None:
    """What to say of sessions whose person (person_ref) or guest (guest_ref) could not be read: who they are is
    unknown, so they are attributed to nobody, never to the wrong person."""
    booker = sum("person_ref" in a._unread for a in people)
    guest = sum("guest_ref" in a._unread for a in people)
    parts = [
        f"the person (person_ref) of {booker} session(s)" if booker else None,
        f"the guest's own contact (guest_ref) of {guest} guest session(s)" if guest else None,
    ]
    said = " and ".join(p for p in parts if p)
    return (f"sheepCRM's answer did not give {said} as a uri (key absent or another shape): who they are could not "
            "be read, so they are shown without it and counted for nobody.") if said else None


def sessions(data: Any) -> tuple[list[Attendee], int]:
    """Every attendance session (several per person are possible), guests included; deleted ones left out.
    Returns (sessions, how many deleted ones were left out)."""
    out, deleted = [], 0
    for a in listed(data, "the event's attendance", "sessions"):
        if text(a.get("record_state")) == "deleted":
            deleted += 1
            continue
        guest = a.get("guest") if isinstance(a.get("guest"), bool) else None
        person, person_read = _uri_at(a, "person_ref")
        guest_uri, guest_read = _uri_at(a, "guest_ref")
        out.append(
            attendee := Attendee(
                session_uid=text(a.get("uid")),
                person_uri=person,
                name=text(a.get("attendee_name")) or text(a.get("display_value")) or "(no name)",
                email=text(a.get("attendee_email")),
                status=status_word(a.get("status")),
                ticket=text(a.get("ticket")),
                guest=guest,
                guest_uri=guest_uri,
            )
        )
        attendee._ticket_ref = ref(a.get("ticket_ref"))
        # an absent guest_ref is missing only from a guest (other sessions need none); a key of another shape is
        # never read, guest or not
        attendee._unread = (*(() if person_read else ("person_ref",)),
                            *(() if guest_read or ("guest_ref" not in a and guest is not True) else ("guest_ref",)))
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


def _matches(a: Attendee, wanted: str) -> bool:
    """A name part; an email (the session's attendee_email); or a person uri (booker or guest)."""
    w = wanted.lower()
    if "@" in w:
        return (a.email or "").lower() == w
    if w.startswith("/"):
        return w.rstrip("/") in {(a.person_uri or "").lower().rstrip("/"), (a.guest_uri or "").lower().rstrip("/")}
    return w in a.name.lower()


async def list_attendees(req: ListAttendeesInput, deps: Deps) -> ListAttendeesOutput:
    uid = uid_in(req.uid, deps.client.bucket, BOOKING)
    e, reduced = await _event_or_refuse(uid, deps)
    people, deleted = sessions(await deps.client.attendance(uid))
    counts = dict(sorted(Counter(p.status for p in people).items()))
    odd = unknown_statuses(people)
    unread = unread_people(people)
    notes = [*([reduced] if reduced else []), *session_notes(people, deleted), *([odd] if odd else []),
             *([unread] if unread else []), *([GUEST_REFS] if any(p.guest for p in people) else [])]
    booked = None if odd else sum(1 for p in people if p.status in BOOKED)
    if req.status == "booked":
        people = [p for p in people if p.status in BOOKED]
    elif req.status:
        people = [p for p in people if p.status == req.status]
    wanted = req.name
    no_email = sum(1 for p in people if not p.email)  # attendee_email is optional (openapi.yaml)
    if wanted:
        people = [p for p in people if _matches(p, wanted)]
    empty = "No attendees match these filters."
    if wanted and "@" in wanted and no_email:
        empty = (
            f"No session that shows an email has {wanted}, but {no_email} session(s) of this event carry no "
            "attendee_email (optional in sheepCRM's documents): whether one of them is theirs could not be checked. "
            "Find them with search_contacts(email=...) and pass their uri as name."
        )
    elif wanted and "@" in wanted:
        empty = (
            f"No session of this event has the email {wanted}: not booked under it. They may have booked under "
            "another email: find them with search_contacts(email=...) and pass their uri as name."
        )
    items, envelope = list_page(
        people, req.limit, req.cursor, f"attendees:{uid}:{req.status}:{req.name}", empty
    )
    envelope["note"] = " ".join(filter(None, [*notes, envelope["note"]])) or None
    return ListAttendeesOutput(
        event=text(e.get("display_value")) or text(e.get("title")) or uid, counts=counts, booked=booked,
        attendees=items,
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


UNREAD_KEY = "(sessions whose person could not be read)"
GUEST_KEY = "(people named only in a guest session)"


async def set_attendance(req: SetAttendanceInput, deps: WriteDeps) -> WritePlan:
    bucket = deps.client.bucket
    people = [parse_uri(u, bucket, ("person",)) for u in req.person_uris]
    uid = uid_in(req.uid, bucket, BOOKING)
    e, _ = await _event_or_refuse(uid, deps)
    named = text(e.get("display_value")) or text(e.get("title"))
    title = visible(named or uid, NAME_CAP)

    wanted = {str(p) for p in people}

    async def read() -> dict[str, Any]:
        # Only the attendees being changed: the gate fingerprints this state, and a colleague marking
        # someone else at the same event must not abort this change as a conflict. A person may hold
        # several sessions (the PUT is keyed by person: it may set any or all of them); guest sessions are not
        # set through the booker.
        found, _ = sessions(await deps.client.attendance(uid, fresh=True))
        state: dict[str, Any] = {}
        for a in found:
            if a.person_uri in wanted and not a.guest:
                entry = state.setdefault(a.person_uri, {"name": a.name, "statuses": []})
                entry["statuses"].append(a.status)
            elif a.guest and (named := [u for u in (a.person_uri, a.guest_uri) if u in wanted]):
                state.setdefault(GUEST_KEY, []).extend(named)  # as the guest or the booker (GUEST_REFS): not set here
        if unread := sum("person_ref" in a._unread for a in found):
            state[UNREAD_KEY] = unread  # sessions whose person could not be read: a person not found may hold one
        return state

    mixed: set[tuple[str, str]] = set()  # (person, before) when their sessions had different statuses

    def diff(state: dict[str, Any]) -> list[Change]:
        missing = [str(p) for p in people if str(p) not in state]
        if missing and state.get(UNREAD_KEY):
            raise Refusal(
                f"Could not tell whether {', '.join(missing)} are on the attendance list of {title}: "
                f"{state[UNREAD_KEY]} session(s) there do not give their person as a uri (person_ref absent or of "
                "another shape). Nothing was changed; mark them in sheepCRM."
            )
        guests = [p for p in missing if p in state.get(GUEST_KEY, [])]
        if guests:
            raise Refusal(
                f"Named on the attendance list of {title} only in a guest session (as the guest or as the one who "
                "booked it: sheepCRM's documents do not say which), not in a session of their own: "
                f"{', '.join(guests)}. set_attendance sets a person's own sessions; nothing was changed: set a guest's "
                "attendance in sheepCRM."
            )
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
            several = f", {len(statuses)} sessions: sheepCRM may set all of them" if len(statuses) > 1 else ""
            label = record_label(p.uid, state[str(p)]["name"]) + several
            before = statuses[0] if len(set(statuses)) == 1 else " / ".join(statuses)
            if len(set(statuses)) > 1:
                mixed.add((str(p), before))
            changes.append(Change(str(p), label, before, req.status))
        return changes

    async def apply(changes: list[Change], state: Any) -> None:
        for change in changes:
            said = await deps.writes.client.set_attendance(uid, parse_uri(change.key, bucket, ("person",)), req.status)
            # openapi.yaml UpdatedEventAttendance: attendance[] lists the sessions the PUT set
            set_ = said.get("attendance") if isinstance(said, dict) else None
            held = len(state[change.key]["statuses"]) if change.key in state else 0
            if not isinstance(set_, list):
                plan.reported.append(f"{state[change.key]['name']}: sheepCRM's answer does not say which sessions "
                                     "it set")
            elif len(set_) != held:
                plan.reported.append(f"{state[change.key]['name']}: sheepCRM says it set {len(set_)} of their "
                                     f"{held} sessions")

    def undo(applied: list[Change]) -> dict[str, Any] | None:
        plan.no_undo = None
        before = {c.before for c in applied}
        if len(before) == 1 and next(iter(before)) in STATUSES:
            return {"uid": uid, "person_uris": [c.key for c in applied], "status": before.pop()}
        plan.no_undo = _no_single_undo(uid, applied, mixed)  # the gate says it in the result when undo is None
        return None

    # The event's uid and the status are never cut (the gate cuts a summary at 2 * NAME_CAP); its name fills the rest.
    head, tail = f"Set {len(people)} attendee(s) of event", f"to '{req.status}'"
    room = 2 * NAME_CAP - 8 - len(f"{head} {uid} \"\" {tail}")
    plan = WritePlan(
        summary=f"{head} {record_label(uid, visible(named, max(12, room)) if named else None)} {tail}",
        read=read,
        diff=diff,
        apply=apply,
        undo=undo,
        one_write_per_change=True,
    )
    return plan


def _no_single_undo(uid: str, applied: list[Change], several: set[tuple[str, str]]) -> str:
    """How to undo a batch whose attendees had different statuses: one set_attendance call per old status.
    A person whose several sessions had different statuses (`several`), or whose status set_attendance cannot set,
    cannot be put back by set_attendance (it sets every session of a person to one status), so they are named
    apart."""
    by_status: dict[str, list[str]] = {}
    mixed: list[str] = []
    for c in applied:
        if c.before in STATUSES:
            by_status.setdefault(c.before, []).append(c.key)
        else:
            mixed.append(f"{c.key} ({c.before})")
    calls = [
        f"set_attendance(uid={json.dumps(uid)}, person_uris={json.dumps(keys)}, status={json.dumps(status)})"
        for status, keys in by_status.items()
    ]
    if len(applied) == 1:  # one person: their sessions differed, or their status is not one set_attendance sets
        c = applied[0]
        had = "sessions with different statuses" if (c.key, c.before) in several else "a status it cannot set"
        return (f"No single undo: {c.key} had {had} before ({c.before}), and set_attendance sets every session of a "
                "person to one status: restore them in sheepCRM.")
    odd = sum(1 for c in applied if c.before not in STATUSES)
    olds = ", ".join([*by_status, *([f"mixed or unknown for {odd}"] if odd else [])])
    text = f"No single undo: these attendees had different statuses before ({olds})."
    if calls:
        text += " To undo, call set_attendance once per old status: " + "; ".join(calls) + "."
    if mixed:
        text += (
            " set_attendance cannot put these back (it sets every session of a person to one status); "
            "restore them in sheepCRM: " + ", ".join(mixed) + "."
        )
    return text


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="list_events",
        toolset="events",
        description="Events with free places; filter by state, words, dates or person (their events, status).",
        input=ListEventsInput,
        output=ListEventsOutput,
        handler=list_events,
        about=(
            "events with uri and free places; default upcoming (running + future), or a state (current, future, "
            "running, past, draft, all), words, a date window (`from_date`, `to_date`), or a `person`: their "
            "events with their status at each"
        ),
    ),
    ReadTool(
        name="get_event",
        toolset="events",
        description="One event: dates, tickets (booked, reserved, free), sessions by status. full: description, "
        "address.",
        input=GetEventInput,
        output=Event,
        handler=get_event,
        about=(
            "dates, ticket types (booked, reserved, free), attendance counts by status; for a key without event "
            "permissions, the reduced event summary and a note saying so"
        ),
    ),
    ReadTool(
        name="list_attendees",
        toolset="events",
        description="An event's sessions (status, ticket, guest), counts by status; filter by status or name "
        "(email, uri).",
        input=ListAttendeesInput,
        output=ListAttendeesOutput,
        handler=list_attendees,
        about=(
            "every attendance session (guests included, deleted ones left out and counted) with status and "
            "ticket, counts by status, a note on people with several sessions; filter by status, name, email or "
            "person uri"
        ),
    ),
    WriteTool(
        name="set_attendance",
        toolset="events",
        description="Set 1-50 attendees of one event to a status. A person approves the batch; returns each "
        "outcome and undo.",
        input=SetAttendanceInput,
        handler=set_attendance,
        about="1-50 attendees of one event → invited, accepted, declined, attended or no-show",
        destructive=False,
        idempotent=True,
    ),
]
