"""check_membership: is this person a member today, on which plan, until when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, Literal

import anyio
from pydantic import Field, model_validator

from sheepcrm_mcp.server.errors import Refusal, or_refuse
from sheepcrm_mcp.server.specs import Deps, Input, Output, ReadTool, ToolSpec
from sheepcrm_mcp.sheepcrm import ConflictError, NotFoundError, SheepError
from sheepcrm_mcp.sheepcrm.errors import V1_404_CAVEAT
from sheepcrm_mcp.sheepcrm.scope import RecordUri, parse_uri
from sheepcrm_mcp.tools.common import Detail, day, ref, rows, text, today

Status = Literal["current", "grace", "unpaid", "lapsed", "future", "none"]


class CheckMembershipInput(Input):
    uri: Annotated[str | None, Field(max_length=200, description="Contact uri.")] = None
    email: Annotated[str | None, Field(max_length=200, description="Or email.")] = None
    detail: Detail = "concise"

    @model_validator(mode="after")
    def _one(self) -> CheckMembershipInput:
        if bool(self.uri) == bool(self.email):
            raise ValueError("give exactly one of uri or email")
        return self


class MembershipRecord(Output):
    uri: str | None = None
    plan: str | None = None
    status: Status
    start_date: str | None = None
    end_date: str | None = None
    membership_number: str | None = None
    record_status: str | None = Field(None, description="sheepCRM's membership_record_status, verbatim.")
    paid: bool | None = None


class MembershipAnswer(Output):
    contact_uri: str | None = None
    name: str | None = None
    membership_uri: str | None = None
    is_member: bool = Field(description="True when a paid, active, not deleted membership covers today.")
    status: Status = Field(
        description="current, grace (ended, within sheepCRM's grace period), unpaid, future, lapsed or none."
    )
    plan: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    grace_until: str | None = None
    days_left: int | None = Field(None, description="Days until end_date when current.")
    membership_number: str | None = None
    summary: str = Field(description="One sentence to tell the person asking.")
    history: list[MembershipRecord] | None = Field(None, description="Only with detail='full'.")


def classify(m: dict[str, Any], on: date) -> Status:
    """By dates, then by what sheepCRM says of the record: only a paid record whose
    membership_record_status (when given) is "active" can be current."""
    start, end = day(m.get("start_date")), day(m.get("end_date"))
    if (d := day(m.get("cancellation_date"))) and d <= on:
        return "lapsed"
    if start and start > on:
        return "future"
    if end and end < on:
        return "lapsed"
    if not start:
        return "none"
    if m.get("paid") is False:
        return "unpaid"
    record_status = text(m.get("membership_record_status"))
    if record_status and record_status.lower() != "active":
        return "lapsed"
    return "current"


def record(m: dict[str, Any], on: date, plans: dict[str, str]) -> MembershipRecord:
    paid = m.get("paid")
    return MembershipRecord(
        uri=text(m.get("uri")),
        plan=plans.get(ref(m.get("membership_type")) or "") or text(m.get("display_value")),
        status=classify(m, on),
        start_date=text(m.get("start_date")),
        end_date=text(m.get("end_date")),
        membership_number=text(m.get("membership_number")),
        record_status=text(m.get("membership_record_status")),
        paid=paid if isinstance(paid, bool) else None,
    )


async def plan_names(members: list[dict[str, Any]], deps: Deps) -> dict[str, str]:
    """Plan names from each membership_type uri ("the URI of the membership plan") via /display."""
    names: dict[str, str] = {}
    for uri in {u for m in members if (u := ref(m.get("membership_type")))}:
        parts = uri.strip("/").split("/")
        if len(parts) != 3:
            continue
        try:
            if name := await deps.client.display(parts[1], parts[2]):
                names[uri] = name
        except SheepError:
            continue
    return names


class NotInCrm(Exception):
    """No contact has this email: an answer ("not a member"), not a failure."""


async def _by_email(email: str, deps: Deps) -> tuple[RecordUri, dict[str, Any]]:
    try:
        found = await deps.client.membership_by_email(email)
    except NotFoundError:
        raise NotInCrm from None
    except ConflictError:
        raise Refusal(
            f"Several contacts share the email {email!r}. Call search_contacts with email={email!r}, "
            "pick the right person and pass its uri instead."
        ) from None
    person = ref(found.get("person"))
    if not person:
        raise Refusal(f"sheepCRM gave no contact for {email!r}; use search_contacts and pass a uri.")
    return parse_uri(person, deps.client.bucket), found


SUMMARIES = {
    "current": "{who} is a current {plan} member until {end} ({days} days left).",
    "grace": "{who} is not a current member: the {plan} membership ended on {end}, but sheepCRM's grace period "
    "runs until {grace}.",
    "unpaid": "{who} is not a current member: the {plan} membership covering today is not paid.",
    "future": "{who} is not a member yet: a {plan} membership starts on {start}.",
    "lapsed": "{who} is not a member: the {plan} membership ended on {end}.",
}


async def check_membership(req: CheckMembershipInput, deps: Deps) -> MembershipAnswer:
    v1: dict[str, Any] = {}
    if req.email:
        try:
            uri, v1 = await _by_email(req.email, deps)
        except NotInCrm:
            return MembershipAnswer(
                is_member=False, status="none",
                summary=f"No contact in the CRM has the email {req.email}, so it is not a member's email. Check the "
                f"spelling, or find the person by name with search_contacts. {V1_404_CAVEAT}",
            )
    else:
        assert req.uri is not None
        uri = parse_uri(req.uri, deps.client.bucket)
    name = " ".join(filter(None, [text(v1.get("first_name")), text(v1.get("last_name"))])) or None
    if name is None:
        try:
            name = await deps.client.display(uri.type, uri.uid)
        except SheepError:
            name = None
    data = await or_refuse(
        deps.client.memberships(uri), f"No contact {uri} - find the person with search_contacts and pass its uri."
    )
    members = [m for m in rows(data, "memberships") if text(m.get("record_state")) != "deleted"]
    on = today()
    plans = await plan_names(members, deps)
    records = sorted((record(m, on, plans) for m in members), key=lambda r: (r.start_date or "", r.end_date or ""))
    order: dict[Status, int] = {"current": 0, "unpaid": 1, "future": 2, "lapsed": 3, "grace": 3, "none": 4}
    best = min(records, key=lambda r: (order[r.status], -(day(r.end_date) or on).toordinal()), default=None)
    who = name or str(uri)
    grace = text(v1.get("member_till_plus_grace"))
    if best is None or best.status == "none":
        return MembershipAnswer(
            contact_uri=str(uri), name=name, is_member=False, status="none",
            summary=f"{who} has no membership on record.", history=records if req.detail == "full" else None,
        )
    status = best.status
    if status == "lapsed" and (g := day(grace)) and g >= on and text(v1.get("membership_record_status")) == "active":
        status = "grace"
    end = day(best.end_date)
    days_left = (end - on).days if end and status == "current" else None
    plan = best.plan or (text(v1.get("active_memberships_for_display")) if status == "current" else None) or "(unnamed)"
    summary = SUMMARIES[status].format(
        who=who, plan=plan, end=best.end_date, days=days_left, start=best.start_date, grace=grace
    )
    return MembershipAnswer(
        contact_uri=str(uri),
        name=name,
        membership_uri=best.uri,
        is_member=status == "current",
        status=status,
        plan=best.plan,
        start_date=best.start_date,
        end_date=best.end_date,
        grace_until=grace if status == "grace" else None,
        days_left=days_left,
        membership_number=best.membership_number,
        summary=summary,
        history=records if req.detail == "full" else None,
    )


# ---- members by renewal date or plan (search_contacts' membership filters) -------------------


@dataclass
class MemberRow:
    contact_uri: str
    name: str | None
    membership_uri: str
    plan: str | None
    end_date: str | None


@dataclass
class MembersPage:
    rows: list[MemberRow]
    plans: list[str]
    total: int | None
    next_offset: int | None


async def _plans(deps: Deps) -> dict[str, str]:
    """Plan uri -> name, from the v1 listing of membership_type records."""
    data = await deps.client.resources("membership_type", {}, page_size=100)
    return {u: text(r.get("display_value")) or u for r in rows(data, "results") if (u := text(r.get("uri")))}


async def current_members(
    deps: Deps, ends_within_days: int | None, plan: str | None, offset: int, limit: int
) -> MembersPage:
    """Current memberships (covering today, paid, active, not deleted) from the v1 listing of `member` records
    with field filters (v1 notes: end_date__gte, end_date__lte, membership_type), paged upstream; the plans by name."""
    plans = await _plans(deps)
    on = today()
    filters = {"start_date__lte": on.isoformat(), "end_date__gte": on.isoformat()}
    if ends_within_days is not None:
        filters["end_date__lte"] = (on + timedelta(days=ends_within_days)).isoformat()
    if plan:
        wanted = plan.strip().lower()
        uri = next((u for u, n in plans.items() if wanted in (u.lower(), n.lower())), None)
        if uri is None:
            raise Refusal(f"No plan named {plan!r}; the plans are: {', '.join(sorted(plans.values()))}.")
        filters["membership_type"] = uri
    data = await deps.client.resources("member", filters, page=offset // limit + 1, page_size=limit)
    raw = rows(data, "results")
    # The listing filters by dates only; "current" also means paid, active and not deleted, as check_membership says.
    found = [r for r in raw if _current_record(r.get("data") or {}, on)]
    names = await _display_names({c for r in found if (c := ref((r.get("data") or {}).get("member")))}, deps)
    out = []
    for r in found:
        d: dict[str, Any] = r.get("data") or {}
        contact = ref(d.get("member")) or ""
        out.append(
            MemberRow(
                contact_uri=contact,
                name=names.get(contact),
                membership_uri=text(r.get("uri")) or "",
                plan=plans.get(ref(d.get("membership_type")) or ""),
                end_date=text(d.get("end_date")),
            )
        )
    out.sort(key=lambda m: m.end_date or "")
    total = data.get("total") if isinstance(data.get("total"), int) else None
    end = offset + len(raw)
    more = end < total if total is not None else len(raw) >= limit
    if len(found) != len(raw):
        total = None  # sheepCRM's total counts the unpaid or inactive records left out here
    return MembersPage(out, sorted(plans.values()), total, end if more else None)


def _current_record(data: dict[str, Any], on: date) -> bool:
    return text(data.get("record_state")) != "deleted" and classify(data, on) == "current"


async def _display_names(uris: set[str], deps: Deps) -> dict[str, str]:
    names: dict[str, str] = {}

    async def one(uri: str) -> None:
        parts = uri.strip("/").split("/")
        if len(parts) == 3:
            try:
                if name := await deps.client.display(parts[1], parts[2]):
                    names[uri] = name
            except SheepError:
                return

    async with anyio.create_task_group() as tg:
        for uri in uris:
            tg.start_soon(one, uri)
    return names


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="check_membership",
        title="Check membership",
        description="Is this person (uri or email) a member today? Status (paid, active, grace), plan, dates, "
        "days left, summary. full: history.",
        toolset="membership",
        input=CheckMembershipInput,
        output=MembershipAnswer,
        handler=check_membership,
    ),
]
