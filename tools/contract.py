"""Every upstream read the tools use, with the fields they read from it: the one table behind
`sheepcrm-mcp doctor --contract` and the contract tests.

`wrapper` names the keys the records may sit under (empty: the answer is the record, or a bare list; with
`bare`, the answer may also be one record without the wrapper); `fields` is every key the tools read from a
record or the answer; `core` are the fields that decide the tools' answers, each a group of alternatives
written `a|b` (the group is there when one of them is): losing one is drift, the rest are warnings. A field the
tools branch on is core where the documents declare it in that read's answer (or, for v1, the notes show it on
every record); one they do not (a record_state on events, which EventSingle does not name) is optional, and the
tools say what its absence leaves unknown.
`envelope` are keys the answer itself must carry: a v1 listing's `total`, and the `page` and `page_size` it echoes,
by which the tools tell whether sheepCRM paged as asked (tools/common.py v1_page). `answers` are the HTTP statuses the
documents give as answers rather than failures (404 = no match); any other 4xx but 403 is drift. The tests
check each field against sheepCRM's documents (openapi.yaml, the 2024-12 tasks cut, the 2025-02 draft,
the v1 notes) and UNDOCUMENTED lists the few that no document names, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Read:
    name: str
    method: str  # the client method that makes the call
    path: str  # the documented path template
    wrapper: tuple[str, ...]
    fields: tuple[str, ...]
    core: tuple[str, ...] = ()
    envelope: tuple[str, ...] = ()
    answers: tuple[int, ...] = ()
    bare: bool = False

    @property
    def groups(self) -> list[tuple[str, ...]]:
        """The core fields as groups of alternatives."""
        return [tuple(c.split("|")) for c in self.core]


SEARCH_ITEM = ("id", "uri", "display_value", "resource", "primary_email", "primary_telephone", "postal_code")
TASK = (
    "uid", "title", "display_value", "completed", "date", "due_date", "assigned_to", "assigned_to_display",
    "allocated_to", "allocated_to_display", "context", "context_display", "text_body", "created", "last_updated",
    "record_state", "uri",
)
TASK_CORE = ("uid", "completed", "date|due_date")
LISTED_TASK_CORE = (*TASK_CORE, "record_state")  # list_tasks leaves out the tasks marked deleted
V1_CONTACT = ("uri", "display_value", "data", "email", "telephone", "job_title", "total", "page", "page_size", "state",
              "record_state")
V1_STATE = "state|record_state"  # a listed v1 row's state (v1 notes), or the record's own: a deleted one is left out
EVENT = (
    "uid", "uri", "display_value", "title", "start_datetime", "start_date", "end_datetime", "end_date", "location",
    "cancelled", "status", "is_sold_out", "record_state",
)
# `cancelled` (EventSingle) decides an event's status: without it a cancelled event would show as its `status`
EVENT_CORE = ("uid", "start_datetime|start_date", "cancelled")
V1_ENVELOPE = ("total", "page", "page_size")  # a v1 listing's count and its echo of the page it holds
STOCK = ("ticket_stock_control", "total_stock_available")  # free places of ticket types sharing one stock

READS: tuple[Read, ...] = (
    Read("search", "search", "/search/v2/{bucket}", ("results",), SEARCH_ITEM, ("id", "display_value")),
    Read(  # EVIDENCE.md: a match answers the full person record; a list or `results` is accepted too
        "person search", "search_people", "/search/v2/{bucket}/person", ("results",), SEARCH_ITEM, ("id|uri",),
        answers=(404, 409), bare=True,  # no match; several match without take_first_if_multiple
    ),
    Read(
        "help search", "search_help", "/search/v2/{bucket}/help", ("results", "articles"),
        ("title", "display_value", "link", "url", "snippet", "summary", "text"), ("title",),
    ),
    Read(
        "v1 record", "record", "/api/v1/{bucket}/{resource_type}/{uid}/", (),
        ("display_value", "data", "meta", "last_updated", "email", "telephone", "address_lines", "postal_code",
         "locality", "region", "country", "tags", "comms_permission", "title", "first_name", "last_name",
         "date_of_birth", "formatted_name", "name", "job_title", "known_as", "notes", "state", "record_state"),
        # v1 records carry every schema key, empty as null or [] (v1 notes); `meta.state` says a record is deleted
        ("display_value", "data", "email", V1_STATE),
    ),
    Read(
        "v1 membership by email", "membership_by_email", "/api/v1/{bucket}/user/membership/", (),
        ("person", "first_name", "last_name", "member_till_plus_grace", "membership_record_status",
         "active_memberships_for_display"),
        ("person", "member_till_plus_grace"),  # grace or lapsed turns on it; the tools do not read the status here
        answers=(409,),  # several contacts share the email (v1 notes)
    ),
    Read(
        "memberships", "memberships", "/api/v2{person_uri}membership/all", ("memberships",),
        ("start_date", "end_date", "cancellation_date", "display_value", "membership_number",
         "membership_record_status", "membership_type", "paid", "record_state", "uri", "auto_renew", "has_renewed",
         "advise_lapse", "payment_method", "member", "linked_members", "data", "meta", "state", "count"),
        # `paid` is optional (openapi.yaml); a membership marked deleted is no membership (check_membership)
        ("start_date", "end_date", "membership_record_status", "record_state|state"),
    ),
    Read("display", "display", "/api/v2/{bucket}/{resource_type}/{uid}/display", (), ("display_value",),
         ("display_value",)),
    Read(
        "record history", "record_audit", "/audit/v2/{bucket}/{resource_type}/{uid}/audit", ("results",),
        ("date", "user", "message", "clean_diff", "field", "prev", "value", "uri", "count"), ("date",),
    ),
    Read(
        "events", "events", "/events/v2/{bucket}/bookings/{state}", ("bookings",), (*EVENT, *STOCK), EVENT_CORE,
    ),
    Read(
        "event", "event", "/events/v2/{bucket}/booking/{uid}", (),
        (*EVENT, *STOCK, "capacity", "description", "location_address_string", "website"), EVENT_CORE,
    ),
    Read("event summary", "event_summary", "/events/v2/{bucket}/booking/{uid}/summary", (), EVENT,
         ("uid", "cancelled")),
    Read(
        "tickets", "event_tickets", "/events/v2/{bucket}/booking/{uid}/available_tickets", ("available_tickets",),
        ("name", "uri", "amount", "member_only", "total", "allocated", "available", "reserved"), ("name", "available"),
    ),
    Read(
        "attendance", "attendance", "/events/v2/{bucket}/booking/{uid}/attendance/all", ("sessions",),
        ("uid", "person_ref", "ref", "attendee_name", "display_value", "attendee_email", "status", "ticket",
         "ticket_ref", "guest", "guest_ref", "record_state", "booking"),
        ("status", "guest", "person_ref", "record_state"),  # a session marked deleted is not counted
    ),
    Read(
        "person orders", "person_orders", "/events/v2/{bucket}/person/{uid}/orders", ("orders",),
        ("booking_display", "booking_uri"), ("booking_uri",),
    ),
    Read("my tasks", "my_tasks", "/notifications/v2/{bucket}/tasks", ("tasks",), (*TASK, "total"), LISTED_TASK_CORE),
    Read("all tasks", "all_tasks", "/notifications/v2/{bucket}/tasks/all", ("tasks",), (*TASK, "total"),
         LISTED_TASK_CORE),
    Read("task", "task", "/notifications/v2/{bucket}/task/{uid}", (), TASK, TASK_CORE),
    Read(
        "segments", "all_segments", "/segments/v2/{bucket}/all", ("segments",),
        ("uid", "name", "display_value", "description", "segment_type", "resource_type", "active", "record_state"),
        ("uid", "record_state"),  # find_segments leaves out the segments marked deleted
    ),
    Read(
        "segment search", "find_segments", "/segments/v2/{bucket}/find", ("segments",),
        ("uid", "name", "display_value", "description", "segment_type", "resource_type", "active", "record_state"),
        ("uid",),
    ),
    Read("segment count", "segment_count", "/segments/v2/{bucket}/segment/{uid}/count", (), ("count",), ("count",)),
    Read("segment members", "segment_members", "/segments/v2/{bucket}/segment/{uid}/all", ("results",), SEARCH_ITEM,
         ("id|uri",)),
    Read("segment lookup", "segment_lookup", "/segments/v2/{bucket}/segment/{uid}/lookup", ("results",),
         (*SEARCH_ITEM, "label", "text", "value"), ("id|uri|value",)),
    # v1 listings (v1 notes): {results: [v1 records], total, page, pages, page_size}
    Read("person list", "resources", "/api/v1/{bucket}/person/", ("results",), V1_CONTACT,
         ("uri", "data", "email", V1_STATE), envelope=V1_ENVELOPE),
    Read("organisation list", "resources", "/api/v1/{bucket}/organisation/", ("results",), V1_CONTACT,
         ("uri", "data", "email", V1_STATE), envelope=V1_ENVELOPE),
    Read(
        "member list", "resources", "/api/v1/{bucket}/member/", ("results",),
        ("uri", "data", "member", "start_date", "end_date", "membership_type", "paid", "membership_record_status",
         "record_state", "cancellation_date", "total", "page", "page_size", "auto_renew", "has_renewed",
         "linked_members", "meta", "state"),
        # has_renewed decides the renewals list: a renewed membership is left out of it
        ("data", "member", "start_date", "end_date", "membership_type", "membership_record_status", V1_STATE,
         "has_renewed"),
        envelope=V1_ENVELOPE,
    ),
    # EVIDENCE.md (connections): the links between contacts have their own v1 endpoint, in no document
    Read("connections", "connections", "/api/v1/{bucket}/connections/", ("connections",),
         ("destination", "connection_type"), ("destination",)),
    Read("membership_type list", "resources", "/api/v1/{bucket}/membership_type/", ("results",),
         ("uri", "display_value", "total", "page", "page_size"), ("uri", "display_value"), envelope=V1_ENVELOPE),
)

# Fields read that no document names for that endpoint, and why reading them is safe.
UNDOCUMENTED: dict[tuple[str, str], str] = {
    ("person search", "results"): "no 200 body is documented; read as the identical global search's wrapper",
    ("help search", "results"): "no 200 body is documented; the search endpoints' wrapper",
    ("help search", "articles"): "no 200 body is documented; an alternative wrapper, optional",
    ("help search", "link"): "no 200 body is documented; optional, shown as the article's address",
    ("help search", "url"): "no 200 body is documented; optional alternative to link",
    ("help search", "snippet"): "no 200 body is documented; optional",
    ("help search", "summary"): "no 200 body is documented; optional alternative to snippet",
    ("segment members", "results"): "'a list of records with contents depending on segment type'; optional",
    ("segment lookup", "results"): "the documented answer is a bare list; a wrapper is tolerated",
    ("segment lookup", "resource"): "not in the lookup schema; optional, the type falls back to the uri",
    ("segment lookup", "primary_email"): "not in the lookup schema; optional",
    ("segment lookup", "primary_telephone"): "not in the lookup schema; optional",
    ("connections", "connections"): "no document has the endpoint; EVIDENCE.md (connections) shows this wrapper",
    ("connections", "destination"): "no document has the endpoint; EVIDENCE.md (connections): the linked record",
    ("connections", "connection_type"): "no document has the endpoint; EVIDENCE.md (connections); optional",
}


def by_name() -> dict[str, Read]:
    return {r.name: r for r in READS}


# The JSON kinds the tools can read for each core field and envelope key (of any read; a uri may also come expanded
# as an object, {ref, display_value}), after the documents' types: one sent as another kind is drift, as a missing
# one is. A field in DATES must also be a string starting with an ISO date (YYYY-MM-DD). Nulls are counted apart.
CORE_KINDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("id", "uri", "value", "uid", "display_value", "title", "name", "status",
                     "membership_record_status", "start_date", "end_date", "start_datetime", "date", "due_date"),
                    ("string",)),
    **dict.fromkeys(("person_ref", "booking_uri", "destination", "member", "membership_type", "person"),
                    ("string", "object")),
    **dict.fromkeys(("completed", "guest", "cancelled"), ("boolean",)),
    **dict.fromkeys(("available", "total", "page", "page_size"), ("number",)),
    "count": ("number", "string"),  # the tools also read a count sent as a string of digits
    "data": ("object",),
    **dict.fromkeys(("record_state", "state"), ("string",)),
    "has_renewed": ("boolean",),
    "email": ("list", "string"),  # a v1 positional list (nulls kept), or one address
    "member_till_plus_grace": ("string",),
}
DATES = frozenset({"start_date", "end_date", "start_datetime", "date", "due_date", "member_till_plus_grace"})
# Core fields whose null is a value, not a loss: a state or flag not set, which the tools read as not deleted, not
# renewed, not cancelled (the v1 notes: a v1 record keeps every schema key, empty as null). Their loss (the key gone
# from every record) is drift; null in every record sampled is not.
NULLABLE = frozenset({"record_state", "state", "has_renewed", "cancelled"})
