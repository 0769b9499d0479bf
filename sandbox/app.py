"""The sandbox ASGI app: sheepCRM-compatible v1 and v2 endpoints over a Store.

`create_app(store, key=..., bucket=..., faults=...)` returns a Starlette app whose
`state.request_log` lists every request received (see LoggedRequest)."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sheepcrm_mcp.sandbox.drift import DriftRule, json_rewriting, refusal, relocating, rewriting
from sheepcrm_mcp.sandbox.drift import parse as parse_drift
from sheepcrm_mcp.sandbox.faults import FaultPlan, FaultRule
from sheepcrm_mcp.sandbox.records import (
    ATTENDANCE_STATUSES,
    CONTACT_TYPES,
    EVENT_STATES,
    LIST_FIELDS,
    fmt_dt,
    now_utc,
    parse_dt,
    primary,
)
from sheepcrm_mcp.sandbox.store import Invalid, NotFound, Record, Store
from sheepcrm_mcp.sandbox.variants import PAGE_CAP, active, check, extra_event_keys

UID = re.compile(r"^[A-Za-z0-9]{1,64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_PAGE_SIZE = 1000
AUTH_PASSWORD = "sandbox-password"  # noqa: S105 - the sandbox's documented demo password for POST /api/v1/auth/
UNAUTHENTICATED = ("/api/v1/ping/", "/api/v1/auth/")


@dataclass
class LoggedRequest:
    """One request as received: raw path (percent-encoding kept), query string, final status."""

    method: str
    path: str
    raw_path: str
    query: str
    status: int | None = None  # None while in flight or when no response was started
    fault: str | None = None  # the injected fault, if any
    application: str | None = None  # the APPLICATION header (docs-dev: <agency>/<app>/<version>), if sent


def error(status: int, message: str, description: str | None = None, kind: str | None = None) -> JSONResponse:
    """The spec's `error` schema: {"error", "description", "type"}."""
    body = {"error": message, "description": description or message, "type": kind or _ERROR_TYPES.get(status, "error")}
    return JSONResponse(body, status_code=status)


_ERROR_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
    504: "timeout",
}


def compact(value: dict[str, Any]) -> dict[str, Any]:
    """Drop None-valued keys, nested too (the spec's string fields are not nullable)."""
    return {k: _compact(v) for k, v in value.items() if v is not None}


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return compact(value)
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


# -- parameters ----------------------------------------------------------------


def int_param(request: Request, name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{name} must be an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise Invalid(f"{name} must be between {minimum} and {maximum}" if maximum else f"{name} must be >= {minimum}")
    return value


def bool_param(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes", "y"):
        return True
    if raw.lower() in ("false", "0", "no", "n"):
        return False
    raise Invalid(f"{name} must be true or false")


def required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise Invalid(f"{name} is required")
    return value


def paging(request: Request, default_size: int) -> tuple[int, int]:
    page = int_param(request, "page", 1)
    size = int_param(request, "page_size", default_size, maximum=MAX_PAGE_SIZE)
    return page, min(size, PAGE_CAP) if active(request, "page-cap") else size


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def path_uid(request: Request) -> str:
    uid = str(request.path_params["uid"])
    if not UID.match(uid):
        raise NotFound(f"no record with uid {uid}")
    return uid


# -- shapes ----------------------------------------------------------------------


def search_item(record: Record) -> dict[str, Any]:
    return compact(
        {
            "display_value": record.display_value,
            "id": record.uri,
            "primary_email": primary(record.data.get("email")),
            "primary_telephone": primary(record.data.get("telephone")),
            "resource": record.type,
        }
    )


def event_json(store: Store, event: Record, *, extra: bool = False) -> dict[str, Any]:
    tickets = tickets_json(store, event)
    data = dict(event.data, is_sold_out=bool(tickets) and all(t["available"] <= 0 for t in tickets))
    return compact(extra_event_keys(data, tickets) if extra else data)


def event_of(request: Request, event: Record) -> dict[str, Any]:
    return event_json(store_of(request), event, extra=active(request, "extra-keys"))


def tickets_json(store: Store, event: Record) -> list[dict[str, Any]]:
    taken: dict[str, int] = {}
    for session in store.attendance(event.uri):
        if session.data.get("status") != "declined" and session.data.get("record_state") != "deleted":
            taken[session.data["ticket_ref"]] = taken.get(session.data["ticket_ref"], 0) + 1
    out = []
    for ticket in store.ticket_types(event.uri):
        data = {k: v for k, v in ticket.data.items() if k not in ("uid", "booking")}
        data["allocated"] = taken.get(ticket.uri, 0)
        data["available"] = max(0, data["total"] - data["allocated"] - data["reserved"])
        out.append(compact(data))
    return out


def session_json(session: Record) -> dict[str, Any]:
    # nulls kept (guest_ref, person_ref); `buyer` is the sandbox's own note of who paid (variant orders-by-buyer),
    # `booker` of who booked a guest session whose refs say it the other way round (variant guest-ref-booker)
    return {k: v for k, v in session.data.items() if k not in ("booking_ref", "buyer", "booker")}


def v1_record(record: Record) -> dict[str, Any]:
    return {
        "bucket": record.bucket,
        "data": record.data,
        "display_value": record.display_value,
        "links": [],
        "meta": {"created": record.created, "last_updated": record.last_updated, "state": record.state},
        "resource": record.type,
        "uri": record.uri,
    }


# -- v2: search ------------------------------------------------------------------


SEARCH_LIMIT = 50  # openapi.yaml gives global search no paging and no total; the sandbox sends its first 50 hits


async def search_global(request: Request) -> Response:
    q = required(request, "q")
    found, _ = store_of(request).search_contacts(q, offset=0, limit=SEARCH_LIMIT)
    return JSONResponse({"results": [search_item(r) for r in found]})


PERSON_FILTERS = ("title", "first_name", "last_name", "email", "date_of_birth", "postal_code")
PERSON_MATCHES = (
    {"email"}, {"first_name", "last_name", "date_of_birth"}, {"first_name", "last_name", "postal_code"},
    {"title", "last_name", "postal_code"},
)


async def search_person(request: Request) -> Response:
    filters = {k: request.query_params.get(k, "").strip() or None for k in PERSON_FILTERS}
    if not any(filters.values()):
        raise Invalid(f"give at least one of {', '.join(PERSON_FILTERS)}")
    one = active(request, "person-record")  # EVIDENCE.md: one record; names and postcode match case
    given = {k for k, v in filters.items() if v}
    # EVIDENCE.md: it matches only on email; first+last+date of birth; first+last+postcode; title+last+postcode.
    matchable = any(m <= given for m in PERSON_MATCHES)
    found = store_of(request).find_people(**filters, case_sensitive=one) if matchable else []
    if not found:  # "No person matching those details was found" (the find/person call it is identical to)
        if active(request, "bare-404"):  # openapi.yaml: 404 "Not found", no body documented
            return Response(status_code=404)
        return error(404, "not found", "No person matching those details was found")
    if bool_param(request, "take_first_if_multiple"):
        found = found[:1]
    if active(request, "other-wrappers"):
        return JSONResponse({"people": [search_item(r) for r in found]})
    if not one:
        return JSONResponse({"results": [search_item(r) for r in found]})
    if len(found) > 1:  # one record is the answer, so several are a conflict unless take_first_if_multiple
        return error(409, "multiple people match those details",
                     f"{len(found)} people match; give more fields or take_first_if_multiple=true")
    # EVIDENCE.md: "the full person record is returned"; as a v1 listing gives one: `id` its uid, beside its uri
    return JSONResponse(v1_record(found[0]) | {"id": found[0].uid})


async def search_help(request: Request) -> Response:
    q = required(request, "q")
    limit = int_param(request, "limit", 10, maximum=50)
    include_text, include_html = bool_param(request, "include_text"), bool_param(request, "include_html")
    results = []
    for article in store_of(request).search_help(q, limit):  # EVIDENCE.md: {docs, q, results: [{link, title}]}
        item = {"link": article.data["link"], "title": article.data["title"]}
        if include_text:
            item["text"] = article.data["text"]
        if include_html:
            item["html"] = article.data["html"]
        results.append(item)
    if active(request, "other-wrappers"):
        return JSONResponse({"hits": results})
    return JSONResponse({"docs": HELP_DOCS, "q": q, "results": results})


HELP_DOCS = "https://help.sheepcrm.com"  # what `docs` holds is not shown; the sandbox sends the help site


# -- v2: contacts ------------------------------------------------------------------


def contact(request: Request, *, people_only: bool = False) -> Record:
    rtype = request.path_params["rtype"]
    if rtype not in (("person",) if people_only else CONTACT_TYPES):
        allowed = "a person" if people_only else "a person or organisation"
        raise Invalid(f"{rtype} is not a contact type: the uri must name {allowed}")
    return store_of(request).require(rtype, path_uid(request))


async def contact_summary(request: Request) -> Response:
    record = contact(request)
    d = record.data
    body = {
        "uri": record.uri,
        "uid": record.uid,
        "resource": record.type,
        "display_value": record.display_value,
        "formatted_name": d.get("formatted_name"),
        "title": d.get("title") or None,
        "first_name": d.get("first_name"),
        "last_name": d.get("last_name"),
        "name": d.get("name"),
        "primary_email": primary(d.get("email")),
        "primary_telephone": primary(d.get("telephone")),
        "locality": d.get("locality"),
        "postal_code": d.get("postal_code"),
        "tags": d.get("tags", []),
        "created": record.created,
        "last_updated": record.last_updated,
    }
    return JSONResponse(compact(body))


async def contact_communications(request: Request) -> Response:
    record = contact(request)
    d = record.data
    body = {
        "uri": record.uri,
        "email": d.get("email") or [],
        "primary_email": primary(d.get("email")),
        "telephone": d.get("telephone") or [],
        "primary_telephone": primary(d.get("telephone")),
        "address_lines": d.get("address_lines") or [],
        "locality": d.get("locality"),
        "region": d.get("region"),
        "postal_code": d.get("postal_code"),
        "country": d.get("country"),
        "website": d.get("website"),
        "comms_permission": d.get("comms_permission", []),
        "last_updated": record.last_updated,
    }
    return JSONResponse(body)


async def contact_personal(request: Request) -> Response:
    record = contact(request, people_only=True)
    keys = (
        "title",
        "first_name",
        "last_name",
        "formatted_name",
        "known_as",
        "date_of_birth",
        "gender",
        "job_title",
        "notes",
    )
    body = {"uri": record.uri, **{k: record.data.get(k) or None for k in keys}, "last_updated": record.last_updated}
    return JSONResponse(compact(body))


async def contact_memberships(request: Request) -> Response:
    record, store = contact(request), store_of(request)
    ui = {
        "can_create_member": True,
        "can_delete_member": False,
        "can_edit_member": True,
        "can_restore_member": False,
        "policy_name": "membership",
    }
    members = [dict(m.data, user_interface=ui) for m in store.memberships(record.uri)]  # nulls kept, as R shows
    return JSONResponse({"contact_uri": record.uri, "count": len(members), "memberships": members})


async def record_display(request: Request) -> Response:
    """openapi.yaml /api/v2/{bucket}/{resource_type}/{uid}/display, for records of this bucket. Users live in
    sheepCRM's own bucket (/sheepcrm/user/{uid}/), and nothing shows that a client bucket's path names them:
    only the variant user-display names them, in their own bucket's path."""
    store, rtype, uid = store_of(request), request.path_params["rtype"], path_uid(request)
    if request.path_params["bucket"] == store.bucket:
        record = store.get_record(rtype, uid)
    else:  # reached only under user-display (the middleware lets /api/v2/sheepcrm/user/.../display through)
        record = store.get(f"/sheepcrm/user/{uid}/") if rtype == "user" else None
    if record is None:
        raise NotFound(f"no {rtype} with uid {uid}")
    return JSONResponse({"display_value": record.display_value})


async def record_audit(request: Request) -> Response:
    store = store_of(request)
    record = store.require(request.path_params["rtype"], path_uid(request))
    limit = int_param(request, "limit", 250)
    since_days = int_param(request, "since_days", 180, minimum=0)
    entries = store.audit(record.uri, limit=limit, since_days=since_days)
    results = [
        {
            "date": e["date"],
            "message": e["message"],
            "uri": e["uri"],
            "user": e["user"],
            "revertable": False,
            "resource": e["uri"].split("/")[2],
            "clean_diff": e["clean_diff"],
        }
        for e in entries
    ]
    related = sorted({e["uri"] for e in entries if e["uri"] != record.uri})
    return JSONResponse({"results": results, "count": len(results), "uri": record.uri, "related_uris": related})


# -- v2: events --------------------------------------------------------------------


def event(request: Request) -> Record:
    return store_of(request).require("booking", path_uid(request))


async def events_by_state(request: Request) -> Response:
    state = request.path_params["state"]
    if state not in EVENT_STATES:
        raise Invalid(f"state must be one of {', '.join(EVENT_STATES)}")
    page, size = paging(request, 250)
    store = store_of(request)
    found = store.events(state)
    chunk = found[(page - 1) * size : page * size]
    return JSONResponse({"bookings": [event_of(request, e) for e in chunk]})


async def event_single(request: Request) -> Response:
    return JSONResponse(event_of(request, event(request)))


SUMMARY_FIELDS = (
    "uid",
    "uri",
    "title",
    "display_value",
    "formatted_title",
    "status",
    "cancelled",
    "capacity",
    "start_date",
    "start_time",
    "start_datetime",
    "end_date",
    "end_time",
    "end_datetime",
    "date_range",
    "location",
    "is_sold_out",
    "ticketed_event",
    "record_state",
)


async def event_summary(request: Request) -> Response:
    full = event_of(request, event(request))
    return JSONResponse({k: full[k] for k in SUMMARY_FIELDS if k in full})


async def event_tickets(request: Request) -> Response:
    return JSONResponse({"available_tickets": tickets_json(store_of(request), event(request))})


async def event_attendance(request: Request) -> Response:
    store, record = store_of(request), event(request)
    sessions = [session_json(s) for s in store.attendance(record.uri)]
    return JSONResponse({"booking": event_of(request, record), "booking_uri": record.uri, "sessions": sessions})


async def person_orders(request: Request) -> Response:
    """openapi.yaml getEventOrdersForContact: the events a person booked (sessions they hold, not deleted)."""
    store = store_of(request)
    person = store.require("person", path_uid(request))
    events = store.events_of(person.uri, by_buyer=active(request, "orders-by-buyer"))
    orders = [{"booking_display": e.display_value, "booking_uri": e.uri} for e in events]
    return JSONResponse({"contact_uri": person.uri, "orders": orders})


async def event_set_attendance(request: Request) -> Response:
    store, record = store_of(request), event(request)
    person_uri, status = required(request, "person_uri"), required(request, "status")
    if status not in ATTENDANCE_STATUSES:
        raise Invalid(f"status must be one of {', '.join(ATTENDANCE_STATUSES)}")
    if not re.fullmatch(rf"/{re.escape(store.bucket)}/person/[A-Za-z0-9]{{1,64}}/", person_uri):
        raise Invalid(f"person_uri must look like /{store.bucket}/person/<uid>/")
    updated = store.set_attendance(record.uri, person_uri, status, first_only=active(request, "one-session"))
    attendance = [
        {
            "attendance": compact(
                {
                    "attendee_email": s.data.get("attendee_email"),
                    "attendee_name": s.data.get("attendee_name"),
                    "booking_ref": {"display_value": record.display_value, "ref": record.uri},
                    "guest": s.data["guest"],
                    "legacy_uid": s.uid,
                    "person_ref": {"display_value": s.data.get("attendee_name"), "ref": person_uri},
                    "status": s.data["status"],
                    "ticket_ref": s.data.get("ticket_ref"),
                }
            ),
            "uri": s.uri,
        }
        for s in updated
    ]
    return JSONResponse(
        {"attendance": attendance, "booking_ref": record.uri, "person_ref": person_uri, "status": status}
    )


# -- v2: tasks ---------------------------------------------------------------------


def task_json(task: Record, *, cut_2024: bool = False) -> dict[str, Any]:
    """The 2024-12 cut's task fields plus the 2025-02 draft's names for the same values (due_date,
    allocated_to, allocated_to_display); uris are /{bucket}/journal/{uid}/ as the draft says.
    `cut_2024`: the 2024-12 names only (variant tasks-2024)."""
    d = task.data
    if cut_2024:
        return dict(d)
    # The draft's due_date is "null if due date < created date"; a task with no due date sends none.
    due = d.get("due_date") or d.get("date")
    try:
        early = due is not None and d.get("created") is not None and parse_dt(due) < parse_dt(d["created"])
    except (TypeError, ValueError):  # a date set to something unreadable (tests): sent as it is
        early = False
    draft = {"due_date": None if early else due} if due is not None else {}
    return dict(
        d, **draft, allocated_to=d.get("assigned_to"), allocated_to_display=d.get("assigned_to_display"),
    )


def snooze_due_date(store: Store, uid: str) -> Record:
    """Variant snooze-due-date: the snooze moves `due_date` (kept beside `date`, which stays)."""
    task = store.require("journal", uid)
    if task.data.get("completed"):
        raise Invalid("a completed task cannot be snoozed")
    new = max(parse_dt(task.data.get("due_date") or task.data["date"]), now_utc()) + timedelta(hours=24)
    return store.update(task.uri, {"due_date": fmt_dt(new)}, message="task snoozed for 24 hours")


async def tasks_mine(request: Request) -> Response:
    store = store_of(request)
    return _tasks(request, store.tasks(store.api_user), store.api_user)


async def tasks_all(request: Request) -> Response:
    store = store_of(request)
    return _tasks(request, store.tasks(), store.api_user)


def _tasks(request: Request, found: list[Record], user: str) -> Response:
    """page_size (default 7, the 2024-12 cut); include_completed (default false, the 2025-02 draft). No `page`."""
    size = int_param(request, "page_size", 7, maximum=MAX_PAGE_SIZE)
    # include_completed is a 2025-02 parameter: the 2024-12 list (variant tasks-2024) ignores it, sending open tasks
    if not bool_param(request, "include_completed") or active(request, "tasks-2024"):
        found = [t for t in found if not t.data.get("completed")]
    if active(request, "tasks-2024"):  # no total, and pages of at most PAGE_CAP (no limit is documented)
        return JSONResponse({"tasks": [task_json(t, cut_2024=True) for t in found[:min(size, PAGE_CAP)]]})
    return JSONResponse({"tasks": [task_json(t) for t in found[:size]], "total": len(found), "user_uri": user})


async def task_single(request: Request) -> Response:
    task = store_of(request).require("journal", path_uid(request))
    return JSONResponse(task_json(task, cut_2024=active(request, "tasks-2024")))


TaskAction = Callable[[Store, str], Record]


def task_action(action: TaskAction) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            snoozing = action is Store.snooze_task and active(request, "snooze-due-date")
            task = (snooze_due_date if snoozing else action)(store_of(request), path_uid(request))
            return JSONResponse(task_json(task, cut_2024=active(request, "tasks-2024")))
        except Invalid as exc:  # e.g. snoozing a completed task: the values, not the request, are wrong
            return error(409, str(exc))

    return endpoint


# -- v2: segments ------------------------------------------------------------------


def segment(request: Request) -> Record:
    return store_of(request).require("segment", path_uid(request))


def _segments(request: Request, found: list[Record]) -> Response:
    page, size = paging(request, 250)
    chunk = found[(page - 1) * size : page * size]
    return JSONResponse({"segments": [compact(s.data) for s in chunk]})


async def segments_active(request: Request) -> Response:
    return _segments(request, store_of(request).segments(active_only=True))


async def segments_all(request: Request) -> Response:
    return _segments(request, store_of(request).segments())


async def segments_find(request: Request) -> Response:
    return _segments(request, store_of(request).segments(active_only=True, name=required(request, "name")))


async def segment_count(request: Request) -> Response:
    record = segment(request)
    return JSONResponse(
        {
            "count": store_of(request).segment_count(record.uri),
            "description": record.data["description"],
            "segment": record.uri,
        }
    )


async def segment_all(request: Request) -> Response:
    store, record = store_of(request), segment(request)
    page, size = paging(request, 25)
    verbose = bool_param(request, "verbose")
    found, _ = store.segment_members(
        record.uri, q=request.query_params.get("q"), offset=(page - 1) * size, limit=size
    )
    results = []
    for member in found:
        item = dict(search_item(member), uri=member.uri)
        if verbose:
            item["data"] = member.data
        results.append(item)
    if active(request, "other-wrappers"):
        return JSONResponse({"members": results})
    return JSONResponse({"results": results})  # "a list of records with contents depending on segment type"


async def segment_lookup(request: Request) -> Response:
    """openapi.yaml types `q` as a `uid` and describes it as "a simple single search term": a member's uid finds
    that member; any other q is matched as words of name, email and postcode (silent 32), or nothing (variant
    lookup-uid-only)."""
    store, record = store_of(request), segment(request)
    q = request.query_params.get("q") or ""
    member = store.segment_member_by_uid(record.uri, q.strip()) if q.strip() else None
    if member is not None:
        found = [member]
    elif active(request, "lookup-uid-only"):
        found = []
    else:
        found, _ = store.segment_members(record.uri, q=q or None, limit=10)
    return JSONResponse(
        [
            compact(
                {
                    "display_value": m.display_value,
                    "id": m.uri,
                    "label": m.display_value,
                    "text": primary(m.data.get("email")),
                    "uri": m.uri,
                    "value": m.uri,
                }
            )
            for m in found
        ]
    )


# -- v1 ----------------------------------------------------------------------------


async def v1_ping(request: Request) -> Response:
    return JSONResponse({"message": "pong"})


async def v1_auth(request: Request) -> Response:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            form: dict[str, Any] = dict(await request.json())
        except (ValueError, TypeError):
            raise Invalid("body must be a JSON object") from None
    else:
        form = dict(await request.form())
    store = store_of(request)
    if form.get("username") == store.demo_facts()["api_user_email"] and form.get("password") == AUTH_PASSWORD:
        return JSONResponse({"api_key": request.app.state.key})
    return JSONResponse(
        {"error_detail": "Username and Password do not match an account", "error": "Unable to authenticate"},
        status_code=403,
    )


async def v1_bucket(request: Request) -> Response:
    return JSONResponse({"resource_type": store_of(request).resource_counts()})


async def v1_membership(request: Request) -> Response:
    store = store_of(request)
    email = required(request, "email")
    found = store.contacts_by_email(email)
    if not found:
        return error(404, "email not found")
    if len(found) > 1:
        return error(409, "multiple contacts found for email")
    record = found[0]
    status, deciding = store.membership_status(record.uri)
    members = store.live_memberships(record.uri)
    current = [m for m in members if m.data["start_date"] <= _today() <= m.data["end_date"]]
    till = deciding.data["end_date"] + "T00:00:00" if deciding else None
    grace = (parse_dt(till) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S") if till else None
    return JSONResponse(
        {
            "active_memberships_for_display": sorted({store.display_of(m.data["membership_type"]) for m in current}),
            "first_name": record.data.get("first_name") or record.data.get("name"),
            "last_name": record.data.get("last_name") or "",
            "member_since": min(m.data["start_date"] for m in members) + "T00:00:00" if members else None,
            "member_till": till,
            "member_till_plus_grace": grace,
            "membership_numbers": [m.data["membership_number"] for m in current],
            "membership_record_status": {"current": "active"}.get(status, status),
            "primary_email": primary(record.data.get("email")),
            "person": record.uri,
        }
    )


def _today() -> str:
    return now_utc().date().isoformat()


V1_OPS: dict[str, Callable[[Any, str], bool]] = {
    "eq": lambda have, want: str(have) == want,
    "ne": lambda have, want: str(have) != want,
    "gt": lambda have, want: have is not None and str(have) > want,
    "gte": lambda have, want: have is not None and str(have) >= want,
    "lt": lambda have, want: have is not None and str(have) < want,
    "lte": lambda have, want: have is not None and str(have) <= want,
    "startswith": lambda have, want: str(have or "").startswith(want),
    "startswithi": lambda have, want: str(have or "").lower().startswith(want.lower()),
}


def v1_matches(data: dict[str, Any], field: str, op: str, want: str) -> bool:
    """A v1 field filter (v1 notes): plain `field=value` is a case-insensitive match; on a list field, any entry."""
    have = data.get(field)
    values = have if isinstance(have, list) else [have]
    if op == "":
        return any(str(v).lower() == want.lower() for v in values if v is not None)
    return any(V1_OPS[op](v, want) for v in values)


PLAIN = re.compile(r"[ !#-&(-Z\]-z|~]+")  # printable ASCII but quotes, backslash, brackets and braces


def narrowing(tests: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """What a record must hold for these filters to match it (Store.by_type `narrowed`): each equality or prefix
    filter whose value is plain ASCII (compared ignoring case as sheepCRM's `__startswithi` and plain filters do, and
    stored in JSON as written) and not `None` (which a missing value reads as). The filters then run on what is
    left, exactly."""
    return [(field, "equal" if op in ("", "eq") else "prefix", want) for field, op, want in tests
            if op in ("", "eq", "startswith", "startswithi") and PLAIN.fullmatch(want) and want.lower() != "none"]


async def v1_list(request: Request) -> Response:
    """v1 resource listing (v1 notes): field filters with modifiers, mode=AND|OR, paged envelope."""
    store, rtype = store_of(request), request.path_params["rtype"]
    page, size = (1, 25) if active(request, "v1-paging") else paging(request, 25)
    if active(request, "v1-paging"):  # this variant pages with limit/skip
        size = int_param(request, "limit", 25, maximum=MAX_PAGE_SIZE)
        page = int_param(request, "skip", 0, minimum=0) // size + 1
    mode = request.query_params.get("mode", "AND").upper()
    tests = []
    for key, want in request.query_params.items():
        if key in ("mode", "page", "page_size", "limit", "skip"):
            continue
        field, _, op = key.partition("__")
        if op and op not in V1_OPS:
            raise Invalid(f"unknown filter modifier __{op}")
        if field == "start_date" and active(request, "filters-ignored"):
            continue
        if rtype == "member" and active(request, "member-filters-ignored"):
            continue
        if not op and active(request, "plain-prefix"):  # a plain filter read as "starts with, any case"
            op = "startswithi"
        tests.append((field, op, want))
    combine = all if mode != "OR" else any
    listed = active(request, "deleted-listed")  # deleted records too: contacts deleted through the API, and
    found = [  # records whose data says so (memberships, sessions)
        r for r in store.by_type(rtype, with_deleted=listed, narrowed=narrowing(tests) if combine is all else ())
        if (listed or r.data.get("record_state") != "deleted")
        and (not tests or combine(v1_matches(r.data, *t) for t in tests))
    ]
    chunk = found[(page - 1) * size : page * size]
    return JSONResponse(
        {
            "grand_total": len(found),
            "links": [],
            "results": [v1_listed(r) if listed and "deleted" in (r.state, r.data.get("record_state"))
                        else v1_record(r) | {"id": r.uid, "state": r.state} for r in chunk],
            "page_size": size,
            "page": page,
            "formatted_results": [],
            "total": len(found),
            "pages": max(1, -(-len(found) // size)),
        }
    )


def v1_listed(record: Record) -> dict[str, Any]:
    """A deleted record as variant `deleted-listed` lists it: its state where the v1 notes put a record's state
    (`state` on the row, `meta.state`), its data packet without `record_state` (no v1 document names that field)."""
    row = v1_record(record) | {"id": record.uid, "state": "deleted"}
    return row | {"meta": {**row["meta"], "state": "deleted"},
                  "data": {k: v for k, v in record.data.items() if k != "record_state"}}


async def v1_connections(request: Request) -> Response:
    """EVIDENCE.md (connections): `GET /api/v1/{flock}/connections/?uri=<uid>` with `limit`, `connection_type`,
    `hidden` -> {connections: [{automatic, bidirectional, connection_note, connection_type, destination, ...}]}.
    Links are bidirectional: asked from either end, `destination` is the other record. None is hidden."""
    store = store_of(request)
    uid = required(request, "uri").strip("/").split("/")[-1]
    limit = int_param(request, "limit", 25, maximum=MAX_PAGE_SIZE)
    kind = request.query_params.get("connection_type")
    bool_param(request, "hidden")  # accepted; the sandbox hides no connection
    out = []
    for link in store.meta("connections") or []:
        ends = {link["source"].split("/")[3]: link["destination"], link["destination"].split("/")[3]: link["source"]}
        if uid not in ends or (kind and link["connection_type"] != kind):
            continue
        out.append({
            "automatic": False, "bidirectional": True, "connection_note": link["connection_note"],
            "connection_type": link["connection_type"], "destination": ends[uid],
        })
    return JSONResponse({"connections": out[:limit]})


async def v1_record_get(request: Request) -> Response:
    store, rtype, uid = store_of(request), request.path_params["rtype"], path_uid(request)
    kept = store.get_record(rtype, uid) if active(request, "deleted-listed") else None
    if kept is not None and kept.state == "deleted":  # kept for sheepCRM's UI: read as it is, `meta.state` deleted
        return JSONResponse(v1_record(kept))
    return JSONResponse(v1_record(store.require(rtype, uid)))


async def v1_record_put(request: Request) -> Response:
    store = store_of(request)
    record = store.require(request.path_params["rtype"], path_uid(request))
    try:
        packet = json.loads(await request.body() or b"null")
    except ValueError:
        raise Invalid("body must be a JSON object of fields") from None
    if not isinstance(packet, dict) or not packet:
        raise Invalid("body must be a non-empty JSON object of fields")
    changes = validate_packet(record.type, record.data, packet)
    if record.type == "person" and ({"first_name", "last_name"} & changes.keys()):
        first = changes.get("first_name", record.data.get("first_name")) or ""
        last = changes.get("last_name", record.data.get("last_name")) or ""
        changes["formatted_name"] = f"{first} {last}".strip()
        changes["sortable_name"] = f"{last} {first}".strip().lower()
    updated = store.update(record.uri, changes, message="Record updated via API")
    return JSONResponse(v1_record(updated))


def validate_packet(rtype: str, fields: dict[str, Any], packet: dict[str, Any]) -> dict[str, Any]:
    """400 for fields a record of `rtype` (whose data is `fields`) does not have or values of the wrong shape;
    409 for bad emails."""
    changes: dict[str, Any] = {}
    for name, value in packet.items():
        if name in ("uid", "uri") or name not in fields:
            raise Invalid(f"unknown field {name!r} for {rtype}")
        if name in LIST_FIELDS or isinstance(fields[name], list):
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
                raise Invalid(f"field {name!r} takes a list of strings")
        elif isinstance(value, (dict, list)):
            raise Invalid(f"field {name!r} takes a single value")
        if name == "email" and not all(v is None or EMAIL.match(v) for v in value):
            raise Conflict(f"invalid email address in {value!r}")
        changes[name] = value
    return changes


# -- v1: creating and deleting contacts (v1 notes: POST -> 201 + Location; DELETE, recoverable in the UI only) --

CONTACT_TEMPLATES: dict[str, dict[str, Any]] = {
    "person": {
        "title": "", "first_name": None, "last_name": None, "formatted_name": None, "sortable_name": None,
        "known_as": None, "email": [], "telephone": [], "gender": None, "date_of_birth": None, "job_title": None,
        "notes": None, "tags": [], "connections": [], "comms_permission": [], "website": None, "address_lines": [],
        "locality": None, "region": None, "postal_code": None, "country": None,
    },
    "organisation": {
        "name": None, "formatted_name": None, "sortable_name": None, "email": [], "telephone": [], "website": None,
        "notes": None, "tags": [], "connections": [], "address_lines": [], "locality": None, "region": None,
        "postal_code": None, "country": None,
    },
}
async def v1_create(request: Request) -> Response:
    """POST a JSON packet (v1 notes); 409 with the notes' bodies when the email already has an account."""
    store, rtype = store_of(request), request.path_params["rtype"]
    if rtype not in CONTACT_TEMPLATES:
        raise Invalid(f"the sandbox creates only {', '.join(CONTACT_TEMPLATES)} records")
    try:
        packet = json.loads(await request.body() or b"null")
    except ValueError:
        raise Invalid("body must be a JSON object of fields") from None
    if not isinstance(packet, dict) or not packet:
        raise Invalid("body must be a non-empty JSON object of fields")
    template = CONTACT_TEMPLATES[rtype]
    data = {**template, **validate_packet(rtype, template, packet)}
    if rtype == "person":
        if not (data["first_name"] or data["last_name"]):
            raise Invalid("a person needs first_name or last_name")
        data["formatted_name"] = f"{data['first_name'] or ''} {data['last_name'] or ''}".strip()
        data["sortable_name"] = f"{data['last_name'] or ''} {data['first_name'] or ''}".strip().lower()
    else:
        if not data["name"]:
            raise Invalid("an organisation needs a name")
        data["formatted_name"], data["sortable_name"] = data["name"], str(data["name"]).lower()
    emails = {e.lower() for e in data["email"] if e}
    if emails & {str(u.data.get("email", "")).lower() for u in store.by_type("user")}:
        return JSONResponse({"error": "existing user account found"}, status_code=409)
    if any(store.contacts_by_email(e) for e in emails):
        return JSONResponse({"error": "existing person found without user account"}, status_code=409)
    record = store.create_contact(rtype, data)
    response = JSONResponse({"status": "ok"}, status_code=200 if active(request, "create-200") else 201)
    if not active(request, "create-unnamed"):
        response.headers["Location"] = record.uri  # "The URI of the new record will be in the location header"
    return response


async def v1_delete(request: Request) -> Response:
    rtype = request.path_params["rtype"]
    if rtype not in CONTACT_TEMPLATES:
        raise Invalid(f"the sandbox deletes only {', '.join(CONTACT_TEMPLATES)} records")
    store = store_of(request)
    record = store.require(rtype, path_uid(request))
    store.delete(record.uri)
    return JSONResponse({"status": "ok"})


class Conflict(Exception):
    """409: structure fine, values not acceptable (as sheepCRM's v1 uses it)."""


# -- app ---------------------------------------------------------------------------


def routes() -> list[Route]:
    v2 = "/api/v2/{bucket}/{rtype}/{uid}"
    ev = "/events/v2/{bucket}/booking/{uid}"
    nt = "/notifications/v2/{bucket}"
    sg = "/segments/v2/{bucket}"
    return [
        Route("/search/v2/{bucket}", search_global),
        Route("/search/v2/{bucket}/", search_global),
        Route("/search/v2/{bucket}/global", search_global),
        Route("/search/v2/{bucket}/person", search_person),
        Route("/search/v2/{bucket}/help", search_help),
        Route(f"{v2}/summary", contact_summary),
        Route(f"{v2}/communications/detail", contact_communications),
        Route(f"{v2}/personal/detail", contact_personal),
        Route(f"{v2}/membership/all", contact_memberships),
        Route(f"{v2}/display", record_display),
        Route("/audit/v2/{bucket}/{rtype}/{uid}/audit", record_audit),
        Route("/events/v2/{bucket}/bookings/{state}", events_by_state),
        Route(ev, event_single),
        Route(f"{ev}/summary", event_summary),
        Route(f"{ev}/available_tickets", event_tickets),
        Route(f"{ev}/attendance/all", event_attendance),
        Route(f"{ev}/attendance", event_attendance, methods=["GET"]),
        Route(f"{ev}/attendance", event_set_attendance, methods=["PUT"]),
        Route("/events/v2/{bucket}/person/{uid}/orders", person_orders),
        Route(f"{nt}/tasks", tasks_mine),
        Route(f"{nt}/tasks/all", tasks_all),
        Route(f"{nt}/task/{{uid}}", task_single),
        Route(f"{nt}/task/{{uid}}/complete", task_action(Store.complete_task), methods=["PUT"]),
        Route(f"{nt}/task/{{uid}}/uncomplete", task_action(Store.uncomplete_task), methods=["PUT"]),
        Route(f"{nt}/task/{{uid}}/snooze", task_action(Store.snooze_task), methods=["PUT"]),
        Route(sg, segments_active),
        Route(f"{sg}/all", segments_all),
        Route(f"{sg}/find", segments_find),
        Route(f"{sg}/segment/{{uid}}/count", segment_count),
        Route(f"{sg}/segment/{{uid}}/all", segment_all),
        Route(f"{sg}/segment/{{uid}}/lookup", segment_lookup),
        Route("/api/v1/ping/", v1_ping),
        Route("/api/v1/auth/", v1_auth, methods=["POST"]),
        Route("/api/v1/{bucket}/", v1_bucket),
        Route("/api/v1/{bucket}/user/membership/", v1_membership),
        Route("/api/v1/{bucket}/connections/", v1_connections, methods=["GET"]),
        Route("/api/v1/{bucket}/{rtype}/", v1_list, methods=["GET"]),
        Route("/api/v1/{bucket}/{rtype}/", v1_create, methods=["POST"]),
        Route("/api/v1/{bucket}/{rtype}/{uid}/", v1_record_get, methods=["GET"]),
        Route("/api/v1/{bucket}/{rtype}/{uid}/", v1_record_put, methods=["PUT"]),
        Route("/api/v1/{bucket}/{rtype}/{uid}/", v1_delete, methods=["DELETE"]),
    ]


async def _not_found(request: Request, exc: Exception) -> Response:
    return error(404, "not found", str(exc))


async def _invalid(request: Request, exc: Exception) -> Response:
    return error(400, str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    return error(409, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, str(exc.detail).lower(), headers_note(request))


def headers_note(request: Request) -> str:
    return f"no endpoint {request.method} {request.url.path}"


API = Literal["v1", "v2", "both"]
RESTRICTED = re.compile(r"^/events/v2/[^/]+/booking/[^/]+(/available_tickets|/attendance(/all)?)?$")
USER_DISPLAY = re.compile(r"^/api/v2/sheepcrm/user/[A-Za-z0-9]{1,64}/display$")


def create_app(
    store: Store,
    *,
    key: str,
    bucket: str = "demo",
    faults: FaultPlan | None = None,
    api: API = "both",
    restricted_key: str | None = None,
    drift: frozenset[str] = frozenset(),
    log: list[LoggedRequest] | None = None,
    variant: str | None = None,
) -> Starlette:
    """The sandbox app for one bucket. `key` is the bearer token it accepts.

    `api` picks the v1 routes (/api/v1/...), the v2 routes, or both: sheepCRM serves them on separate hosts,
    and so does SandboxServer. `restricted_key` is a second key whose user lacks the permission for full
    event details (403, openapi.yaml's reduced /summary still works). `drift` changes the answers on purpose
    (sandbox/drift.py, README) so that `doctor --contract` can be shown to notice. `log` may be shared. `variant`
    serves another answer the documents allow for one of the sandbox's own choices (sandbox/variants.py); the
    store must have been built with the same variant."""
    if bucket != store.bucket:
        raise ValueError(f"store holds bucket {store.bucket!r}, not {bucket!r}")
    rules = parse_drift(drift)  # ValueError for a bad spec
    log = [] if log is None else log
    chosen = [r for r in routes() if api == "both" or (r.path.startswith("/api/v1/") == (api == "v1"))]
    app = Starlette(
        routes=chosen,
        middleware=[
            Middleware(
                SandboxMiddleware, key=key, bucket=bucket, faults=faults, log=log, restricted_key=restricted_key,
                drift=rules, variant=check(variant),
            )
        ],
        exception_handlers={NotFound: _not_found, Invalid: _invalid, Conflict: _conflict, HTTPException: _http_error},
    )
    app.state.store = store
    app.state.key = key
    app.state.bucket = bucket
    app.state.faults = faults
    app.state.request_log = log
    app.state.variant = check(variant)
    return app


class SandboxMiddleware:
    """Outermost layer: request log, then fault injection, then auth and bucket checks."""

    def __init__(
        self, app: ASGIApp, *, key: str, bucket: str, faults: FaultPlan | None, log: list[LoggedRequest],
        restricted_key: str | None = None, drift: tuple[DriftRule, ...] = (), variant: str | None = None,
    ) -> None:
        self.app, self.key, self.bucket, self.faults, self.log = app, key, bucket, faults, log
        self.restricted_key, self.drift, self.variant = restricted_key, drift, variant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        entry = LoggedRequest(
            scope["method"], scope["path"], raw.decode("latin-1"), scope.get("query_string", b"").decode("latin-1"),
            application=(dict(scope["headers"]).get(b"application") or b"").decode("latin-1") or None,
        )
        self.log.append(entry)

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        rule: FaultRule | None = None
        if self.faults is not None and scope["path"] != "/api/v1/ping/":
            fault = self.faults.decide(scope["method"], scope["path"])
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            rule = fault.rule
            if rule is not None:
                entry.fault = rule.label
        target: ASGIApp = self.check_access(scope) or self.app
        if self.drift and scope["method"] == "GET":
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if target is self.app and (refused := refusal(self.drift, scope["path"], query)):
                target = error(refused[0], "not found" if refused[0] == 404 else refused[1], refused[1])
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            logged_send = rewriting(self.drift, scope["path"], logged_send, header)
        elif self.drift and scope["method"] == "POST":
            logged_send = relocating(self.drift, scope["path"], logged_send)
        if scope["path"].startswith("/api/v1/") and rule is None:
            logged_send = json_rewriting(logged_send, v1_error)
        logged_send = rate_limited(logged_send, rule.arg if rule is not None and rule.kind in ("429", "403") else None)
        if rule is None:
            await target(scope, receive, logged_send)
        elif rule.after:
            await target(scope, receive, _discard)  # the write happens; the client never learns
            await inject(rule, scope, receive, logged_send)
        else:
            await inject(rule, scope, receive, logged_send)

    def check_access(self, scope: Scope) -> Response | None:
        path: str = scope["path"]
        if path in UNAUTHENTICATED:
            return None
        v1 = path.startswith("/api/v1/")
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        restricted = self.restricted_key is not None and hmac.compare_digest(
            token.encode(), self.restricted_key.encode()
        )
        if restricted and RESTRICTED.match(path):  # openapi.yaml 403: valid credentials, not enough privileges
            return error(403, "forbidden")  # no body is documented: the spec's error schema, naming no permission
        if not restricted and not hmac.compare_digest(token.encode(), self.key.encode()):
            if v1:  # sheepCRM's v1 answers bad credentials with 404
                return error(404, "not found", "no such resource, or bad credentials")
            return error(401, "unauthorized", "missing or invalid bearer token")
        parts = path.split("/")
        if self.variant == "user-display" and USER_DISPLAY.match(path):
            return None
        if len(parts) > 3 and parts[3] != self.bucket:
            return error(404, "not found", f"bucket {parts[3]} not found")
        return None


async def _discard(message: Message) -> None:
    return None


def v1_error(status: int, body: Any) -> Any:
    """v1 errors carry `error` and `error_detail` (EVIDENCE.md, error bodies; the v1 notes' 403 and 409)."""
    if status < 400 or not isinstance(body, dict) or "error_detail" in body or not isinstance(body.get("error"), str):
        return body
    detail = body.get("description")
    return {"error": body["error"], **({"error_detail": detail} if detail and detail != body["error"] else {})}


RATE_LIMIT = "40, 400;window=60, 1000;window=3600"  # EVIDENCE.md, throttling (docs-dev's example)


def rate_limited(send: Send, reset: float | None = None) -> Send:
    """Every answer carries x-rate-limit-limit/-remaining/-reset (EVIDENCE.md, throttling); a 429 says 0 remain
    and when the window resets, in seconds, and sends no Retry-After."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            limited = message["status"] == 429 or reset is not None  # a 429, or a throttling 403 (fault 403=ARG)
            wait = reset if reset is not None else 1.0
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"retry-after"] + [
                (b"x-rate-limit-limit", RATE_LIMIT.encode()),
                (b"x-rate-limit-remaining", b"0" if limited else b"399"),
                (b"x-rate-limit-reset", f"{wait if limited else 60:g}".encode()),
            ]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def inject(rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with the fault instead of the real response."""
    if rule.kind == "429":
        seconds = rule.arg or 1
        response: Response = error(429, "too many requests", f"retry after {seconds:g} seconds")
    elif rule.kind in ("500", "503", "409", "403"):
        response = error(int(rule.kind), "injected fault", f"sandbox fault {rule.label}")
    elif rule.kind == "timeout":
        await _wait_for_disconnect(receive, rule.arg or 30.0)
        response = error(504, "timeout", "sandbox fault timeout")
    else:  # drop: promise a body, send part of it, close the connection
        body = b'{"error": "this response is cut short by the sandbox fault drop"}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        return  # the server closes the connection: the client sees an incomplete body
    await response(scope, receive, send)


async def _wait_for_disconnect(receive: Receive, seconds: float) -> None:
    """Sleep up to `seconds`, returning early when the client goes away."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), timeout=seconds)
    except TimeoutError:
        pass
