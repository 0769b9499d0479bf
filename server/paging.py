"""How much one answer may carry: pages of records under a character budget, long strings cut, a hard cap.

A list answer is one page of at most `limit` records, cut at a record boundary before `RESPONSE_CAP`
characters (`list_page`); its `next_cursor` is bound to the query it came from. Every answer's strings
are cut at `STRING_CAP` and no answer is ever longer than `HARD_CAP` (`compact_answer`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pydantic_core
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel

from sheepcrm_mcp.server.errors import Refusal
from sheepcrm_mcp.server.logs import scrub
from sheepcrm_mcp.server.specs import Output

O = TypeVar("O", bound=BaseModel)  # noqa: E741


RESPONSE_CAP = 20_000  # characters of structured content a list answer may carry


STRING_CAP = 2_000  # longest single string value in an answer; longer ones are cut and say so


HARD_CAP = 100_000  # no answer is ever longer than this, whatever the upstream sent


def compact_answer(result: Output) -> CallToolResult:
    """structuredContent plus the same JSON as text, compact. The SDK's default text is indented
    (about a third more characters for the model to read, and to send); bench/RESULTS.md measures it."""
    data = result.model_dump(mode="json", by_alias=True)
    text = pydantic_core.to_json(data).decode()
    # Scrubbed before any string is cut: a secret's encoded form cut in half would no longer be recognised.
    if (clean := scrub(text)) != text:  # a secret in the answer: both forms are read from the scrubbed text
        data = json.loads(clean)
        text = pydantic_core.to_json(data).decode()
    if len(text) > STRING_CAP:  # only an answer this long can hold a string longer than the cap
        data = shorten(data)
        text = pydantic_core.to_json(data).decode()
    if len(text) > HARD_CAP:
        raise Refusal(
            f"The answer would be {len(text)} characters, over the {HARD_CAP} limit; nothing is returned. "
            "Ask for fewer records (a smaller limit) or a narrower query."
        )
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def shorten(value: Any) -> Any:
    """Every string cut to STRING_CAP characters, saying how much was left out (an upstream may send megabytes)."""
    if isinstance(value, str) and len(value) > STRING_CAP:
        return value[:STRING_CAP] + f"... [cut: {len(value) - STRING_CAP} more characters]"
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten(v) for v in value]
    return value


def fit(items: list[Any], cap: int = RESPONSE_CAP) -> int:
    """How many leading items fit in `cap` characters of JSON (at least one)."""
    used = 0
    for i, item in enumerate(items):
        data = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
        used += len(json.dumps(data, default=str)) + 1
        if used > cap and i > 0:
            return i
    return len(items)


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def encode_cursor(offset: int, key: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{_fingerprint(key)}".encode()).decode().rstrip("=")


MALFORMED_CURSOR = (
    "cursor is malformed: pass the next_cursor of the previous answer unchanged, "
    "or omit cursor to start from the first page"
)


def _split_cursor(cursor: str) -> tuple[int, str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    offset_text, fp = raw.split(":")
    return int(offset_text), fp


def check_cursor(cursor: str | None) -> str | None:
    """Input validator: a cursor must have the shape this server issues (checked before any upstream call)."""
    if cursor:
        try:
            _split_cursor(cursor)
        except (ValueError, UnicodeDecodeError):
            raise ValueError(MALFORMED_CURSOR) from None
    return cursor


def decode_cursor(cursor: str | None, key: str) -> int:
    """Offset encoded in `cursor`; `key` names the query so a cursor cannot be reused for another."""
    if not cursor:
        return 0
    try:
        offset, fp = _split_cursor(cursor)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(MALFORMED_CURSOR) from None
    if fp != _fingerprint(key) or offset < 0:
        raise Refusal(
            "cursor belongs to a different query: call again with the same arguments as the "
            "answer that gave it, or omit cursor to start again"
        )
    return offset


@dataclass
class Page(Generic[O]):
    items: list[O]
    next_cursor: str | None
    note: str | None


def paginate(items: list[O], limit: int, cursor: str | None, key: str, cap: int = RESPONSE_CAP) -> Page[O]:
    """One page of `items` of at most `limit`, cut at a record boundary if it would exceed `cap` characters."""
    start = decode_cursor(cursor, key)
    chunk = items[start : start + limit]
    keep = fit(chunk, cap)
    note = None
    if keep < len(chunk):
        note = (
            f"Answer cut after {keep} of {len(chunk)} records to stay under {cap} characters; "
            "pass next_cursor for the rest."
        )
        chunk = chunk[:keep]
    end = start + len(chunk)
    return Page(chunk, encode_cursor(end, key) if end < len(items) else None, note)


def list_page(
    items: list[O], limit: int, cursor: str | None, key: str, empty: str, *, cut: str | None = None
) -> tuple[list[O], dict[str, Any]]:
    """The one list-answer helper: a page of `items` and the envelope fields (total, next_cursor, note).

    `empty` is the note when nothing matched ("no" is an answer, not an error). `cut` says why `items` may
    not be everything that matches (an upstream page or budget ran out): then there is no total, and the
    note says so, because a page length is never a total."""
    page = paginate(items, limit, cursor, key)
    notes = [n for n in (cut, page.note or (None if items else empty)) if n]
    return page.items, {
        "total": None if cut else len(items),
        "next_cursor": page.next_cursor,
        "note": " ".join(notes) or None,
    }


def as_of() -> str:
    """When a list answer was read, to the minute (UTC): 'today', 'overdue' and 'running' are relative to it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")
