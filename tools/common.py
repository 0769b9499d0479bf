"""Pieces every domain shares: paging arguments, list envelopes, uid/uri arguments."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from sheepcrm_mcp.server.paging import check_cursor
from sheepcrm_mcp.server.specs import Input, Output
from sheepcrm_mcp.sheepcrm import NotFoundError, UpstreamError
from sheepcrm_mcp.sheepcrm.scope import UID_RE, check_uid, parse_uri

Limit = Annotated[int, Field(ge=1, le=50)]
Cursor = Annotated[str | None, Field(max_length=200), AfterValidator(check_cursor)]  # next_cursor of the previous page
Detail = Annotated[Literal["concise", "full"], Field()]


def _contact_ref(value: str) -> str:
    if "@" in value:
        raise ValueError("is an email, not a contact uri: find the uri with search_contacts(email=...)")
    if not value.startswith("/"):
        raise ValueError("is not a record uri (/bucket/person/uid/): find the contact with search_contacts(query=...)")
    return value


ContactRef = Annotated[
    str,
    Field(min_length=1, max_length=200, description="Contact uri."),
    AfterValidator(_contact_ref),
]


def uid_or_uri(finder: str) -> AfterValidator:
    """The check of a uid-or-uri argument; a wrong form gets a hint naming `finder`."""

    def check(value: str) -> str:
        if value.startswith("/"):
            parts = value.strip("/").split("/")
            if len(parts) == 3 and UID_RE.fullmatch(parts[2]):
                return value
            raise ValueError(f"is not a record uri (/bucket/type/uid/); find the record with {finder}")
        if not UID_RE.fullmatch(value):
            raise ValueError(f"is not a uid (letters and digits) or uri: a name or title? find the uid with {finder}")
        return check_uid(value)

    return AfterValidator(check)


# The one uid input type: a uid or the record's uri (either form other tools return), checked at the input; a
# wrong form (a title, an email) is answered with the tool that finds the right one. Each domain names its finder.
UidOrUri = Annotated[str, Field(min_length=1, max_length=200)]


def uid_in(value: str, bucket: str, types: tuple[str, ...]) -> str:
    """The uid of a uid-or-uri argument; a uri must be of this bucket and one of `types`."""
    return parse_uri(value, bucket, types).uid if value.startswith("/") else value


class Paged(Input):
    limit: Limit = 10
    cursor: Cursor = None


class ListOutput(Output):
    total: int | None = Field(None, description="How many records match in all, when known.")
    next_cursor: str | None = Field(None, description="Pass as cursor to get the next page; null on the last page.")
    note: str | None = Field(None, description="Anything the reader should know about this answer.")


class TimedListOutput(ListOutput):
    """A list whose meaning depends on the time it was read (today, overdue, running)."""

    as_of: str | None = None


def text(value: Any) -> str | None:
    """A non-empty string or None, for the loose values sheepCRM returns. An object or a flag is not text (a name,
    a date, an email): None, never its printed form."""
    if value is None or isinstance(value, (dict, bool)):
        return None
    if isinstance(value, list):
        value = next((v for v in value if v), None)
        return text(value)
    s = str(value).strip()
    return s or None


def flag(value: Any) -> bool | None:
    """A sheepCRM flag: True or False only when it is a JSON boolean; anything else ("false", 1, a list) is unknown."""
    return value if isinstance(value, bool) else None


def deleted(row: Any) -> bool:
    """A record sheepCRM marks deleted, wherever it says so: the v1 notes put a record's state at the top of a
    listed row (`state`) and under `meta` (`meta.state`) of a single record; v2 membership records carry
    `record_state`, on the row or in its `data`."""
    if not isinstance(row, dict):
        return False
    meta, data = row.get("meta"), row.get("data")
    meta = meta if isinstance(meta, dict) else {}
    data = data if isinstance(data, dict) else {}
    states = (row.get("state"), row.get("record_state"), meta.get("state"), meta.get("record_state"),
              data.get("record_state"))
    return any(isinstance(s, str) and s.strip().lower() == "deleted" for s in states)


def split_label(value: Any) -> tuple[str, str | None] | None:
    """One entry of a v1 list field (email, telephone) as (value, label): EVIDENCE.md (v1 list fields) shows them
    stored as `value;label`; a plain entry has no label. None for an empty entry."""
    s = text(value)
    if s is None:
        return None
    plain, sep, label = s.partition(";")
    return (plain.strip() or s), (label.strip() or None) if sep else None


def plain(value: Any) -> str | None:
    """The first non-empty entry of a v1 list field (or a single value), its label split off."""
    values = value if isinstance(value, list) else [value]
    return next((e[0] for v in values if (e := split_label(v))), None)


def fold(value: Any) -> str:
    """A text as it is matched against another (an email, a name): compatibility forms and case folded, spaces
    collapsed."""
    return " ".join(unicodedata.normalize("NFKC", str(value or "")).split()).casefold()


def email_addresses(value: Any) -> list[str]:
    """Every address of a v1 email field (a list or one value, entries possibly `address;label`), folded (fold)."""
    values = value if isinstance(value, list) else [value]
    return [fold(e[0]) for v in values if (e := split_label(v))]


def labelled(value: Any) -> list[str]:
    """Every non-empty entry of a v1 list field as shown to a reader: `x@y (home)`, or `x@y` without a label."""
    values = value if isinstance(value, list) else [value]
    return [f"{e[0]} ({e[1]})" if e[1] else e[0] for v in values if (e := split_label(v))]


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


def shape(data: Any) -> str:
    """What an answer looks like, by its keys and kinds only: never a value (keys are cut and plain)."""
    if isinstance(data, dict):
        keys = sorted(re.sub(r"[^A-Za-z0-9_.-]", "?", str(k))[:30] for k in data)
        more = f" and {len(keys) - 8} more" if len(keys) > 8 else ""
        return f"an object with keys {', '.join(keys[:8]) or '(none)'}{more}"
    if isinstance(data, list):
        kinds = sorted({type(v).__name__.replace("dict", "object").replace("str", "string") for v in data})
        return f"a list of {len(data)} ({', '.join(kinds) or 'empty'})"
    return f"a {type(data).__name__.replace('str', 'string').replace('NoneType', 'null')}"


def listed(data: Any, what: str, *keys: str, single: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The records of an answer whose body the documents do not define: a list under one of `keys`, a bare list,
    or one record (an object with one of the `single` fields). Any other shape is not read as "none": it raises
    UpstreamError saying sheepCRM's answer could not be read, naming its keys (never its values)."""
    if isinstance(data, list):
        return objects(data, what)
    if isinstance(data, dict):
        for key in keys:
            value = data.get(key)
            if isinstance(value, list):
                return objects(value, what)
        if any(data.get(f) for f in single):
            return [data]
    raise unreadable(what, data, f"{' or '.join(f'{k!r}' for k in keys)} holding a list")


def objects(items: list[Any], what: str) -> list[dict[str, Any]]:
    """The items of a list of records, every one an object: an item of another kind (a null, a string) cannot be
    read, and a shorter list or count would be a guess, so it raises UpstreamError saying how many items could
    not be read (their kinds, never their values)."""
    bad = [v for v in items if not isinstance(v, dict)]
    if not bad:
        return items
    kinds = sorted({type(v).__name__.replace("str", "string").replace("NoneType", "null") for v in bad})
    raise UpstreamError(
        f"Could not read {len(bad)} of the {len(items)} items of sheepCRM's answer to {what} ({', '.join(kinds)} "
        "where records were expected): no list or count is given, as it would leave them out. The answer is "
        "unknown; `sheepcrm-mcp doctor --contract` checks every read."
    )


def unreadable(what: str, data: Any, expected: str) -> UpstreamError:
    """The error for an answer to `what` that is not what sheepCRM's documents say (its shape by keys and kinds,
    never a value): the answer is unknown, never "none" or "no"."""
    return UpstreamError(
        f"Could not read sheepCRM's answer to {what} (shape: {shape(data)}; expected {expected}). This is not "
        "'none found': the answer is unknown. sheepCRM may have changed; `sheepcrm-mcp doctor --contract` checks "
        "every read."
    )


def an_object(data: Any, what: str) -> dict[str, Any]:
    """An answer the documents give as an object; any other JSON value raises UpstreamError (could not read)."""
    if isinstance(data, dict):
        return data
    raise unreadable(what, data, "an object")


def record_data(record: Any, what: str, part: str = "data") -> dict[str, Any]:
    """The v1 record's `data` (or `meta`) object ({display_value, data, meta}; none when absent or null); a record
    or a part that is not an object raises UpstreamError (could not read), never a record with no fields."""
    data = an_object(record, what).get(part)
    if data is None:
        return {}
    if isinstance(data, dict):
        return data
    raise unreadable(what, record[part], f"`{part}` holding an object")


def places(value: Any) -> int | None:
    """A count of places: a whole number, never below 0 (an oversold count is 0 free); None when sheepCRM's value
    is absent or not a number (unknown, never 0; a boolean is not a count)."""
    if isinstance(value, bool):
        return None
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return None


FREE_BASIS = (
    "the event's total_stock_available when its ticket types share one stock (ticket_stock_control), else the sum "
    "of the ticket types' available places (which may overstate stock they share)"
)


def shares_stock(event: dict[str, Any]) -> bool:
    """Whether the event's ticket types share one stock (openapi.yaml's `ticket_stock_control` true)."""
    return flag(event.get("ticket_stock_control")) is True


def shared_stock(event: dict[str, Any]) -> int | None:
    """openapi.yaml's `total_stock_available` when the event's ticket types share one stock (shares_stock) and it is
    a count; else None."""
    return places(event.get("total_stock_available")) if shares_stock(event) else None


def free_places(event: dict[str, Any], tickets: list[dict[str, Any]]) -> int | None:
    """An event's free places (FREE_BASIS): its shared_stock when its ticket types share one stock, None when that
    figure cannot be read (their sum would overstate it); else the sum of every ticket type's `available`, None when
    any cannot be read."""
    if shares_stock(event):
        return shared_stock(event)
    counts = [places(t.get("available")) for t in tickets]
    return None if not counts or None in counts else sum(c for c in counts if c is not None)


def count_of(data: Any) -> int | None:
    """The `count` of an answer (a segment's /count, a contact's membership list) as a whole number, or None when it
    is absent or not one (a number with a fraction, a flag, a list: never read as a count)."""
    count = data.get("count") if isinstance(data, dict) else None
    if isinstance(count, float) and count.is_integer() and count >= 0:
        return int(count)
    if isinstance(count, (int, str)) and not isinstance(count, bool) and str(count).isdigit():
        return int(count)
    return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True)
class V1Page:
    """One answer of a v1 listing ({results, total, page, pages, page_size}, EVIDENCE.md: v1 listing paging). The
    request's paging names are not documented (page/page_size is a guess), so the answer's own `page` and
    `page_size` say which part of the list it holds: `start` is the position of its first record, and `honoured`
    is False when it is not the page asked for (sheepCRM ignored the paging parameters, or paged otherwise).
    `unechoed` names the echo keys that are missing or not a page number: which part of the list the answer holds
    is then unknown (`start` and `size` are only those asked for), and `honoured` is False."""

    records: list[dict[str, Any]]
    total: int | None
    start: int
    size: int
    honoured: bool
    unechoed: tuple[str, ...] = ()

    @property
    def end(self) -> int:
        return self.start + len(self.records)

    @property
    def last(self) -> bool:
        """No later page can hold a record: this page's place in the list reaches sheepCRM's `total`, or, with no
        total, the page is short. A short page is not the end while the total says there are more."""
        if self.total is not None:
            return self.start + self.size >= self.total
        return len(self.records) < self.size

    def unconfirmed(self, what: str) -> str:
        """What to say when the answer does not say which part of the list it holds (`unechoed`)."""
        keys = " and ".join(f"`{k}`" for k in self.unechoed)
        return (
            f"Could not read which part of {what} sheepCRM's answer holds: its {keys} (the page it answered) is "
            f"missing or not a page number, so the order of its {len(self.records)} record(s) in the list could not "
            "be confirmed: the list could not be read completely."
        )

    def unread(self, what: str) -> str:
        """What to say when the list could not be read past this answer."""
        if self.unechoed:
            return self.unconfirmed(what)
        of = f"{self.total}" if self.total is not None else "an unknown number"
        return (
            f"sheepCRM did not page {what} as asked (it answered page {self.start // self.size + 1} of "
            f"{self.size}), so only its first {self.end} of {of} could be read: the list could not be read "
            "completely."
        )


def _echo(value: Any) -> int | None:
    """A page number or size a v1 listing echoes: a whole number from 1; None when absent or not one."""
    number = _count(value)
    return number if number else None


def v1_page(data: Any, what: str, page: int, page_size: int) -> V1Page:
    """Read one v1 listing answer asked for with `page` and `page_size` (see V1Page); an unreadable one raises. An
    echo that is missing or not a page number is named in `unechoed`, never taken as the page asked for."""
    records = listed(data, what, "results")
    d: dict[str, Any] = data if isinstance(data, dict) else {}
    got_page, got_size = _echo(d.get("page")), _echo(d.get("page_size"))
    unechoed = tuple(k for k, v in (("page", got_page), ("page_size", got_size)) if v is None)
    got_page, got_size = got_page or page, got_size or page_size
    return V1Page(records, _count(d.get("total")), (got_page - 1) * got_size, got_size,
                  not unechoed and (got_page, got_size) == (page, page_size), unechoed)


def v1_listing(client: Any, rtype: str, filters: dict[str, Any]) -> Callable[[int, int], Awaitable[Any]]:
    """The pages of the v1 listing of `rtype` filtered by `filters`, as v1_all fetches them."""
    return lambda page, size: client.resources(rtype, filters, page=page, page_size=size)


async def v1_all(
    fetch: Callable[[int, int], Awaitable[Any]], what: str, page_size: int = 100, budget: int = 10
) -> tuple[list[dict[str, Any]], str | None]:
    """Every record of a v1 listing, page by page (at most `budget` pages), each answer checked to be the next part
    of the list (V1Page: its echoed paging, no record twice). Returns (records, unread): `unread` says why the list
    could not be read completely (sheepCRM did not page as asked, or more than `budget` pages: known from its
    `total` after the first page, when it sends one), or its pages held fewer records than its `total` says (a short
    page is read past while the total says there are more), or an answer did not say which page it holds and no
    total confirms that every record was read (V1Page.unechoed), None when it was read whole. An unreadable answer
    raises."""
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    at = 0  # where the next page starts in sheepCRM's list
    for page in range(1, budget + 1):
        got = v1_page(await fetch(page, page_size), what, page, page_size)
        uris = {u for r in got.records if (u := text(r.get("uri")))}
        if got.start != at or uris & seen:  # not the next part of the list (sheepCRM ignored the paging)
            return records, got.unread(what)
        records.extend(got.records)
        seen |= uris
        at = got.start + got.size
        if got.last:
            if got.unechoed and got.total is None:  # a short page is the end only of the part asked for
                return records, got.unconfirmed(what)
            if got.total is not None and len(records) < got.total:
                return records, (
                    f"sheepCRM's total for {what} is {got.total}, but its pages held {len(records)}: the list could "
                    "not be read completely."
                )
            return records, None
        if got.total is not None and got.total > budget * page_size:
            break  # sheepCRM says the list is longer than the budget: its other pages are not read in vain
    return records, (
        f"sheepCRM holds more than {len(records)} of {what}; only the first {len(records)} were read: the list could "
        "not be read completely."
    )


async def v1_none_found(client: Any, what: str) -> None:
    """sheepCRM's v1 answers 404 both for "no such record" and for credentials it does not accept: a 404 counts as
    "none" only once the same key is seen to read the bucket on v1 (bucket_info); otherwise it raises
    UpstreamError, an error for the operator, never "none"."""
    try:
        await client.bucket_info()
    except NotFoundError:
        raise UpstreamError(
            f"sheepCRM's v1 API answered 404 to {what} and to the bucket itself: the API key or the bucket may be "
            "wrong (run `sheepcrm-mcp doctor`). This is not 'none found': the answer is unknown."
        ) from None


def ref(value: Any) -> str | None:
    """A uri given as a string or as an expanded uri {"ref", "display_value"} (openapi.yaml uses both)."""
    if isinstance(value, dict):
        return text(value.get("ref"))
    return text(value)


PAGE = 250  # records asked for per page of a v2 list the tools read whole (events, segments)


async def fetch_pages(
    fetch: Callable[[int, int], Awaitable[Any]], what: str, *keys: str, page_size: int = PAGE, budget: int = 8
) -> tuple[list[dict[str, Any]], bool]:
    """Every record of a paged list with no total: pages until a page shorter than the size sheepCRM uses, at most
    `budget` pages, each record once (by uid, uri or id). sheepCRM may cap the page size below the one asked: a
    first page shorter than asked is taken as that cap, not as the end, and the next page says (empty when the list
    ended there). Returns (records, complete); complete is False when the budget ran out on a full page. A page
    that cannot be read raises (listed), never counts as the end of the list; so does a page holding the same
    records as the one before (sheepCRM ignored `page`), never read as more records."""
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    previous: list[str] = []
    size = page_size  # the page size sheepCRM uses
    for page in range(1, budget + 1):
        chunk = listed(await fetch(page, page_size), what, *keys)
        keyed = [(text(r.get("uid")) or text(r.get("uri")) or text(r.get("id")), r) for r in chunk]
        ids = [k for k, _ in keyed if k]
        if page > 1 and ids and ids == previous:
            raise UpstreamError(
                f"sheepCRM answered page {page} of {what} with the records of page {page - 1} (it did not page as "
                f"asked), so only the first {len(found)} could be read: the list could not be read completely. "
                "This is not the whole list: the answer is unknown."
            )
        previous = ids
        for k, r in keyed:
            if k is None or k not in seen:
                found.append(r)
            if k is not None:
                seen.add(k)
        if page == 1 and 0 < len(chunk) < page_size:
            size = len(chunk)  # a cap, or the whole list: the next page tells
        elif len(chunk) < size:
            return found, True
    return found, False
