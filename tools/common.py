"""Pieces every domain shares: paging arguments, list envelopes, uid/uri arguments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from sheepcrm_mcp.server.toolkit import Input, Output, check_cursor
from sheepcrm_mcp.sheepcrm.scope import check_uid

Limit = Annotated[int, Field(ge=1, le=50)]
Cursor = Annotated[str | None, Field(max_length=200), AfterValidator(check_cursor)]  # next_cursor of the previous page
Detail = Annotated[Literal["concise", "full"], Field()]
ContactRef = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="Contact uri from search_contacts.",
    ),
]
# The one uid input type: checked at the input (letters and digits only), so no tool checks it again.
Uid = Annotated[str, Field(min_length=1, max_length=64, description="uid from a list tool."), AfterValidator(check_uid)]


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


def day(value: Any) -> date | None:
    """The date part of a sheepCRM date or datetime string."""
    s = text(value)
    if not s:
        return None
    try:
        return date.fromisoformat(s[:10])
    except ValueError:
        return None


def moment(value: Any) -> datetime | None:
    """A sheepCRM datetime as an aware UTC datetime (sheepCRM writes UTC without a zone)."""
    s = text(value)
    if not s:
        return None
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def today() -> date:
    return datetime.now(UTC).date()


def rows(data: Any, *keys: str) -> list[dict[str, Any]]:
    """The list of records in an upstream answer, under the first of `keys` present (or the answer itself).

    A single object where a list is expected counts as a list of one (the 2024-12 cut types the task list's
    `tasks` as one object)."""
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        for key in keys:
            value = data.get(key)
            if isinstance(value, list):
                return [r for r in value if isinstance(r, dict)]
            if isinstance(value, dict):
                return [value]
    return []


def ref(value: Any) -> str | None:
    """A uri given as a string or as an expanded uri {"ref", "display_value"} (openapi.yaml uses both)."""
    if isinstance(value, dict):
        return text(value.get("ref"))
    return text(value)


async def fetch_pages(
    fetch: Callable[[int, int], Awaitable[Any]], *keys: str, page_size: int = 250, budget: int = 8
) -> tuple[list[dict[str, Any]], bool]:
    """Every record of a paged list with no total: pages until a short page, at most `budget` pages.
    Returns (records, complete); complete is False when the budget ran out on a full page."""
    found: list[dict[str, Any]] = []
    for page in range(1, budget + 1):
        chunk = rows(await fetch(page, page_size), *keys)
        found += chunk
        if len(chunk) < page_size:
            return found, True
    return found, False
