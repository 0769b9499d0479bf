"""search_contacts: find people and organisations."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

import anyio
from pydantic import Field, model_validator

from sheepcrm_mcp.server.errors import Refusal, or_refuse
from sheepcrm_mcp.server.paging import decode_cursor, encode_cursor, list_page
from sheepcrm_mcp.server.specs import Deps, Output, ReadTool, ToolSpec
from sheepcrm_mcp.sheepcrm import ConflictError, NotFoundError, SheepError, UpstreamError
from sheepcrm_mcp.sheepcrm.scope import CONTACT_TYPES, parse_uri
from sheepcrm_mcp.sheepcrm.search import person_matchable
from sheepcrm_mcp.tools.common import ListOutput, Paged, listed, plain, record_data, ref, text, today
from sheepcrm_mcp.tools.membership import classify, current_members, memberships_of, with_email

Short = Annotated[str | None, Field(max_length=100)]


class SearchContactsInput(Paged):
    query: Annotated[str | None, Field(max_length=200, description="Name, email, phone or organisation.")] = None
    first_name: Annotated[Short, Field(description="Exact, with last+postcode.")] = None
    last_name: Annotated[Short, Field(description="Exact, with first+postcode.")] = None
    email: Annotated[Short, Field()] = None
    postcode: Annotated[Short, Field()] = None
    organisation: Annotated[
        Short, Field(description="Organisation uri.")
    ] = None
    renewing_within_days: Annotated[
        int | None, Field(ge=0, le=366, description="Membership ends within N days.")
    ] = None
    plan: Annotated[Short, Field(description="Plan name: its members.")] = None

    @model_validator(mode="after")
    def _one_kind(self) -> SearchContactsInput:
        """One kind of search per call; a mix is refused rather than half of it silently ignored."""
        kinds: dict[str, list[object]] = {
            "query": [self.query],
            "first_name/last_name/email/postcode": [self.first_name, self.last_name, self.email, self.postcode],
            "organisation": [self.organisation],
            "renewing_within_days/plan": [self.renewing_within_days is not None or None, self.plan],
        }
        given = [k for k, values in kinds.items() if any(values)]
        if not given:
            raise ValueError(
                "give query (free text) or at least one of first_name, last_name, email, postcode, organisation, "
                "renewing_within_days, plan"
            )
        if len(given) > 1:
            raise ValueError(
                f"{' and '.join(given)} are different searches and cannot be combined (one would be ignored): "
                "call once per search"
            )
        return self


class ContactHit(Output):
    uri: str = Field(description="Pass to get_contact, check_membership or get_record_history.")
    name: str
    type: Literal["person", "organisation"] | str
    email: str | None = None
    phone: str | None = None
    postcode: str | None = None
    town: str | None = None
    member: bool | None = Field(None, description="A current member today; absent when not known.")
    job_title: str | None = None
    plan: str | None = None
    end_date: str | None = None
    auto_renew: bool | None = None
    membership_uri: str | None = None


class SearchContactsOutput(ListOutput):
    contacts: list[ContactHit]
    plans: list[str] | None = None


LOOKUP_URIS = ("value",)  # openapi.yaml `lookup`: a row's `value` is its record's uri, as its `uri` and `id` are


def uri_of(row: dict[str, Any], also: tuple[str, ...] = ()) -> str | None:
    """A row's record uri: `uri`, else `id` only when it is a uri (SearchResultsResponse's `id` is one; a v1 row's
    `id` is the bare uid, never a uri), else the first key of `also` (LOOKUP_URIS for a lookup row) holding a uri."""
    uri = text(row.get("uri"))
    for key in ("id", *also):
        if uri is None and (ident := text(row.get(key))) and ident.startswith("/") and ident.count("/") >= 4:
            uri = ident
    return uri


def hit(row: dict[str, Any], uri: str, kind: str | None = None) -> ContactHit:
    """A row as a contact, with the uri read from it (row_uri): a row whose uri cannot be read is counted as could
    not read by the caller (unread_rows), never a contact with an empty uri."""
    return ContactHit(
        uri=uri,
        name=text(row.get("display_value")) or (
            "(no name)" if row.get("display_value") in (None, "", []) else "(name could not be read)"),
        type=kind or kind_of(row, uri=uri) or "record",
        email=plain(row.get("primary_email")),
        phone=plain(row.get("primary_telephone")),
        postcode=text(row.get("postal_code")),
    )


def kind_of(row: dict[str, Any], default: str | None = None, uri: str | None = None) -> str | None:
    """The resource type: `resource`, else the type part of the row's uri (`uri` when read already), else `default`
    (None: not known)."""
    uri = uri or uri_of(row) or ""
    return text(row.get("resource")) or (uri.split("/")[2] if uri.count("/") >= 3 else default)


def row_uri(row: dict[str, Any], bucket: str, also: tuple[str, ...] = ()) -> str | None:
    """The row's uri (uri_of, with the keys `also` of its kind of row), else built from the bucket, the row's
    `resource` and a bare-uid `id`; None when neither can be read (never an empty uri)."""
    uri = uri_of(row, also)
    ident, kind = text(row.get("id")), text(row.get("resource"))
    if uri is None and kind and ident and "/" not in ident.strip("/"):
        uri = f"/{bucket}/{kind}/{ident.strip('/')}/"
    return uri


def row_keys(rows: list[dict[str, Any]]) -> str:
    """The keys the rows carry, as an answer that could not be read names them (never their values)."""
    keys = sorted({str(k) for r in rows for k in r})
    return (", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")) or "none"


def unread_rows(rows: list[dict[str, Any]]) -> str | None:
    """Rows whose type or uri could not be read: counted, with their keys (never their values)."""
    if not rows:
        return None
    return (
        f"Could not read {len(rows)} of the results (keys {row_keys(rows)}): their type or uri is not one sheepCRM's "
        "documents name, so whether they are contacts that match is unknown, not no."
    )


def records(data: Any, what: str) -> list[dict[str, Any]]:
    """Search results: {"results": [...]} (SearchResultsResponse), a bare list, or one record object (the person
    search documents no 200 body; EVIDENCE.md: "the full person record is returned"). Any other shape is
    "could not read", never "no match"."""
    return listed(data, what, "results", single=("id", "uri"))


async def person_search(deps: Deps, **fields: str | None) -> list[dict[str, Any]]:
    """The person search's records; [] for its 404, which openapi.yaml defines for this path as "Not found" (no
    match), whatever the body says (its wording varies, and may be absent). Any other failure raises."""
    try:
        return records(await deps.client.search_people(**fields), "the person search")
    except NotFoundError:
        return []


CONNECTIONS = 500  # connections asked for at once (the endpoint takes a limit and documents no paging)


async def at_organisation(req: SearchContactsInput, deps: Deps) -> SearchContactsOutput:
    """The people connected to an organisation, from its connections (EVIDENCE.md: connections have their own
    endpoint), each read from their record for the page shown. An answer that cannot be read is "could not read
    the people at the organisation", never nobody."""
    assert req.organisation is not None
    org = parse_uri(req.organisation, deps.client.bucket, ("organisation",))
    await or_refuse(deps.client.record(org), f"No organisation {org}; find it with search_contacts(query=...).")
    try:
        links = listed(await deps.client.connections(org, CONNECTIONS), "the organisation's connections",
                       "connections")
    except SheepError as exc:
        raise UpstreamError(
            f"Could not read the people at {org}: sheepCRM's connections could not be read ({exc}). This is not "
            "'nobody': the answer is unknown."
        ) from None
    people: dict[str, ContactHit] = {}
    unread = 0
    for link in links:
        try:
            linked = parse_uri(ref(link.get("destination")) or "", deps.client.bucket, CONTACT_TYPES)
        except ValueError:
            unread += 1
            continue
        if linked.type == "person":
            people.setdefault(str(linked), ContactHit(uri=str(linked), name="(could not read)", type="person"))
        elif str(linked) == str(org):  # a link seen from the other side: who is at that end is not said
            unread += 1
    notes = [
        f"{unread} connection(s) name no contact of this bucket that could be read (their destination): the "
        "people there may be more." if unread else None,
        f"sheepCRM sent its limit of {CONNECTIONS} connections: there may be more." if len(links) >= CONNECTIONS
        else None,
    ]
    page, envelope = list_page(
        list(people.values()), req.limit, req.cursor, f"org:{org}",
        "sheepCRM's connections of this organisation name no person.", cut=" ".join(n for n in notes if n) or None,
    )
    failed = 0

    async def one(hit: ContactHit) -> None:
        nonlocal failed
        try:
            r = await deps.client.record(parse_uri(hit.uri, deps.client.bucket, ("person",)))
            d = record_data(r, "a person's record")
        except SheepError:
            failed += 1
            return
        hit.name = text(r.get("display_value")) or "(no name)"
        hit.email, hit.phone, hit.job_title = plain(d.get("email")), plain(d.get("telephone")), text(d.get("job_title"))

    async with anyio.create_task_group() as tg:
        for hit in page:
            tg.start_soon(one, hit)
    if failed:
        envelope["note"] = " ".join(filter(None, [
            envelope["note"], f"The record of {failed} person(s) could not be read: shown by uri only."]))
    return SearchContactsOutput(contacts=page, **envelope)


async def members(req: SearchContactsInput, deps: Deps) -> SearchContactsOutput:
    key = f"members:{req.renewing_within_days}:{req.plan}:{req.limit}"
    page = await current_members(deps, req.renewing_within_days, req.plan, decode_cursor(req.cursor, key), req.limit)
    hits = [
        ContactHit(
            uri=m.contact_uri, name=m.name or "(no name)", type=m.contact_uri.split("/")[2] if m.contact_uri.count(
                "/") >= 3 else "person", email=m.email, plan=m.plan, end_date=m.end_date, auto_renew=m.auto_renew,
            membership_uri=m.membership_uri, member=True if m.unknown is None else None,
        )
        for m in page.rows
    ]
    unknown = sorted({m.unknown for m in page.rows if m.unknown})
    unread = (
        f"{sum(1 for m in page.rows if m.unknown)} of these memberships could not be read as current or not "
        f"({'; '.join(unknown)}): member is left out for "
        "them; check them in sheepCRM." if unknown else None
    )
    renewed = (
        f"{page.renewed} membership(s) in this window that sheepCRM marks as already renewed (has_renewed) are "
        "left out." if page.renewed else None
    )
    # A current-members list is filtered by end date upstream, which a membership with no end date cannot match
    # (an empty date is neither >= nor <= a day): it is not "no membership", so the answer says what it counts.
    open_ended = None if req.renewing_within_days is not None else (
        "Memberships with no end date recorded are not in this list or its total (sheepCRM's end-date filter cannot "
        "match an empty date); check_membership reads a person's memberships whole.")
    return SearchContactsOutput(
        contacts=hits, plans=page.plans, total=page.total,
        next_cursor=encode_cursor(page.next_offset, key) if page.next_offset is not None else None,
        note=" ".join(filter(None, [
            unread, renewed, page.unread,
            None if hits or page.unread else "No other current membership ending in this window matches." if renewed
            else "No current membership with an end date matches.", open_ended,
        ])) or None,
    )


DESCRIBED = 3  # hits whose record and memberships are read per search: 2 upstream reads each (3 for a non-member)


def to_describe(hits: list[ContactHit]) -> list[ContactHit]:
    """The hits worth two reads each, at most DESCRIBED: those that share a name with another hit first (telling
    them apart is what the reads are for), then the rest in the search's order."""
    by_name = Counter(h.name.strip().lower() for h in hits)
    shared = [h for h in hits if by_name[h.name.strip().lower()] > 1]
    return (shared + [h for h in hits if by_name[h.name.strip().lower()] == 1])[:DESCRIBED]


async def describe(hits: list[ContactHit], deps: Deps) -> str | None:
    """What tells contacts apart, read from each one's record: its real postcode and town (a postcode search
    matches by prefix), and whether it is a current member. Read for DESCRIBED hits at most (namesakes first), as
    each costs two upstream reads (three when none of the contact's own memberships is current: the memberships
    listing them as a linked member); the note names the others' way to these facts. A contact that cannot be read
    keeps what the search gave, and the note says so."""
    chosen = to_describe(hits)
    failed = 0

    async def one(h: ContactHit) -> None:
        nonlocal failed
        try:
            uri = parse_uri(h.uri, deps.client.bucket)
            contact, (members_, _, unread) = await deps.client.record(uri), await memberships_of(uri, deps)
            d = record_data(contact, "a contact's record")
        except (SheepError, Refusal, ValueError):
            failed += 1
            return
        h.postcode = text(d.get("postal_code")) or h.postcode
        h.town = text(d.get("locality"))
        h.email = h.email or plain(d.get("email"))
        on = today()
        states = {classify(m, on) for m in members_}
        h.member = True if "current" in states else (None if "unknown" in states or unread else False)

    async with anyio.create_task_group() as tg:
        for h in chosen:
            tg.start_soon(one, h)
    rest = len(hits) - len(chosen)
    return " ".join(filter(None, [
        f"The details of {failed} contact(s) could not be read; their postcode and membership are not known."
        if failed else None,
        f"Town, postcode and member are read for {len(chosen)} of these {len(hits)} contacts (namesakes first); for "
        f"the other {rest}, get_contact gives the town and postcode and check_membership the membership, or narrow "
        "the search." if rest else None,
    ])) or None


def namesakes(hits: list[ContactHit]) -> str | None:
    """A note when several contacts share a name, so the reader asks which one is meant."""
    by_name = Counter(h.name.strip().lower() for h in hits)
    shared = [h.name for h in hits if by_name[h.name.strip().lower()] > 1]
    if not shared:
        return None
    names = sorted(set(shared), key=shared.index)
    return (
        f"Several contacts share the name {', '.join(repr(n) for n in names[:3])}: tell them apart by town, postcode "
        "and member before acting, or ask which one is meant."
    )


def only_people(req: SearchContactsInput) -> bool:
    """Whether a fielded search is for people only: a name or postcode beside the email is a person's (an
    organisation is searched by its email alone)."""
    return bool(req.first_name or req.last_name or req.postcode)


async def _organisations_by_email(
    req: SearchContactsInput, deps: Deps
) -> tuple[list[ContactHit | dict[str, Any]], str | None]:
    """The organisations with the email asked for alone (sheepCRM's person search finds people only): the v1
    organisation listing by email, read whole (with_email): each a hit, or its row when its uri cannot be read; and
    why the listing could not be read (None: it was), never "no organisation has it"."""
    if not req.email or only_people(req):
        return [], None
    try:
        rows = (await with_email(deps.client, req.email, ("organisation",)))["organisation"]
    except SheepError as exc:
        return [], (f"Organisations with this email could not be searched ({exc}): whether one has it is unknown, "
                    "not no.")
    hits: list[ContactHit | dict[str, Any]] = []
    for row in rows:  # a row without a uri is one that could not be read, never left out
        d = record_data(row, "the organisation listing by email")
        uri = row_uri(row, deps.client.bucket)
        hits.append(ContactHit(uri=uri, name=text(row.get("display_value")) or "(no name)", type="organisation",
                               email=req.email, phone=plain(d.get("telephone")), postcode=text(d.get("postal_code")))
                    if uri else row)
    return hits, None


def _other_tries(req: SearchContactsInput) -> str:
    """The searches worth suggesting after no match: only those the caller has not just made."""
    tries = [
        *(["fewer words"] if req.query and len(req.query.split()) > 1 else []),
        *(["query= (free text)"] if not req.query else []),
        *(["the email"] if not req.email else []),
        *(["first_name + last_name + postcode"] if not (req.first_name and req.last_name and req.postcode) else []),
    ]
    return f" Try {', '.join(tries[:-1])} or {tries[-1]}." if len(tries) > 1 else f" Try {tries[0]}." if tries else ""


async def search_contacts(req: SearchContactsInput, deps: Deps) -> SearchContactsOutput:
    if req.renewing_within_days is not None or req.plan:
        return await members(req, deps)
    if req.organisation:
        return await at_organisation(req, deps)
    fielded = {
        "first_name": req.first_name,
        "last_name": req.last_name,
        "email": req.email,
        "postal_code": req.postcode,
    }
    by_name = None
    if any(fielded.values()) and not person_matchable(**fielded):
        # sheepCRM's person search answers 404 to these fields alone: the free-text search, people only
        found = [r for r in records(await deps.client.search(" ".join(v for v in fielded.values() if v)),
                                    "the search") if kind_of(r) in ("person", None)]
        what = " and ".join(w for w, given in (("name", req.first_name or req.last_name), ("postcode", req.postcode))
                            if given)
        by_name = (
            f"Searched by {what} with sheepCRM's free-text search (people only; its best matches, not exact): its "
            "person search matches only an email, or first_name + last_name + postcode."
        )
    elif any(fielded.values()):
        try:
            found = await person_search(deps, **fielded)
        except ConflictError:  # openapi.yaml lists no 409 for the person search: its meaning is not known
            raise Refusal(
                "sheepCRM answered 409 to the person search (not documented for this search; it may mean several "
                "people match, as its answer is one person): add fields to tell them apart (the email, or "
                "first_name + last_name + postcode), or search with query= to list every match."
            ) from None
    else:
        assert req.query is not None
        found = records(await deps.client.search(req.query), "the search")
    orgs, unsearched = await _organisations_by_email(req, deps)
    # The person search answers people only; the global search also finds events, tasks... A row whose type or
    # uri cannot be read is counted as could not read, never dropped into "no match".
    default = "person" if any(fielded.values()) and by_name is None else None
    hits: list[ContactHit] = []
    unread: list[dict[str, Any]] = []
    for r in found:
        kind = kind_of(r, default)
        uri = row_uri(r, deps.client.bucket)
        if kind in CONTACT_TYPES and uri is not None:
            hits.append(hit(r, uri, kind))
        elif kind is None or kind in CONTACT_TYPES:  # no type, or a contact with no uri that could be read
            unread.append(r)
    for o in orgs:
        if isinstance(o, dict):
            unread.append(o)
        elif o.uri not in {h.uri for h in hits}:
            hits.append(o)
    key = f"search:{req.query}:{sorted(fielded.items())}"
    unsaid = unread_rows(unread)
    # only people were searched (the person search, or the free text kept to people): never "no contacts"
    whom = "contacts" if req.query or (req.email and not only_people(req) and unsearched is None) else "people"
    empty = "No readable contact in sheepCRM's answer." if unread else f"No {whom} match." + _other_tries(req)
    if whom == "people" and not unread and unsearched is None:
        empty += " Organisations were not searched: they are found by their email alone or query=."
    if (req.first_name or req.last_name) and by_name is None and not unread:
        empty += " Names must match exactly, including capital letters."
    items, envelope = list_page(hits, req.limit, req.cursor, key, empty)
    if not any(fielded.values()) or by_name:
        envelope["total"] = None  # the global search has no paging and no total: its list may be its best matches
    notes = [by_name, unsearched, unsaid, await describe(items, deps), namesakes(items), envelope["note"]]
    envelope["note"] = " ".join(n for n in notes if n) or None
    return SearchContactsOutput(contacts=items, **envelope)


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="search_contacts",
        description="Find people/organisations by free text (query) or email, people by other filters. Gives uris.",
        toolset="search",
        input=SearchContactsInput,
        output=SearchContactsOutput,
        handler=search_contacts,
        about=(
            "people/organisations by free text or email (organisations by their email alone); people by first + "
            "last name + postcode (exact; other name or postcode searches go to the free text, people only); the "
            "people at an organisation (`organisation`, from its connections); current members ending within N days "
            "(`renewing_within_days`) or on a `plan` (answers list the plans)"
        ),
    )
]
