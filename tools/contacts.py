"""get_contact and update_contact."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from sheepcrm_mcp.server.toolkit import Deps, Input, Output, ReadTool, ToolSpec, WriteDeps, WriteTool
from sheepcrm_mcp.server.writes import NAME_CAP, Change, WritePlan, visible
from sheepcrm_mcp.sheepcrm.scope import parse_uri
from sheepcrm_mcp.tools.common import ContactRef, Detail, text


class GetContactInput(Input):
    uri: ContactRef
    detail: Detail = "concise"


class MembershipBrief(Output):
    status: str | None = None
    plan: str | None = None
    end_date: str | None = None


class ContactDetails(Output):
    emails: list[str] = []
    phones: list[str] = []
    address_lines: list[str] = []
    locality: str | None = None
    region: str | None = None
    country: str | None = None
    comms_permission: list[str] = []
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    date_of_birth: str | None = None


class Contact(Output):
    uri: str
    name: str
    type: str
    email: str | None = None
    phone: str | None = None
    locality: str | None = None
    postcode: str | None = None
    tags: list[str] = []
    membership: MembershipBrief | None = Field(None, description="Headline membership; check_membership for more.")
    last_updated: str | None = None
    details: ContactDetails | None = Field(None, description="Only with detail='full'.")


def strings(value: Any) -> list[str]:
    return [str(v) for v in value if v] if isinstance(value, list) else ([str(value)] if value else [])


async def get_contact(req: GetContactInput, deps: Deps) -> Contact:
    uri = parse_uri(req.uri, deps.client.bucket)
    s = await deps.client.contact_summary(uri)
    m = s.get("membership") if isinstance(s.get("membership"), dict) else None
    contact = Contact(
        uri=str(uri),
        name=text(s.get("display_value")) or "(no name)",
        type=uri.type,
        email=text(s.get("primary_email")),
        phone=text(s.get("primary_telephone")),
        locality=text(s.get("locality")),
        postcode=text(s.get("postal_code")),
        tags=strings(s.get("tags")),
        membership=MembershipBrief(
            status=text(m.get("status")), plan=text(m.get("plan")), end_date=text(m.get("end_date"))
        )
        if m
        else None,
        last_updated=text(s.get("last_updated")),
    )
    if req.detail == "full":
        comms = await deps.client.contact_communications(uri)
        personal = await deps.client.contact_personal(uri) if uri.type == "person" else {}
        contact.details = ContactDetails(
            emails=strings(comms.get("email")),
            phones=strings(comms.get("telephone")),
            address_lines=strings(comms.get("address_lines")),
            locality=text(comms.get("locality")),
            region=text(comms.get("region")),
            country=text(comms.get("country")),
            comms_permission=strings(comms.get("comms_permission")),
            title=text(personal.get("title")),
            first_name=text(personal.get("first_name")),
            last_name=text(personal.get("last_name")),
            date_of_birth=text(personal.get("date_of_birth")),
        )
    return contact


# ---- update_contact (write, gated) ----------------------------------------------------

Value = Annotated[str | None, Field(max_length=200)]
EDITABLE = ("email", "phone", "address_line_1", "address_line_2", "address_line_3", "postcode")


class UpdateContactInput(Input):
    uri: ContactRef
    email: Annotated[Value, Field(description="Primary email.")] = None
    phone: Annotated[Value, Field(description="Primary phone.")] = None
    address_line_1: Annotated[Value, Field(description="'' clears it.")] = None
    address_line_2: Annotated[Value, Field(description="'' clears it.")] = None
    address_line_3: Annotated[Value, Field(description="'' clears it.")] = None
    postcode: Annotated[Value, Field()] = None

    @model_validator(mode="after")
    def _something(self) -> UpdateContactInput:
        if all(getattr(self, f) is None for f in EDITABLE):
            raise ValueError(f"give at least one field to change: {', '.join(EDITABLE)}")
        if self.email is not None and self.email and ("@" not in self.email or " " in self.email):
            raise ValueError("email must look like name@example.org")
        return self


def _current(record: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = record.get("data") or {}
    lines = [text(v) or "" for v in (data.get("address_lines") or [])] + ["", "", ""]
    return {
        "email": text(data.get("email")) or "",
        "phone": text(data.get("telephone")) or "",
        "address_line_1": lines[0],
        "address_line_2": lines[1],
        "address_line_3": lines[2],
        "postcode": text(data.get("postal_code")) or "",
    }


def _replace_first(values: list[Any], new: str) -> list[Any]:
    """The list with its first non-empty entry (the primary one) replaced, or removed when `new` is empty;
    every other entry is kept as it is."""
    out = list(values)
    at = next((i for i, v in enumerate(out) if v), None)
    if at is None:
        return [new, *out] if new else out
    if new:
        out[at] = new
    else:
        del out[at]
    return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


async def update_contact(req: UpdateContactInput, deps: WriteDeps) -> WritePlan:
    uri = parse_uri(req.uri, deps.client.bucket)
    wanted = {f: getattr(req, f).strip() for f in EDITABLE if getattr(req, f) is not None}

    async def read() -> dict[str, Any]:
        record = await deps.client.record(uri, fresh=True)
        data: dict[str, Any] = record.get("data") or {}
        return {
            "name": text(record.get("display_value")),
            "fields": _current(record),
            "last_updated": (record.get("meta") or {}).get("last_updated"),
            "emails": _as_list(data.get("email")),
            "phones": _as_list(data.get("telephone")),
            "address_lines": _as_list(data.get("address_lines")),  # all of them, lines 4+ included
        }

    def diff(state: dict[str, Any]) -> list[Change]:
        return [
            Change(f, f.replace("_", " "), state["fields"][f], v) for f, v in wanted.items() if state["fields"][f] != v
        ]

    async def apply(changes: list[Change], state: dict[str, Any]) -> None:
        packet: dict[str, Any] = {}
        keys = {c.key: c.after for c in changes}
        if "email" in keys:
            packet["email"] = _replace_first(state["emails"], keys["email"])
        if "phone" in keys:
            packet["telephone"] = _replace_first(state["phones"], keys["phone"])
        if {"address_line_1", "address_line_2", "address_line_3"} & keys.keys():
            original = state["address_lines"]
            lines = [*original, "", "", ""][: max(3, len(original))]
            for i in (1, 2, 3):
                lines[i - 1] = keys.get(f"address_line_{i}", lines[i - 1])
            while len(lines) > len(original) and not lines[-1]:  # only the padding added above
                lines.pop()
            packet["address_lines"] = lines  # lines 4 and beyond are sent back unchanged
        if "postcode" in keys:
            packet["postal_code"] = keys["postcode"]
        await deps.client.update_record(uri, packet)

    def undo(applied: list[Change]) -> dict[str, Any]:
        return {"uri": str(uri), **{c.key: c.before or "" for c in applied}}

    state_name = await _name(deps, uri)
    return WritePlan(summary=f"Update contact {state_name} ({uri})", read=read, diff=diff, apply=apply, undo=undo)


async def _name(deps: Deps, uri: Any) -> str:
    record = await deps.client.record(uri)
    return visible(text(record.get("display_value")) or str(uri), NAME_CAP)


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="get_contact",
        title="Get contact",
        description="A contact by uri: name, email, phone, postcode, tags, membership. full: all addresses and "
        "personal details.",
        toolset="contacts",
        input=GetContactInput,
        output=Contact,
        handler=get_contact,
    ),
    WriteTool(
        name="update_contact",
        title="Update contact",
        description="Change a contact's email, phone, address lines or postcode. A person approves the preview; "
        "returns undo.",
        toolset="contacts",
        input=UpdateContactInput,
        handler=update_contact,
        destructive=True,
        idempotent=True,
    ),
]
