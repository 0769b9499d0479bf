"""Variants: the other answers sheepCRM's documents allow where they are silent.

The sandbox has to pick one answer wherever the documents (openapi.yaml, the tasks cuts, the v1 notes) and the
public evidence leave a choice open; sandbox/README.md lists each choice. A variant serves another answer the
documents equally allow for one of those choices, so the tools are tested against more than the sandbox's own
reading. `SandboxServer(variant=...)`, `python -m sheepcrm_mcp.sandbox --variant NAME` or `SANDBOX_VARIANT=NAME`
picks one; the default is none (the sandbox's own choices).

Some variants change the seeded data (`reshape`, applied once after the build, with no audit entry and no
change of `last_updated`: the data was always so); the others change how an endpoint answers (app.py asks
`active(request, name)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sheepcrm_mcp.sandbox.records import now_utc

if TYPE_CHECKING:
    from starlette.requests import Request

    from sheepcrm_mcp.sandbox.store import Store


@dataclass(frozen=True)
class Variant:
    name: str
    choice: str  # the silent choice it varies (README, "Where the documents are silent")
    serves: str  # what it serves instead


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "person-record", "person search 200 body",
        "what public evidence shows: one match answers the full person record (several: 409 unless "
        "take_first_if_multiple), and names and postcode match case-sensitively",
    ),
    Variant(
        "bare-404", "person search 404 body",
        "the person search's 404 (no match) with no body at all: openapi.yaml documents the status, not a body",
    ),
    Variant(
        "other-wrappers", "bodies with no documented schema",
        "person search `{\"people\": [...]}`, help search `{\"hits\": [...]}`, segment members "
        "`{\"members\": [...]}`: keys no client can know",
    ),
    Variant(
        "statuses", "membership status vocabulary",
        "the vendor's other statuses and one nobody documents: current records `renewal_due`, lapsed ones "
        "`cancelled`, the unpaid one `incomplete`",
    ),
    Variant(
        "has-renewed", "`has_renewed` never on current records",
        "`has_renewed: true` on every current membership that ends within 60 days (renewed early)",
    ),
    Variant(
        "orders-by-buyer", "orders derived from attendance",
        "a person's orders are the events they bought for; an attendee booked by someone else has no order",
    ),
    Variant(
        "one-session", "attendance PUT with several sessions",
        "the PUT sets only the person's first live session, and its answer lists that one",
    ),
    Variant(
        "user-display", "display of a user",
        "users are named only in their own bucket (`/api/v2/sheepcrm/user/{uid}/display`); audit entries carry "
        "no name",
    ),
    Variant(
        "v1-paging", "v1 paging parameters",
        "v1 listings ignore `page`/`page_size` (they page with `limit`/`skip`) and echo their defaults",
    ),
    Variant(
        "deleted-listed", "deleted records in listings",
        "v1 listings include deleted records (contacts deleted through the API too), marked only by the v1 notes' "
        "`state` (on the row and in `meta`); a deleted contact's own address still answers its record, marked "
        "`state: deleted` in `meta`",
    ),
    Variant(
        "connections-endpoint", "`connections` as a list on the record",
        "person and organisation records carry no `connections`; the links exist only at the connections "
        "endpoint",
    ),
    Variant(
        "labelled-lists", "v1 list values",
        "every v1 email and telephone value stored as `value;label`",
    ),
    Variant(
        "extra-keys", "extra event keys",
        "events carry more of EventSingle's documented keys (`has_available_tickets`, `total_stock_available`, "
        "`member_only_event`, `multi_day`, `hide_from_self_service`, ...)",
    ),
    Variant(
        "create-unnamed", "create answers",
        "a v1 create answers 201 without the `Location` header (the new record is not named)",
    ),
    Variant(
        "create-200", "create answers",
        "a v1 create answers 200 instead of the documented 201 (with `Location`)",
    ),
    Variant(
        "page-cap", "v2 page sizes",
        "v2 lists (events, segments, segment members) serve at most 100 records a page (PAGE_CAP), whatever "
        "`page_size` asks",
    ),
    Variant(
        "filters-ignored", "v1 listing field filters",
        "v1 listings ignore filters on `start_date` (each resource's schema defines its filters; the notes do not "
        "say which)",
    ),
    Variant(
        "member-filters-ignored", "v1 listing field filters",
        "v1 `member` listings ignore every field filter (`member`, `membership_type`, `end_date__lte`, ...): they "
        "answer every membership record",
    ),
    Variant(
        "plain-prefix", "v1 plain field filters",
        "a plain v1 filter (`first_name=Jan`) matches values that start with it, in any case (`Janet`), as "
        "`__startswithi` does",
    ),
    Variant(
        "tasks-2024", "tasks wrapper and names",
        "the 2024-12 task list: `{\"tasks\": [...]}` without `total` or `user_uri`, and only the 2024-12 names "
        "(`date`, `assigned_to`), no `due_date`/`allocated_to`; `include_completed` ignored (open tasks only); at most "
        "PAGE_CAP tasks whatever `page_size` asks",
    ),
    Variant(
        "snooze-due-date", "snooze effect",
        "a snooze moves the 2025-02 draft's `due_date` only; the 2024-12 `date` keeps the due date it had (which "
        "field moves is unstated)",
    ),
    Variant(
        "guest-ref-booker", "guests",
        "a guest session's `person_ref` is the guest's own contact and `guest_ref` the booker's (the other reading "
        "of two refs no document defines); orders stay the booker's",
    ),
    Variant(
        "lookup-uid-only", "segment lookup `q`",
        "the segment lookup matches `q` only as a member's uid (openapi.yaml types it `uid`): a name or email finds "
        "no one",
    ),
)
PAGE_CAP = 100  # records per page of a v2 list under variant page-cap
NAMES: tuple[str, ...] = tuple(v.name for v in VARIANTS)
ENV = "SANDBOX_VARIANT"


def check(name: str | None) -> str | None:
    """The variant's name, None for the sandbox's own choices; ValueError for an unknown one."""
    if not name:
        return None
    if name not in NAMES:
        raise ValueError(f"unknown sandbox variant {name!r}; choose from {', '.join(NAMES)}")
    return name


def active(request: Request, name: str) -> bool:
    """Whether the app serving `request` runs variant `name`."""
    return bool(getattr(request.app.state, "variant", None) == name)


def reshape(store: Store, name: str | None) -> None:
    """The variants that change the seeded data, applied once right after the build."""
    if name == "statuses":
        _statuses(store)
    elif name == "has-renewed":
        _has_renewed(store)
    elif name == "connections-endpoint":
        for rtype in ("person", "organisation"):
            for record in store.by_type(rtype):
                if "connections" in record.data:
                    store.replace_data(record.uri, {k: v for k, v in record.data.items() if k != "connections"})
    elif name == "guest-ref-booker":
        for session in store.by_type("attendance"):
            d = session.data
            if d.get("guest") is True:  # `booker`: the sandbox's own note of who booked, for the orders (never sent)
                booker = d.get("person_ref")
                store.replace_data(session.uri, {**d, "person_ref": d.get("guest_ref"), "guest_ref": booker,
                                                 "booker": booker})
    elif name == "labelled-lists":
        labels = {"email": "home", "telephone": "mobile"}
        for rtype in ("person", "organisation"):
            for record in store.by_type(rtype):
                data = dict(record.data)
                for field, label in labels.items():
                    data[field] = [f"{v};{label}" if v else v for v in data.get(field) or []]
                store.replace_data(record.uri, data)


def _statuses(store: Store) -> None:
    today = now_utc().date().isoformat()
    for member in store.by_type("member"):
        d = member.data
        if not d["paid"]:
            status = "incomplete"
        elif d["start_date"] <= today <= d["end_date"]:
            status = "renewal_due"
        elif d["end_date"] < today:
            status = "cancelled"
        else:
            continue
        store.replace_data(member.uri, {**d, "membership_record_status": status})


def _has_renewed(store: Store) -> None:
    today = now_utc().date()
    soon = (today + timedelta(days=60)).isoformat()
    for member in store.by_type("member"):
        d = member.data
        if d["paid"] and d["start_date"] <= today.isoformat() <= d["end_date"] <= soon:
            store.replace_data(member.uri, {**d, "has_renewed": True})


EXTRA_EVENT_KEYS = (
    "has_available_tickets", "total_stock", "total_stock_allocated", "total_stock_available", "member_only_event",
    "multi_day", "hide_from_self_service", "has_cancelled", "length_display", "resource_type",
)


def extra_event_keys(event: dict[str, Any], tickets: list[dict[str, Any]]) -> dict[str, Any]:
    """More of EventSingle's documented keys, with values consistent with the event and its tickets."""
    total = sum(int(t.get("total") or 0) for t in tickets)
    allocated = sum(int(t.get("allocated") or 0) for t in tickets)
    available = sum(int(t.get("available") or 0) for t in tickets)
    multi = event.get("start_date") != event.get("end_date")
    return {
        **event,
        "has_available_tickets": available > 0,
        "total_stock": total,
        "total_stock_allocated": allocated,
        "total_stock_available": available,
        "member_only_event": bool(tickets) and all(t.get("member_only") for t in tickets),
        "multi_day": multi,
        "hide_from_self_service": False,
        "has_cancelled": bool(event.get("cancelled")),
        "length_display": "several days" if multi else "3 hours",
        "resource_type": "booking",
    }

