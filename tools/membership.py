"""check_membership: is this person a member today, on which plan, until when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, Literal

import anyio
from pydantic import Field, model_validator

from sheepcrm_mcp.server.errors import Refusal, or_refuse
from sheepcrm_mcp.server.specs import Deps, Input, Output, ReadTool, ToolSpec
from sheepcrm_mcp.server.writes import visible
from sheepcrm_mcp.sheepcrm import ConflictError, NotFoundError, SheepError, UpstreamError
from sheepcrm_mcp.sheepcrm.errors import V1_404_CAVEAT
from sheepcrm_mcp.sheepcrm.scope import CONTACT_TYPES, RecordUri, parse_uri
from sheepcrm_mcp.tools.common import (
    Detail,
    an_object,
    count_of,
    day,
    deleted,
    email_addresses,
    flag,
    fold,
    listed,
    plain,
    record_data,
    ref,
    split_label,
    text,
    today,
    v1_all,
    v1_listing,
    v1_none_found,
    v1_page,
)

Status = Literal["current", "grace", "unpaid", "pending", "future", "lapsed", "cancelled", "none", "unknown"]
# The vendor's six membership record statuses (shared/sheepcrm-api/EVIDENCE.md, "membership record status"), matched
# case-insensitively; any other value is answered as `unknown`, naming it, never guessed into a yes or a no.
RECORD_STATUSES = ("active", "lapsed", "cancelled", "future", "incomplete", "pending")


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
    auto_renew: bool | None = None
    has_renewed: bool | None = None
    advise_lapse: bool | None = None
    payment_method: str | None = None


class Renewal(Output):
    """What a help desk needs for "why did I get a reminder?", as the record has it (absent: not stated)."""

    auto_renew: bool | None = None
    has_renewed: bool | None = None
    advise_lapse: bool | None = None
    payment_method: str | None = None


class MembershipAnswer(Output):
    contact_uri: str | None = None
    name: str | None = None
    membership_uri: str | None = None
    is_member: bool | None = Field(
        None, description="True when a paid, active, not deleted membership covers today; absent when unknown."
    )
    status: Status = Field(
        description="current, grace (ended, within sheepCRM's grace period), unpaid, pending (sign-up not complete), "
        "future, lapsed, cancelled, none or unknown (sheepCRM's answer could not be interpreted: say so)."
    )
    plan: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    grace_until: str | None = None
    days_left: int | None = Field(None, description="Days until end_date when current.")
    membership_number: str | None = None
    renewal: Renewal | None = None
    summary: str = Field(description="One sentence to tell the person asking.")
    note: str | None = Field(None, description="For staff, not to repeat to a member.")
    history: list[MembershipRecord] | None = Field(None, description="Only with detail='full'.")


def _unreadable_date(m: dict[str, Any], key: str) -> bool:
    return text(m.get(key)) is not None and day(m.get(key)) is None


def classify(m: dict[str, Any], on: date) -> Status:
    """A status outside sheepCRM's six, or a date that cannot be read, is unknown whatever else the record says;
    then by dates, then by what sheepCRM says of the record. Only a paid record whose membership_record_status is
    "active" can be current; a record covering today with no status is unknown."""
    if any(_unreadable_date(m, k) for k in ("start_date", "end_date", "cancellation_date")):
        return "unknown"
    start, end = day(m.get("start_date")), day(m.get("end_date"))
    record_status = (text(m.get("membership_record_status")) or "").lower() or None
    if record_status is not None and record_status not in RECORD_STATUSES:
        return "unknown"  # a status we do not know may mean anything, whatever the dates say
    if record_status == "cancelled" or ((d := day(m.get("cancellation_date"))) and d <= on):
        return "cancelled"
    if start and start > on:
        return "future"
    if end and end < on:
        return "lapsed"
    if not start:
        return "unknown"  # a record with no start date says nothing of when it covers: not "no membership"
    if record_status in ("pending", "incomplete"):
        return "pending"
    if m.get("paid") is False:
        return "unpaid"
    if record_status == "lapsed":
        return "lapsed"  # sheepCRM says so although the dates cover today
    if record_status == "future":
        return "future"
    if record_status is None:
        return "unknown"  # the field that decides: a record that does not say it is active is not "current"
    if not isinstance(m.get("paid"), bool):
        return "unknown"  # `paid` is optional (openapi.yaml): a record that does not say it is paid is not "current"
    return "current"


def record(m: dict[str, Any], on: date, plans: dict[str, str]) -> MembershipRecord:
    return MembershipRecord(
        uri=text(m.get("uri")),
        plan=plans.get(ref(m.get("membership_type")) or "") or text(m.get("display_value")),
        status=classify(m, on),
        start_date=text(m.get("start_date")),
        end_date=text(m.get("end_date")),
        membership_number=text(m.get("membership_number")),
        record_status=text(m.get("membership_record_status")),
        paid=flag(m.get("paid")),
        auto_renew=flag(m.get("auto_renew")),
        has_renewed=flag(m.get("has_renewed")),
        advise_lapse=flag(m.get("advise_lapse")),
        payment_method=text(m.get("payment_method")),
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


async def with_email(
    client: Any, email: str, types: tuple[str, ...] = CONTACT_TYPES
) -> dict[str, list[dict[str, Any]]]:
    """The contacts whose email is this address, by type (of `types`: person, organisation): the v1 listings
    filtered with `email__startswithi` (list values may carry a label, `x@y;home`, that an exact filter misses), each
    read whole, then each address compared whole, case folded; deleted records left out. The one check of who has
    an email (create_contact, update_contact, the membership lookup by email, search_contacts' organisations by
    email). A listing that cannot be read whole raises
    UpstreamError (could not check, never "nobody has it")."""
    wanted = fold(email)
    found: dict[str, list[dict[str, Any]]] = {}
    for rtype in types:
        what = f"the {rtype} listing by email"
        listing = v1_listing(client, rtype, {"email__startswithi": email})
        rows, unread = await v1_all(listing, what, EMAIL_PAGE, EMAIL_PAGES)
        if unread:
            raise UpstreamError(unread)
        found[rtype] = []
        for row in rows:
            if wanted in email_addresses(record_data(row, what).get("email")) and not deleted(row):
                found[rtype].append(row)
    return found


async def listed_by_email(email: str, client: Any) -> RecordUri:
    """The one contact with this email, looked up as create_contact does (with_email). Only listings read whole
    that hold no such address are "no contact" (NotInCrm); a listing that cannot be read is "could not look up",
    never "no contact"."""
    try:
        found = [text(row.get("uri")) or "" for rows in (await with_email(client, email)).values() for row in rows]
    except SheepError as exc:
        raise UpstreamError(
            f"Could not look up the email {email!r}: sheepCRM's membership lookup did not find it and its contact "
            f"listings could not be read ({exc}). This is not 'no contact': whether it is a member's email is "
            "unknown; try again, or find the person with search_contacts."
        ) from None
    if not found:
        await v1_none_found(client, "the membership lookup by email")
        raise NotInCrm
    if len(set(found)) > 1:
        raise Refusal(SHARED.format(email=email))
    try:
        return parse_uri(found[0], client.bucket)
    except ValueError:
        raise UpstreamError(
            f"Could not look up the email {email!r}: the contact sheepCRM's listing gives for it has no uri that "
            "could be read. This is not 'no contact'."
        ) from None


EMAIL_PAGE = 25  # contacts per page of a listing by email
EMAIL_PAGES = 4  # more contacts than this whose email starts so: the lookup says it could not tell
SHARED = (
    "Several contacts share the email {email!r}. Call search_contacts with email={email!r}, pick the right person "
    "and pass its uri instead."
)


async def _by_email(email: str, deps: Deps) -> tuple[RecordUri, dict[str, Any], str | None]:
    """The contact with this email and sheepCRM's membership-by-email answer about it ({} when it had none), and a
    note. A 404 is "no such email" in the v1 notes, but that lookup answers from cached data and a 404 has other
    causes: it is checked with the contact listings before it is taken as "no contact"."""
    try:
        found = await deps.client.membership_by_email(email)
    except NotFoundError:
        uri = await listed_by_email(email, deps.client)
        return uri, {}, (
            "sheepCRM's membership lookup by email answered 404 (it answers from cached data), but its contact "
            "listing has this email: the contact's memberships were read instead."
        )
    except ConflictError:
        raise Refusal(SHARED.format(email=email)) from None
    person = ref(an_object(found, "the membership lookup by email").get("person"))
    if not person:
        raise Refusal(f"sheepCRM gave no contact for {email!r}; use search_contacts and pass a uri.")
    return parse_uri(person, deps.client.bucket), found, None


async def grace_of(uri: RecordUri, v1: dict[str, Any], deps: Deps) -> tuple[str | None, str | None]:
    """(member_till_plus_grace, a note when it could not be learned). sheepCRM states the grace period only in its
    membership-by-email answer, so for a uri the contact's own email is asked, and the answer is used only when it
    is about this contact."""
    unknown = "Whether sheepCRM's grace period still applies could not be checked"
    missing = f"{unknown}: sheepCRM's membership-by-email answer has no `member_till_plus_grace`."
    if v1:
        return text(v1.get("member_till_plus_grace")), None if "member_till_plus_grace" in v1 else missing
    try:
        contact = await deps.client.record(uri)
        email = plain(record_data(contact, "the contact's record").get("email"))
        if not email:
            return None, f"{unknown}: the contact has no email to ask sheepCRM's membership-by-email with."
        found = await deps.client.membership_by_email(email)
    except ConflictError:
        return None, f"{unknown}: the contact's email is shared by several contacts."
    except SheepError as exc:
        return None, f"{unknown} ({exc})."
    if ref(an_object(found, "the membership lookup by email").get("person")) != str(uri):
        return None, f"{unknown}: sheepCRM's membership-by-email answer is about another contact."
    return text(found.get("member_till_plus_grace")), None if "member_till_plus_grace" in found else missing


def _every(names: Any, shown: int = 4) -> str | None:
    """Every name of a list sheepCRM gives (or the one name), in one phrase: "A", "A and B", "A, B, C, D and 2
    more"; None when there is none."""
    given = [n for v in (names if isinstance(names, list) else [names]) if (n := text(v))]
    if len(given) > shown + 1:
        given = [*given[:shown], f"{len(given) - shown} more"]
    return " and ".join(filter(None, [", ".join(given[:-1]), given[-1]])) if given else None


SUMMARIES = {
    "current": "{who} is a current {plan} member until {end} ({days} days left).",
    "open": "{who} is a current {plan} member: the membership has no end date recorded (open-ended).",
    "grace": "{who} is not a current member: the {plan} membership ended on {end}, but sheepCRM's grace period "
    "runs until {grace}.",
    "unpaid": "{who} is not a current member: the {plan} membership covering today is not paid.",
    "pending": "{who} is not a current member yet: the sign-up for the {plan} membership is not complete in sheepCRM "
    "(status '{record_status}'{payment}).",
    "future": "{who} is not a member yet: a {plan} membership starts on {start}.",
    "lapsed": "{who} is not a member: the {plan} membership ended on {end}.",
    "cancelled": "{who} is not a member: the {plan} membership was cancelled{cancelled}.",
    "marked": "{who} is not a current member: sheepCRM marks the {plan} membership '{record_status}' although its "
    "dates ({period}) cover today.",
    "unknown": "{who}'s membership is unknown: sheepCRM's answer for the {plan} membership ({period}) could "
    "not be interpreted ({why}). Do not tell the person they are or are not a member; check the record in sheepCRM.",
}
PENDING_PAYMENT = "; usually a payment is missing"  # EVIDENCE.md: said of `pending` only, not of `incomplete`


def period(raw: dict[str, Any]) -> str:
    """A record's dates as a sentence says them: a missing date is "no ... recorded", an unreadable one is named by
    its key, never printed (nor "None")."""

    def one(key: str) -> str | None:
        if _unreadable_date(raw, key):
            return f"an unreadable {key}"
        d = day(raw.get(key))
        return d.isoformat() if d else None

    start, end = one("start_date"), one("end_date")
    if start and end:
        return f"{start} to {end}"
    if start:
        return f"from {start}, no end date recorded"
    if end:
        return f"no start date recorded, until {end}"
    return "no dates recorded"


def on_day(value: str | None) -> str | None:
    """A sheepCRM date or datetime as the date a sentence needs (YYYY-MM-DD); None when missing or unreadable."""
    d = day(value)
    return d.isoformat() if d else None


RENEWAL_FLAGS = ("auto_renew", "has_renewed", "advise_lapse")


def unread_flags(raw: dict[str, Any]) -> str | None:
    """The renewal flags a record carries that are not true or false (named, never their values): not "not stated"."""
    bad = [k for k in RENEWAL_FLAGS if raw.get(k) is not None and not isinstance(raw.get(k), bool)]
    return (f"Could not read {', '.join(f'`{k}`' for k in bad)} on the membership record (not true or false): "
            "unknown, not 'no'.") if bad else None


def _renewal(m: MembershipRecord) -> Renewal | None:
    found = Renewal(
        auto_renew=m.auto_renew, has_renewed=m.has_renewed, advise_lapse=m.advise_lapse, payment_method=m.payment_method
    )
    return found if found.model_dump() else None


def _why_unknown(m: MembershipRecord, raw: dict[str, Any]) -> str:
    bad = [k for k in ("start_date", "end_date", "cancellation_date") if _unreadable_date(raw, k)]
    if bad:
        return f"could not read {', '.join(f'`{k}`' for k in bad)} as a date"
    if day(raw.get("start_date")) is None:
        return "the record has no `start_date`"
    if m.record_status is None:
        return "the record has no `membership_record_status`"
    if not isinstance(raw.get("paid"), bool) and (m.record_status or "active").lower() in RECORD_STATUSES:
        if raw.get("paid") is not None:
            return "could not read `paid` (not true or false)"
        return "the record does not say whether it is paid (no `paid` value)"
    return (
        f"status {visible(m.record_status or '', 40)!r} is not one of sheepCRM's statuses "
        f"({', '.join(RECORD_STATUSES)})"
    )


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.strip("/") == b.strip("/")


def _linked_members(m: dict[str, Any]) -> list[str] | None:
    """The record's `linked_members` (openapi.yaml: a list of contact uris) as uris, a v1 `value;label` label split
    off; None when it is not a list."""
    value = m.get("linked_members")
    if not isinstance(value, list):
        return None
    return [u[0] for v in value if (u := split_label(ref(v)))]


def attribute(uri: RecordUri, found: list[dict[str, Any]], *, listing: bool) -> tuple[list[dict[str, Any]], int, int]:
    """(the records that are this contact's, records of other contacts left out, records that cannot be attributed).
    A record is the contact's when its `member` is the contact, or when another contact is the member and the
    contact is one of its `linked_members`. A record naming no member is the contact's on its own
    membership list (the path says whose it is) but cannot be attributed on a filtered `listing`, which may have
    ignored the filter."""
    mine: list[dict[str, Any]] = []
    others = unattributed = 0
    for m in found:
        member = ref(m.get("member"))
        if member is None:
            if listing:
                unattributed += 1
            else:
                mine.append(m)
        elif _same(member, str(uri)):
            mine.append(m)
        elif (linked := _linked_members(m)) is None:
            unattributed += 1  # another contact's; whether this one is among its linked members cannot be read
        elif any(_same(u, str(uri)) for u in linked):
            mine.append(m)
        else:
            others += 1
    return mine, others, unattributed


async def memberships_of(uri: RecordUri, deps: Deps) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """A contact's membership records, not deleted, a note saying how they were read, and why they could not all
    be read or attributed to the contact (None: all were). sheepCRM's membership list
    (/api/v2{person_uri}membership/all) is documented for people; an organisation's memberships are the v1 `member`
    records whose member it is (v1 resource filter member=<uri>), read page by page and each checked, as a listing
    may not apply a filter. When none of them is current, the memberships of other contacts that list this one
    among their linked members are read too (as_linked): one may cover them."""
    if uri.type != "organisation":
        try:
            data = await deps.client.memberships(uri)
        except NotFoundError:  # no such contact, or the list could not be read: the contact's own record says which
            await or_refuse(
                deps.client.record(uri), f"No contact {uri} - find the person with search_contacts and pass its uri."
            )
            raise UpstreamError(
                f"Could not read the membership list of {uri}: sheepCRM answered 404 for it although the contact "
                "exists. Whether they are a member is unknown (not 'not a member'); check the record in sheepCRM."
            ) from None
        listed_ = listed(data, "the contact's membership list", "memberships")
        found, others, unattributed = attribute(uri, listed_, listing=False)
        note = None
        unread = _uncounted(data, len(listed_))
        what = "record(s) in the contact's membership list"
    else:
        what = "the organisation's membership records"
        listing, unread = await v1_all(v1_listing(deps.client, "member", {"member": str(uri)}), what)
        found, others, unattributed = attribute(uri, _listed_memberships(listing, what), listing=True)
        note = (
            "An organisation: its memberships were read from sheepCRM's v1 membership records whose member is this "
            "organisation (the membership list endpoint is documented for people only)."
        )
        what = "record(s) in sheepCRM's membership listing for this organisation"
    if others:
        note = " ".join(filter(None, [note, f"{others} {what} belong to other contacts (their `member`, and this "
                                      "contact is not among their `linked_members`): left out."]))
    if unattributed:
        unread = " ".join(filter(None, [unread, f"{unattributed} {what} could not be attributed to this contact "
                                        "(no `member` that could be read, or another member and no readable "
                                        "`linked_members`)."]))
    found = [m for m in found if not deleted(m)]
    on = today()
    if not any(classify(m, on) == "current" for m in found):  # another contact's membership may cover this one
        linked, not_read = await as_linked(uri, deps)
        kept = {text(m.get("uri")) for m in found}
        found += [m for m in linked if text(m.get("uri")) not in kept or text(m.get("uri")) is None]
        unread = " ".join(filter(None, [unread, not_read])) or None
    return found, note, unread


AS_LINKED = "the membership records that list this contact among their linked members"


async def as_linked(uri: RecordUri, deps: Deps) -> tuple[list[dict[str, Any]], str | None]:
    """The memberships of other contacts that cover this one as a linked member (openapi.yaml: `linked_members`, a
    list of contact uris), which the contact's own membership list may not hold: the v1 `member` listing filtered
    on `linked_members` (`__startswithi`: a v1 list value may carry a label), read whole, each record checked (a
    listing may not apply a filter); deleted ones left out. And why they could not all be read or checked (None:
    they were), never "none"."""
    try:
        listing, unread = await v1_all(
            v1_listing(deps.client, "member", {"linked_members__startswithi": str(uri)}), AS_LINKED
        )
    except SheepError as exc:
        return [], (f"Could not read {AS_LINKED} ({exc}): whether another contact's membership covers this one is "
                    "unknown.")
    mine: list[dict[str, Any]] = []
    unchecked = 0
    for m in _listed_memberships(listing, AS_LINKED):
        if (linked := _linked_members(m)) is None:
            unchecked += 1  # whether it lists this contact cannot be read
        elif any(_same(u, str(uri)) for u in linked):
            mine.append(m)
    if unchecked:
        unread = " ".join(filter(None, [unread, f"{unchecked} of {AS_LINKED} have no `linked_members` list that "
                                        "could be read: whether they cover this contact is unknown."]))
    return mine, unread


def _listed_memberships(listing: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    """The rows of a v1 `member` listing as membership records (each its `data`, with the row's uri), those marked
    deleted (their state, wherever it is said) left out."""
    return [{**record_data(r, what), "uri": text(r.get("uri"))} for r in listing if not deleted(r)]


def _uncounted(data: Any, sent: int) -> str | None:
    """Why a contact's membership list may not be whole: PersonMembershipAll's `count` ("the number of memberships
    for this contact", openapi.yaml) above the records sent, or a `count` that cannot be read (never its value).
    An answer without a count says nothing either way."""
    if not isinstance(data, dict) or data.get("count") is None:
        return None
    count = count_of(data)
    if count is None:
        return ("Could not read the membership list's `count` (not a whole number), so whether it holds every "
                "membership is unknown.")
    if count > sent:
        return (f"sheepCRM counts {count} memberships for this contact but sent {sent}: the list could not be read "
                "completely.")
    return None


ORDER: dict[Status, int] = {
    "current": 0, "unknown": 1, "pending": 2, "unpaid": 2, "future": 3, "lapsed": 4, "grace": 4, "cancelled": 4,
    "none": 5,
}


async def check_membership(req: CheckMembershipInput, deps: Deps) -> MembershipAnswer:
    v1: dict[str, Any] = {}
    looked_up: str | None = None
    if req.email:
        try:
            uri, v1, looked_up = await _by_email(req.email, deps)
        except NotInCrm:
            return MembershipAnswer(
                is_member=False, status="none",
                summary=f"No contact in the CRM has the email {req.email}, so it is not a member's email. Check the "
                "spelling, or find the person by name with search_contacts.",
                note=V1_404_CAVEAT,
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
    members, note, unread = await memberships_of(uri, deps)
    note = " ".join(filter(None, [looked_up, note])) or None
    on = today()
    plans = await plan_names(members, deps)
    pairs = sorted(
        ((record(m, on, plans), m) for m in members), key=lambda p: (p[0].start_date or "", p[0].end_date or "")
    )
    records = [r for r, _ in pairs]
    best_pair = min(  # the best status, then the latest end (none recorded: open-ended, the latest)
        pairs, key=lambda p: (ORDER[p[0].status], -(day(p[0].end_date) or date.max).toordinal()), default=None
    )
    who = name or str(uri)
    history = records if req.detail == "full" else None
    if unread and (best_pair is None or best_pair[0].status != "current"):  # one not read may be the current one
        return MembershipAnswer(
            contact_uri=str(uri), name=name, is_member=None, status="unknown",
            summary=f"{who}'s membership is unknown: sheepCRM's membership records could not all be read (or "
            "attributed to this contact). Do not tell the person they are or are not a member; check the record in "
            "sheepCRM.",
            note=" ".join(filter(None, [note, unread])), history=history,
        )
    if best_pair is None or best_pair[0].status == "none":
        return MembershipAnswer(
            contact_uri=str(uri), name=name, is_member=False, status="none",
            summary=f"{who} has no membership on record, of their own or as a linked member of another contact's.",
            note=note, history=history,
        )
    best, raw = best_pair
    status: Status = best.status
    end = day(best.end_date)
    grace: str | None = None
    unchecked: str | None = None
    if status == "lapsed" and end is not None and end < on:
        grace, unchecked = await grace_of(uri, v1, deps)
        if (g := day(grace)) and g >= on:
            status = "grace"
        elif grace is not None and g is None:
            unchecked = ("Whether sheepCRM's grace period still applies is unknown: could not read "
                         "`member_till_plus_grace` as a date.")
        note = " ".join(filter(None, [note, unchecked])) or None
    days_left = (end - on).days if end and status == "current" else None
    plan = (
        best.plan
        or (_every(v1.get("active_memberships_for_display")) if status == "current" else None)
        or ("(plan name could not be read)" if ref(raw.get("membership_type")) else "(no plan recorded)")
    )
    form: str = "open" if status == "current" and end is None else status
    start = day(best.start_date)
    if (status == "lapsed" and not (end and end < on)) or (status == "future" and not (start and start > on)):
        form = "marked"  # sheepCRM's status says so; the dates do not
    cancelled = day(raw.get("cancellation_date"))
    summary = SUMMARIES[form].format(
        who=who, plan=plan, end=on_day(best.end_date), days=days_left, start=on_day(best.start_date),
        grace=on_day(grace), period=period(raw),
        record_status=visible(best.record_status or "", 40),
        payment=PENDING_PAYMENT if (best.record_status or "").lower() == "pending" else "",
        cancelled=f" on {cancelled.isoformat()}" if cancelled else "",
        why=_why_unknown(best, raw) if status == "unknown" else "",
    )
    if (via := ref(raw.get("member"))) and not _same(via, str(uri)):  # kept only as one of its linked members
        summary += f" {who} holds it as one of the linked members of {via}'s membership."
    if status == "lapsed" and unchecked:
        summary += " Whether sheepCRM's grace period still applies could not be checked (see the note)."
    note = " ".join(filter(None, [note, unread_flags(raw)])) or None
    return MembershipAnswer(
        contact_uri=str(uri),
        name=name,
        membership_uri=best.uri,
        is_member=None if status == "unknown" else status == "current",
        status=status,
        plan=best.plan,
        start_date=best.start_date,
        end_date=best.end_date,
        grace_until=on_day(grace) if status == "grace" else None,
        days_left=days_left,
        membership_number=best.membership_number,
        renewal=_renewal(best),
        summary=summary,
        note=note,
        history=history,
    )


# ---- members by renewal date or plan (search_contacts' membership filters) -------------------


@dataclass
class MemberRow:
    contact_uri: str
    name: str | None
    email: str | None
    membership_uri: str | None
    plan: str | None
    end_date: str | None
    auto_renew: bool | None
    unknown: str | None = None  # why sheepCRM's record could not be read as current or not


@dataclass
class MembersPage:
    rows: list[MemberRow]
    plans: list[str]
    total: int | None
    next_offset: int | None
    renewed: int = 0  # memberships left out because sheepCRM says they have been renewed
    unread: str | None = None  # why the list could not be read completely, and values that could not be read


async def _plans(deps: Deps) -> tuple[dict[str, str], str | None]:
    """Plan uri -> name, from the v1 listing of membership_type records read page by page, and why it could not be
    read completely (None: it was)."""
    found, unread = await v1_all(v1_listing(deps.client, "membership_type", {}), "the plan listing")
    return {u: text(r.get("display_value")) or u for r in found if (u := text(r.get("uri")))}, unread


async def current_members(
    deps: Deps, ends_within_days: int | None, plan: str | None, offset: int, limit: int
) -> MembersPage:
    """Current memberships (covering today, paid, active, not deleted) from the v1 listing of `member` records
    with field filters (v1 notes: `field__gte`/`__lte` modifiers; each resource's schema defines which fields it
    filters on, and no document says which, so every record is checked here too); the plans by name. The window is
    read whole (at most WINDOW_PAGES pages), soonest end first, so the total counts only current ones; a larger
    window is paged upstream with no total. For a renewal window, memberships sheepCRM marks `has_renewed` are left
    out: nobody needs to chase them."""
    plans, plans_unread = await _plans(deps)
    on = today()
    # The fields are datetimes and how sheepCRM compares them with a bare date is not documented: the filters ask
    # a day wider on each side and Recheck keeps exactly the days asked, so a boundary day is never lost.
    filters = {"start_date__lte": (on + timedelta(days=1)).isoformat(),
               "end_date__gte": (on - timedelta(days=1)).isoformat()}
    until = on + timedelta(days=ends_within_days) if ends_within_days is not None else None
    if until is not None:
        filters["end_date__lte"] = (until + timedelta(days=1)).isoformat()
    plan_uri: str | None = None
    if plan:
        wanted = plan.strip().lower()
        uri = next((u for u, n in plans.items() if wanted in (u.lower(), n.lower())), None)
        if uri is None and plans_unread:
            raise UpstreamError(
                f"Could not read the plans completely, so whether a plan named {plan!r} exists is unknown (not "
                f"'no such plan'). {plans_unread}"
            )
        if uri is None:
            raise Refusal(f"No plan named {plan!r}; the plans are: {', '.join(sorted(plans.values()))}.")
        filters["membership_type"] = plan_uri = uri
    check = Recheck(on, until, plan_uri)
    raw, unread = await v1_all(v1_listing(deps.client, "member", filters), LISTING, WINDOW_PAGE, WINDOW_PAGES)
    if unread is None:
        found = check(raw)
        kept = [r for r in found if ends_within_days is None or record_data(r, LISTING).get("has_renewed") is not True]
        kept.sort(key=lambda r: (text(record_data(r, LISTING).get("end_date")) or "9999", text(r.get("uri")) or ""))
        end = offset + limit
        out, unnamed = await _member_rows(kept[offset:end], plans, on, deps)
        flags = " ".join(filter(None, [check.said(kept[offset:end] if until is not None else []), unnamed])) or None
        return MembersPage(out, sorted(plans.values()), len(kept), end if end < len(kept) else None,
                           len(found) - len(kept), flags)
    if ends_within_days is not None:  # soonest first needs the whole window
        raise Refusal(f"{unread} Soonest first needs the whole window: ask for fewer renewing_within_days or add a "
                      "plan.")
    page = offset // limit + 1
    got = v1_page(await deps.client.resources("member", filters, page=page, page_size=limit), LISTING, page, limit)
    unread = None
    if got.unechoed:  # which part of the list it holds is unknown: its records, and no page after it
        raw, end, more = got.records, offset + len(got.records), False
        unread = got.unconfirmed(LISTING)
    elif got.honoured:  # the page asked for: from the offset on, and the next cursor at the next upstream page
        raw = got.records[offset - got.start :]
        end, more = got.start + got.size, not got.last
        if got.total is not None and len(got.records) < got.size and more:
            unread = (
                f"sheepCRM's page {page} of {LISTING} held {len(got.records)} records, fewer than its page size of "
                f"{got.size}, while its total ({got.total}) says there are more: records may be missing here, so the "
                "list could not be read completely."
            )
    else:  # not the page asked for: only the part of this window the answer holds, never a page twice
        at = offset - got.start
        raw = got.records[at : at + limit] if 0 <= at < len(got.records) else []
        end = offset + len(raw)
        more = end < got.end
        unread = None if more or got.last else got.unread(LISTING)
    # The listing's own count may hold records that are not current (unpaid, not active, not started when the date
    # filters are not applied), so no total is given; a record that cannot be read either way is listed, unknown.
    out, unnamed = await _member_rows(check(raw), plans, on, deps)
    return MembersPage(out, sorted(plans.values()), None, end if more else None,
                       unread=" ".join(filter(None, [unread, check.said([]), unnamed])) or None)


@dataclass
class Recheck:
    """Each listed record checked against what was asked of the listing (current today, the renewal window, the
    plan), whatever the listing's filters did (each resource's schema defines which fields it filters on; the v1
    notes do not say which). What could not be checked is counted, to be said."""

    on: date
    until: date | None
    plan_uri: str | None
    no_plan: int = 0  # left out of a plan's list: no plan that could be read

    def __call__(self, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in raw if _current(r, self.on) and self._asked(record_data(r, LISTING))]

    def _asked(self, d: dict[str, Any]) -> bool:
        if self.until is not None and not _unreadable_date(d, "end_date"):  # an unreadable one is listed, unknown
            end = day(d.get("end_date"))
            if end is None or end > self.until:  # no end date recorded: open-ended, not renewing in the window
                return False
        if self.plan_uri is not None:
            plan = ref(d.get("membership_type"))
            if plan is None:
                self.no_plan += 1
                return False
            return _same(plan, self.plan_uri)
        return True

    def said(self, listed_: list[dict[str, Any]]) -> str | None:
        """What the answer must say: records left out because their plan could not be read, and listed renewals
        whose `has_renewed` could not be read (not true or false: whether they were renewed is unknown)."""
        unread = [text(r.get("uri")) or "(no uri)" for r in listed_
                  if (v := record_data(r, LISTING).get("has_renewed")) is not None and not isinstance(v, bool)]
        return " ".join(filter(None, [
            f"{self.no_plan} membership(s) name no plan that could be read (`membership_type`): left out of the "
            "plan's list; check them in sheepCRM." if self.no_plan else None,
            f"Could not read `has_renewed` (not true or false) on {len(unread)} listed membership(s) "
            f"({', '.join(unread)}): whether they were already renewed is unknown." if unread else None,
        ])) or None


LISTING = "the membership listing"
WINDOW_PAGE = 100  # memberships per upstream page while reading a whole window
WINDOW_PAGES = 20  # a window of more than 2,000 memberships is paged upstream (a renewal window is refused)


def _current(r: dict[str, Any], on: date) -> bool:
    """Current, or unknown (a status sheepCRM's documents do not name, a date that cannot be read: listed, marked),
    whatever the listing's filters did."""
    return not deleted(r) and _current_record(record_data(r, LISTING), on) in ("current", "unknown")


async def _member_rows(
    found: list[dict[str, Any]], plans: dict[str, str], on: date, deps: Deps
) -> tuple[list[MemberRow], str | None]:
    """The rows, and a note naming how many members' contact records could not be read (their name and email are
    unknown, not absent), and how many memberships name no contact that could be read (`member`: counted, never a
    row with an empty uri)."""
    named = [(r, c) for r in found if (c := ref(record_data(r, LISTING).get("member")))]
    contacts = await _contacts({c for _, c in named}, deps)
    unread = sum(1 for _, c in named if c not in contacts)
    nobody = len(found) - len(named)
    note = " ".join(filter(None, [
        f"The contact record of {unread} member(s) could not be read: their name and email are unknown (shown by "
        "uri only)." if unread else None,
        f"Could not read the contact of {nobody} membership(s) listed here (their `member` is missing or cannot "
        "be read): not shown; check them in sheepCRM." if nobody else None,
    ])) or None
    out = []
    for r, contact in named:
        d: dict[str, Any] = record_data(r, LISTING)
        name, email = contacts.get(contact, (None, None))
        out.append(
            MemberRow(
                contact_uri=contact,
                name=name,
                email=email,
                membership_uri=text(r.get("uri")),
                plan=plans.get(ref(d.get("membership_type")) or ""),
                end_date=text(d.get("end_date")),
                auto_renew=flag(d.get("auto_renew")),
                unknown=_unknown_why(d) if classify(d, on) == "unknown" else None,
            )
        )
    out.sort(key=lambda m: m.end_date or "")
    return out, note


def _unknown_why(d: dict[str, Any]) -> str:
    """A listed record's reason to be unknown, short: its status when not one of the six, else the key at fault."""
    status = text(d.get("membership_record_status"))
    if any(_unreadable_date(d, k) for k in ("start_date", "end_date", "cancellation_date")):
        return "an unreadable date"
    if status is not None and status.lower() not in RECORD_STATUSES:
        return f"status {visible(status, 40)!r}, not one sheepCRM's documents name"
    if status is None:
        return "no membership_record_status"
    return "no start_date" if day(d.get("start_date")) is None else "no readable paid"


def _current_record(data: dict[str, Any], on: date) -> Status | None:
    return classify(data, on) if not deleted({"data": data}) else None


async def _contacts(uris: set[str], deps: Deps) -> dict[str, tuple[str | None, str | None]]:
    """Each contact's name and email (to chase a renewal), from its v1 record; a contact that cannot be read is
    left out (its row keeps the uri)."""
    found: dict[str, tuple[str | None, str | None]] = {}

    async def one(uri: str) -> None:
        try:
            contact = await deps.client.record(parse_uri(uri, deps.client.bucket))
            data = record_data(contact, "the member's contact record")
        except (SheepError, ValueError):
            return
        found[uri] = (text(contact.get("display_value")), plain(data.get("email")))

    async with anyio.create_task_group() as tg:
        for uri in uris:
            tg.start_soon(one, uri)
    return found


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="check_membership",
        description="Is this person (uri or email) a member today? Status, plan, dates, days left, renewal, "
        "summary. full: history.",
        toolset="membership",
        input=CheckMembershipInput,
        output=MembershipAnswer,
        handler=check_membership,
        about=(
            "by uri or email: member today? Only a paid, active, not deleted membership covering today counts; "
            "status (current, grace, unpaid, future, lapsed, none), plan name, dates, days left, name, membership"
            " uri, one-line summary (\"not in the CRM\" is an answer)"
        ),
    ),
]
