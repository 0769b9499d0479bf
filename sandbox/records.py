"""Record helpers shared by the store and the seed: formats, index rows, sort keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

EVENT_STATES = ("all", "current", "draft", "future", "past", "running")
ATTENDANCE_STATUSES = ("invited", "accepted", "declined", "attended", "no-show")
CONTACT_TYPES = ("person", "organisation")
LIST_FIELDS = ("email", "telephone", "address_lines", "tags", "comms_permission")


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def fmt_dt(value: datetime) -> str:
    """sheepCRM datetime format: 2023-09-05T11:27:06.437000 (UTC, no zone)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def parse_dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def normalise_postcode(value: str) -> str:
    return re.sub(r"\s+", "", value).lower()


def primary(values: list[Any] | None) -> str | None:
    """First non-empty value of a sheepCRM list field (email, telephone)."""
    for value in values or []:
        if value:
            return str(value)
    return None


def email_keys(data: dict[str, Any]) -> list[str]:
    """The addresses a contact's email list field is looked up by: each value without its label (`x@y;home` is
    `x@y`: EVIDENCE.md, v1 list fields), lower case."""
    return [k for e in data.get("email") or [] if e and (k := str(e).split(";", 1)[0].strip().lower())]


def contact_index_row(uri: str, rtype: str, data: dict[str, Any]) -> tuple[Any, ...]:
    """Row for the `contacts` search table, all lower case."""
    name = data.get("formatted_name") or data.get("name") or ""
    parts = [
        name,
        " ".join(e for e in data.get("email") or [] if e),
        data.get("postal_code") or "",
        normalise_postcode(data.get("postal_code") or ""),
        data.get("locality") or "",
    ]
    sort_name = data.get("sortable_name") or name
    return (
        uri,
        rtype,
        (data.get("title") or "").lower() or None,
        (data.get("first_name") or "").lower() or None,
        (data.get("last_name") or data.get("name") or "").lower() or None,
        data.get("date_of_birth"),
        normalise_postcode(data.get("postal_code") or "") or None,
        " ".join(parts).lower(),
        sort_name.lower(),
    )


def sort_key_for(rtype: str, data: dict[str, Any]) -> str | None:
    if rtype == "journal":
        return str(data.get("date"))
    if rtype == "booking":
        return str(data.get("start_datetime"))
    if rtype in CONTACT_TYPES:
        return str(data.get("sortable_name") or data.get("formatted_name") or "").lower()
    if "sort_order" in data:
        return f"{int(data['sort_order']):06d}"
    return str(data.get("name") or data.get("title") or data.get("start_date") or "")
