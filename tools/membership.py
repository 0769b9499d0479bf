"""check_membership: is this person a member today, on which plan, until when."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from sheepcrm_mcp.server.toolkit import Deps, Input, Output, ReadTool, Refusal, ToolSpec
from sheepcrm_mcp.sheepcrm import ConflictError, NotFoundError
from sheepcrm_mcp.sheepcrm.scope import RecordUri, parse_uri
from sheepcrm_mcp.tools.common import Detail, day, rows, text, today

Status = Literal["current", "lapsed", "future", "none"]


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
    plan: str | None
    status: Status
    start_date: str | None
    end_date: str | None
    membership_number: str | None = None
    record_status: str | None = None


class MembershipAnswer(Output):
    contact_uri: str
    name: str | None = None
    is_member: bool = Field(description="True when a membership covers today.")
    status: Status = Field(description="current, future (starts later), lapsed (ended) or none (never).")
    plan: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    days_left: int | None = Field(None, description="Days until end_date when current.")
    membership_number: str | None = None
    summary: str = Field(description="One sentence to tell the person asking.")
    history: list[MembershipRecord] | None = Field(None, description="Only with detail='full'.")


def classify(m: dict[str, Any], on: date) -> Status:
    start, end = day(m.get("start_date")), day(m.get("end_date"))
    if text(m.get("cancellation_date")) and (d := day(m.get("cancellation_date"))) and d <= on:
        return "lapsed"
    if start and start > on:
        return "future"
    if end and end < on:
        return "lapsed"
    return "current" if start else "none"


def record(m: dict[str, Any], on: date) -> MembershipRecord:
    return MembershipRecord(
        plan=text(m.get("membership_type_display")) or text(m.get("display_value")),
        status=classify(m, on),
        start_date=text(m.get("start_date")),
        end_date=text(m.get("end_date")),
        membership_number=text(m.get("membership_number")),
        record_status=text(m.get("membership_record_status")),
    )


async def _uri_for_email(email: str, deps: Deps) -> tuple[RecordUri, str | None]:
    try:
        found = await deps.client.membership_by_email(email)
    except NotFoundError:
        raise Refusal(
            f"No contact has the email {email!r}. Check the spelling, or find the person with "
            "search_contacts (by name) and pass its uri."
        ) from None
    except ConflictError:
        raise Refusal(
            f"Several contacts share the email {email!r}. Call search_contacts with email={email!r}, "
            "pick the right person and pass its uri instead."
        ) from None
    person = text(found.get("person"))
    if not person:
        raise Refusal(f"sheepCRM gave no contact for {email!r}; use search_contacts and pass a uri.")
    name = " ".join(filter(None, [text(found.get("first_name")), text(found.get("last_name"))])) or None
    return parse_uri(person, deps.client.bucket), name


async def check_membership(req: CheckMembershipInput, deps: Deps) -> MembershipAnswer:
    name: str | None = None
    if req.email:
        uri, name = await _uri_for_email(req.email, deps)
    else:
        assert req.uri is not None
        uri = parse_uri(req.uri, deps.client.bucket)
    try:
        data = await deps.client.memberships(uri)
    except NotFoundError:
        raise Refusal(f"No contact {uri} - find the person with search_contacts and pass its uri.") from None
    on = today()
    records = sorted(
        (record(m, on) for m in rows(data, "memberships")), key=lambda r: (r.start_date or "", r.end_date or "")
    )
    order: dict[Status, int] = {"current": 0, "future": 1, "lapsed": 2, "none": 3}
    best = min(records, key=lambda r: (order[r.status], -(day(r.end_date) or on).toordinal()), default=None)
    who = name or str(uri)
    if best is None or best.status == "none":
        answer = MembershipAnswer(
            contact_uri=str(uri),
            name=name,
            is_member=False,
            status="none",
            summary=f"{who} has no membership on record.",
        )
    else:
        end = day(best.end_date)
        days_left = (end - on).days if end and best.status == "current" else None
        summary = {
            "current": f"{who} is a current {best.plan} member until {best.end_date} ({days_left} days left).",
            "future": f"{who} is not a member yet: a {best.plan} membership starts on {best.start_date}.",
            "lapsed": f"{who} is not a member: the {best.plan} membership ended on {best.end_date}.",
        }[best.status]
        answer = MembershipAnswer(
            contact_uri=str(uri),
            name=name,
            is_member=best.status == "current",
            status=best.status,
            plan=best.plan,
            start_date=best.start_date,
            end_date=best.end_date,
            days_left=days_left,
            membership_number=best.membership_number,
            summary=summary,
        )
    if req.detail == "full":
        answer.history = records
    return answer


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="check_membership",
        title="Check membership",
        description="Is this person (uri or email) a member today? Status, plan, dates, days left, summary. "
        "full: history.",
        toolset="membership",
        input=CheckMembershipInput,
        output=MembershipAnswer,
        handler=check_membership,
    ),
]
