"""search_contacts: find people and organisations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from sheepcrm_mcp.server.toolkit import Deps, Output, ReadTool, ToolSpec, list_page
from sheepcrm_mcp.sheepcrm import NotFoundError
from sheepcrm_mcp.sheepcrm.scope import CONTACT_TYPES
from sheepcrm_mcp.tools.common import ListOutput, Paged, rows, text

Short = Annotated[str | None, Field(max_length=100)]


class SearchContactsInput(Paged):
    query: Annotated[str | None, Field(max_length=200, description="Name, email, phone or organisation.")] = None
    first_name: Annotated[Short, Field()] = None
    last_name: Annotated[Short, Field()] = None
    email: Annotated[Short, Field()] = None
    postcode: Annotated[Short, Field()] = None

    @model_validator(mode="after")
    def _something(self) -> SearchContactsInput:
        if not any((self.query, self.first_name, self.last_name, self.email, self.postcode)):
            raise ValueError("give query (free text) or at least one of first_name, last_name, email, postcode")
        return self


class ContactHit(Output):
    uri: str = Field(description="Pass to get_contact, check_membership or get_record_history.")
    name: str
    type: Literal["person", "organisation"] | str
    email: str | None = None
    phone: str | None = None


class SearchContactsOutput(ListOutput):
    contacts: list[ContactHit]


def hit(row: dict[str, Any]) -> ContactHit:
    uri = text(row.get("id")) or text(row.get("uri")) or ""
    return ContactHit(
        uri=uri,
        name=text(row.get("display_value")) or "(no name)",
        type=kind_of(row),
        email=text(row.get("primary_email")),
        phone=text(row.get("primary_telephone")),
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


async def search_contacts(req: SearchContactsInput, deps: Deps) -> SearchContactsOutput:
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
        "email, postcode. Gives uris.",
        toolset="search",
        input=SearchContactsInput,
        output=SearchContactsOutput,
        handler=search_contacts,
    )
]
