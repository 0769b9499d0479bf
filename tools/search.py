"""search_contacts: find people and organisations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from sheepcrm_mcp.server.paging import decode_cursor, encode_cursor, list_page
from sheepcrm_mcp.server.specs import Deps, Output, ReadTool, ToolSpec
from sheepcrm_mcp.sheepcrm import NotFoundError
from sheepcrm_mcp.sheepcrm.scope import CONTACT_TYPES, parse_uri
from sheepcrm_mcp.tools.common import ListOutput, Paged, rows, text
from sheepcrm_mcp.tools.membership import current_members

Short = Annotated[str | None, Field(max_length=100)]


class SearchContactsInput(Paged):
    query: Annotated[str | None, Field(max_length=200, description="Name, email, phone or organisation.")] = None
    first_name: Annotated[Short, Field(description="Exact match.")] = None
    last_name: Annotated[Short, Field(description="Exact match.")] = None
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
    def _something(self) -> SearchContactsInput:
        given = (self.first_name, self.last_name, self.email, self.postcode, self.organisation, self.plan)
        if not any((self.query, *given)) and self.renewing_within_days is None:
            raise ValueError(
                "give query (free text) or at least one of first_name, last_name, email, postcode, organisation, "
                "renewing_within_days, plan"
            )
        return self


class ContactHit(Output):
    uri: str = Field(description="Pass to get_contact, check_membership or get_record_history.")
    name: str
    type: Literal["person", "organisation"] | str
    email: str | None = None
    phone: str | None = None
    postcode: str | None = None
    job_title: str | None = None
    plan: str | None = None
    end_date: str | None = None
    membership_uri: str | None = None


class SearchContactsOutput(ListOutput):
    contacts: list[ContactHit]
    plans: list[str] | None = None


def hit(row: dict[str, Any]) -> ContactHit:
    uri = text(row.get("id")) or text(row.get("uri")) or ""
    return ContactHit(
        uri=uri,
        name=text(row.get("display_value")) or "(no name)",
        type=kind_of(row),
        email=text(row.get("primary_email")),
        phone=text(row.get("primary_telephone")),
        postcode=text(row.get("postal_code")),
    )


def kind_of(row: dict[str, Any]) -> str:
    """The resource type: `resource`, else the type part of the uri."""
    uri = text(row.get("id")) or text(row.get("uri")) or ""
    return text(row.get("resource")) or (uri.split("/")[2] if uri.count("/") >= 3 else "record")


def records(data: Any) -> list[dict[str, Any]]:
    """Search results: {"results": [...]} (SearchResultsResponse), a bare list, or one record object (the person
    search documents no 200 body, and take_first_if_multiple suggests it may send one record)."""
    if isinstance(data, dict) and "results" not in data and (data.get("id") or data.get("uri")):
        return [data]
    return rows(data, "results")


ORG_NOTE = (
    "People at an organisation are found by the `connections` field of their records (v1 resource filter "
    "connections=<organisation uri>); sheepCRM documents no other person-organisation link, so people linked "
    "only in ways it does not document (e.g. free-text employer) are not found."
)


async def at_organisation(req: SearchContactsInput, deps: Deps) -> SearchContactsOutput:
    assert req.organisation is not None
    org = parse_uri(req.organisation, deps.client.bucket, ("organisation",))
    key = f"org:{org}:{req.limit}"
    offset = decode_cursor(req.cursor, key)
    data = await deps.client.resources(
        "person", {"connections": str(org)}, page=offset // req.limit + 1, page_size=req.limit
    )
    hits = []
    for r in rows(data, "results"):
        d: dict[str, Any] = r.get("data") or {}
        hits.append(
            ContactHit(
                uri=text(r.get("uri")) or "", name=text(r.get("display_value")) or "(no name)", type="person",
                email=text(d.get("email")), phone=text(d.get("telephone")), job_title=text(d.get("job_title")),
            )
        )
    total = data.get("total") if isinstance(data.get("total"), int) else None
    end = offset + len(hits)
    more = end < total if total is not None else len(hits) >= req.limit
    return SearchContactsOutput(
        contacts=hits, total=total, next_cursor=encode_cursor(end, key) if more else None,
        note=ORG_NOTE if not hits else None,
    )


async def members(req: SearchContactsInput, deps: Deps) -> SearchContactsOutput:
    key = f"members:{req.renewing_within_days}:{req.plan}:{req.limit}"
    page = await current_members(deps, req.renewing_within_days, req.plan, decode_cursor(req.cursor, key), req.limit)
    hits = [
        ContactHit(
            uri=m.contact_uri, name=m.name or "(no name)", type=m.contact_uri.split("/")[2] if m.contact_uri.count(
                "/") >= 3 else "person", plan=m.plan, end_date=m.end_date, membership_uri=m.membership_uri,
        )
        for m in page.rows
    ]
    return SearchContactsOutput(
        contacts=hits, plans=page.plans, total=page.total,
        next_cursor=encode_cursor(page.next_offset, key) if page.next_offset is not None else None,
        note=None if hits else "No current membership matches.",
    )


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
    if any(fielded.values()):
        try:
            data = await deps.client.search_people(**fielded)
        except NotFoundError:  # the person search answers 404 when no person matches
            data = {"results": []}
    else:
        assert req.query is not None
        data = await deps.client.search(req.query)
    found = records(data)
    hits = [hit(r) for r in found if kind_of(r) in CONTACT_TYPES]  # global search also finds events, tasks...
    if req.postcode:  # the person search matched it; its results may not repeat it
        for h in hits:
            h.postcode = h.postcode or req.postcode.upper()
    key = f"search:{req.query}:{sorted(fielded.items())}"
    items, envelope = list_page(
        hits, req.limit, req.cursor, key, "No contacts match. Try fewer words, only the last name, or the email."
    )
    if not any(fielded.values()):
        envelope["total"] = None  # the global search has no paging and no total: its list may be its best matches
    return SearchContactsOutput(contacts=items, **envelope)


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="search_contacts",
        title="Search contacts",
        description="Find people/organisations by free text (query), or people by first_name, last_name, "
        "email, postcode, organisation, plan or renewal window. Gives uris.",
        toolset="search",
        input=SearchContactsInput,
        output=SearchContactsOutput,
        handler=search_contacts,
    )
]
