"""Shared pieces of the reliability and security suite (run with `python -m pytest -m reliability`).

- `ALLOWED` / `out_of_scope()`: the request paths the server may send (the client's endpoints).
- `FIGURES` / `figure()`: measured figures, printed at the end of the run and written as JSON to
  `$RELIABILITY_REPORT` when set (docs/RELIABILITY.md is written from that file).
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import mcp_types as mt

from sheepcrm_mcp.sandbox.app import LoggedRequest

UID = r"[A-Za-z0-9]{1,64}"
CONTACT = r"(person|organisation)"


def allowed_paths(bucket: str) -> list[tuple[frozenset[str], re.Pattern[str]]]:
    """(methods, full-match regex) for every upstream path the client's endpoints send, for `bucket` only."""
    b = re.escape(bucket)
    get = frozenset({"GET"})
    put = frozenset({"PUT"})
    rules = [
        (get, rf"/search/v2/{b}"),
        (get, rf"/search/v2/{b}/person"),
        (get, rf"/search/v2/{b}/help"),
        (get, rf"/api/v2/{b}/{CONTACT}/{UID}/(summary|communications/detail|personal/detail|membership/all)"),
        (get, rf"/audit/v2/{b}/(person|organisation|booking|task|journal|member)/{UID}/audit"),
        (get, rf"/api/v2/{b}/[a-z_]+/{UID}/display"),
        (get, rf"/events/v2/{b}/bookings/(current|future|past|running|draft|all)"),
        (get, rf"/events/v2/{b}/booking/{UID}(/summary|/available_tickets|/attendance/all)?"),
        (put, rf"/events/v2/{b}/booking/{UID}/attendance"),
        (get, rf"/notifications/v2/{b}/tasks(/all)?"),
        (get, rf"/notifications/v2/{b}/task/{UID}"),
        (put, rf"/notifications/v2/{b}/task/{UID}/(complete|uncomplete|snooze)"),
        (get, rf"/segments/v2/{b}/(find|all)"),
        (get, rf"/segments/v2/{b}/segment/{UID}/(count|all|lookup)"),
        (get, r"/api/v1/ping/"),
        (get, rf"/api/v1/{b}/"),
        (get, rf"/api/v1/{b}/user/membership/"),
        (get, rf"/api/v1/{b}/(person|organisation|member|membership_type)/"),  # v1 listings with field filters
        (get, rf"/api/v1/{b}/connections/"),  # EVIDENCE.md (connections)
        (frozenset({"POST"}), rf"/api/v1/{b}/{CONTACT}/"),  # create_contact
        (get, rf"/events/v2/{b}/person/{UID}/orders"),
        (get | put | frozenset({"DELETE"}), rf"/api/v1/{b}/{CONTACT}/{UID}/"),
    ]
    return [(methods, re.compile(pattern, re.ASCII)) for methods, pattern in rules]


QUERY_KEYS = frozenset(
    {"q", "page", "page_size", "limit", "include_text", "email", "realtime", "title", "first_name", "last_name",
     "date_of_birth", "postal_code", "since_days", "name", "person_uri", "status", "include_completed",
     "mode", "connections", "membership_type", "start_date__lte", "end_date__gte", "end_date__lte",
     "email__startswithi", "uri", "connections__ne", "linked_members__startswithi"}
)


def scope_violation(entry: LoggedRequest, bucket: str) -> str | None:
    """Why `entry` is outside the allowed set, or None when it is inside."""
    if entry.raw_path != entry.path:
        return "percent-encoded path"
    if not any(entry.method in m and rx.fullmatch(entry.path) for m, rx in allowed_paths(bucket)):
        return "path or method not in the catalogue"
    try:
        pairs = parse_qsl(entry.query, keep_blank_values=True, strict_parsing=bool(entry.query))
    except ValueError:
        return "malformed query string"
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        return "repeated query parameter"
    if set(keys) - QUERY_KEYS:
        return f"unexpected query parameter(s) {sorted(set(keys) - QUERY_KEYS)}"
    person = dict(pairs).get("person_uri")
    if person is not None and not re.fullmatch(rf"/{re.escape(bucket)}/person/{UID}/", person, re.ASCII):
        return "person_uri outside the bucket"
    return None


def out_of_scope(log: Iterable[LoggedRequest], bucket: str) -> list[tuple[str, str, str, str]]:
    return [(e.method, e.raw_path, e.query, why) for e in log if (why := scope_violation(e, bucket))]


def result_text(result: mt.CallToolResult) -> str:
    parts = [c.text for c in result.content if isinstance(c, mt.TextContent)]
    if result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


FIGURES: dict[str, Any] = {}


def figure(section: str, **values: Any) -> None:
    FIGURES.setdefault(section, {}).update(values)


