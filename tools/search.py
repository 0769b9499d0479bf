"""search_contacts: find people and organisations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from sheepcrm_mcp.server.toolkit import Deps, Output, ReadTool, ToolSpec, list_page
from sheepcrm_mcp.tools.common import ListOutput, Paged, text

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
        type=text(row.get("resource")) or (uri.split("/")[2] if uri.count("/") >= 3 else "contact"),
        email=text(row.get("primary_email")),
        phone=text(row.get("primary_telephone")),
    )


async def search_contacts(req: SearchContactsInput, deps: Deps) -> SearchContactsOutput:
    fielded = {
        "first_name": req.first_name,
        "last_name": req.last_name,
        "email": req.email,
        "postal_code": req.postcode,
    }
    if any(fielded.values()):
        data = await deps.client.search_people(**fielded)
    else:
        assert req.query is not None
        data = await deps.client.search(req.query)
    rows = data.get("results") or [] if isinstance(data, dict) else []
    hits = [hit(r) for r in rows if isinstance(r, dict)]
    key = f"search:{req.query}:{sorted(fielded.items())}"
    items, envelope = list_page(
        hits, req.limit, req.cursor, key, "No contacts match. Try fewer words, only the last name, or the email."
    )
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
