"""Pieces every domain shares: paging arguments, list envelopes, uid/uri arguments."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from server.toolkit import Input, Output

Limit = Annotated[int, Field(ge=1, le=50, description="Records per page, 1-50 (default 10).")]
Cursor = Annotated[
    str | None,
    Field(max_length=200, description="next_cursor from the previous answer, to get the next page; omit for page one."),
]
Detail = Annotated[
    Literal["concise", "full"],
    Field(description="'concise' (default) gives the essentials; 'full' adds everything else."),
]
ContactRef = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="Contact uri as returned by search_contacts, e.g. /demo/person/5f1c0ffee0ddba11ab1e0001/",
    ),
]
Uid = Annotated[str, Field(min_length=1, max_length=64, description="Record uid as returned by a list tool.")]


class Paged(Input):
    limit: Limit = 10
    cursor: Cursor = None


class ListOutput(Output):
    total: int | None = Field(None, description="How many records match in all, when known.")
    next_cursor: str | None = Field(None, description="Pass as cursor to get the next page; null on the last page.")
    note: str | None = Field(None, description="Anything the reader should know about this answer.")


def text(value: Any) -> str | None:
    """A non-empty string or None, for the loose values sheepCRM returns."""
    if value is None:
        return None
    if isinstance(value, list):
        value = next((v for v in value if v), None)
        return text(value)
    s = str(value).strip()
    return s or None
