"""sheepCRM's documents as a request checker and a field dictionary, for the contract tests.

`check_request(method, path, query)` says why a request the client sent is not one the documents
describe (path and method, parameter names, integer/boolean/enum values), or None. openapi.yaml
(2025-04-22) is the contract for all it covers, the 2024-12 cut for tasks, with the 2025-02 draft's task
parameters accepted too; the v1 calls follow the v1 notes.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml

DOCS = Path(__file__).resolve().parents[1] / ".." / "shared" / "sheepcrm-api"
SEEDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "seeds"
MAIN, TASKS, DRAFT = "openapi.yaml", "openapi-with-tasks.yaml", "openapi-2025-02-draft.yaml"

LISTING_PARAMS = {"page", "page_size", "mode"}
FIELD_FILTER = re.compile(
    r"[a-z_]+(__(and|eq|gt|gte|lt|lte|ne|near|none|or|raw|startswith|startswithi))?"
)
# The v1 calls (v1 notes): path regex, method -> query parameter names.
V1: list[tuple[str, dict[str, set[str] | None]]] = [
    (r"/api/v1/ping/", {"GET": set()}),
    (r"/api/v1/[^/]+/", {"GET": set()}),
    (r"/api/v1/[^/]+/user/membership/", {"GET": {"email", "realtime"}}),
    (r"/api/v1/[^/]+/[a-z_]+/", {"GET": None, "POST": set()}),  # a listing (field filters, paging); a create
    (r"/api/v1/[^/]+/[a-z_]+/[^/]+/", {"GET": set(), "PUT": set(), "DELETE": set()}),
]


@cache
def spec(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCS / name).read_text())
    return loaded


def _regex(template: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{"):
            out += r"/[^/]+/[^/]+/[^/]+/" if part.endswith("_uri}") else r"[^/]+"
        else:
            out += re.escape(part)
    return re.compile(out)


def _resolve(doc: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        node: Any = doc
        for key in item["$ref"].lstrip("#/").split("/"):
            node = node[key]
        item = node
    return item


def operations(method: str, path: str) -> list[tuple[str, dict[str, Any]]]:
    """(document, query parameters by name) of every documented operation matching the request; the most
    specific template (fewest placeholders) wins within a document."""
    found = []
    names = [TASKS, DRAFT] if path.startswith("/notifications/") else [MAIN]
    for name in names:
        doc = spec(name)
        matches = [t for t in doc["paths"] if _regex(t).fullmatch(path)]
        matches.sort(key=lambda t: t.count("{"))
        for template in matches[:1]:
            item = doc["paths"][template]
            op = item.get(method.lower())
            if op is None:
                continue
            params = {}
            for p in [*item.get("parameters", []), *op.get("parameters", [])]:
                p = _resolve(doc, p)
                if p.get("in") == "query":
                    params[p["name"]] = _resolve(doc, p.get("schema") or {})
            found.append((name, params))
    return found


def _bad_value(name: str, value: str, schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        return f"{name}={value!r} is not an integer"
    if kind == "boolean" and value.lower() not in ("true", "false"):
        return f"{name}={value!r} is not a boolean"
    if "enum" in schema and value not in [str(v) for v in schema["enum"]]:
        return f"{name}={value!r} is not one of {schema['enum']}"
    return None


def check_request(method: str, path: str, query: str) -> str | None:
    pairs = parse_qsl(query, keep_blank_values=True)
    names = {k for k, _ in pairs}
    if path.startswith("/api/v1/"):
        for rx, methods in V1:
            if re.fullmatch(rx, path):
                if method not in methods:
                    return f"{method} {path}: method not in the v1 notes"
                allowed = methods[method]
                if allowed is None:  # "Append the field name with a modifier to use query logic" (v1 notes)
                    extra = {n for n in names if n not in LISTING_PARAMS and not FIELD_FILTER.fullmatch(n)}
                    return f"{method} {path}: not a field filter: {sorted(extra)}" if extra else None
                extra = names - allowed
                return f"{method} {path}: undocumented parameter(s) {sorted(extra)}" if extra else None
        return f"{method} {path}: no such v1 call in the v1 notes"
    ops = operations(method, path)
    if not ops:
        return f"{method} {path}: no documented operation"
    documented: dict[str, dict[str, Any]] = {}
    for _, params in ops:
        documented.update(params)
    extra = names - documented.keys()
    if extra:
        return f"{method} {path}: undocumented parameter(s) {sorted(extra)}"
    for k, v in pairs:
        if bad := _bad_value(k, v, documented[k]):
            return f"{method} {path}: {bad}"
    return None


def _properties(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            out.update(props)
        for value in node.values():
            _properties(value, out)
    elif isinstance(node, list):
        for value in node:
            _properties(value, out)


@cache
def documented_names() -> frozenset[str]:
    """Every property name any schema of the three cuts declares, plus the names in the v1 notes' examples."""
    names: set[str] = set()
    for doc in (MAIN, TASKS, DRAFT):
        _properties(spec(doc), names)
    notes = (SEEDS / "sheepcrm-api-v1-notes.txt").read_text()
    names.update(re.findall(r'"([A-Za-z_]+)"\s*:', notes))
    return frozenset(names)
