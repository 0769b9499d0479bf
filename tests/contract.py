"""The project's contract with sheepCRM (tests/contract_table.json) as a request checker, a field dictionary and
an answer checker, for the contract tests. The table is the project's own, committed: the operations, parameters
and fields it relies on, each with its reference in sheepCRM's documents (openapi.yaml, the 2025-04-22 cut, for all
it covers; the 2024-12 cut for tasks, with the 2025-02 draft's task parameters accepted too; the v1 notes).

`check_request(method, path, query)` says why a request the client sent is not one the table describes (path and
method, parameter names, integer/boolean/enum values), or None. `check_answer(method, template, status, body)`
says why an answer is not one the documents allow as far as the project relies on them.

Nothing here reads outside the repository. With SHEEPCRM_API_DOCS pointing at a copy of sheepCRM's documents
(the folder holding openapi.yaml), `docs()` returns it: tests/test_contract_table.py then rebuilds the table from
the documents and compares, and the sandbox's answers are also validated against the full documents.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

TABLE = Path(__file__).with_name("contract_table.json")
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


def docs() -> Path | None:
    """The folder of sheepCRM's documents named by SHEEPCRM_API_DOCS, or None (the default: the repository alone)."""
    folder = os.environ.get("SHEEPCRM_API_DOCS")
    if not folder:
        return None
    path = Path(folder)
    if not (path / "openapi.yaml").is_file():
        raise RuntimeError(f"SHEEPCRM_API_DOCS={folder} does not hold openapi.yaml")
    return path


@cache
def table() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TABLE.read_text())
    return loaded


def _regex(template: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{"):
            out += r"/[^/]+/[^/]+/[^/]+/" if part.endswith("_uri}") else r"[^/]+"
        else:
            out += re.escape(part)
    return re.compile(out)


def operation(method: str, path: str) -> dict[str, Any] | None:
    """The table's operation for a request (the most specific template, fewest placeholders, wins), or None."""
    matches = [o for o in table()["operations"] if _regex(o["path"]).fullmatch(path)]
    matches.sort(key=lambda o: o["path"].count("{"))
    if not matches:
        return None
    return next((o for o in matches if o["path"] == matches[0]["path"] and o["method"] == method), None)


def _bad_value(name: str, value: str, schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        return f"{name}={value!r} is not an integer"
    if kind == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
        return f"{name}={value!r} is not a number"
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
    op = operation(method, path)
    if op is None:
        return f"{method} {path}: not an operation in tests/contract_table.json (scripts/contract_table.py --add)"
    documented: dict[str, dict[str, Any]] = op["params"]
    extra = names - documented.keys()
    if extra:
        return f"{method} {path}: undocumented parameter(s) {sorted(extra)}"
    for k, v in pairs:
        if bad := _bad_value(k, v, documented[k]):
            return f"{method} {path}: {bad}"
    return None


def field_refs() -> dict[str, dict[str, str | None]]:
    """For each read of tools/contract.py: every field it reads -> its reference (None: named by no document)."""
    return {read: {f: spec["ref"] for f, spec in entry["fields"].items()} for read, entry in table()["fields"].items()}


_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
}


def _typed(value: Any, kind: str | list[str] | None) -> bool:
    """Whether `value` has the documented type (or one of them, when the cuts differ)."""
    if kind is None or value is None:  # nulls are read as absent (the reference text shows nulls on strings)
        return True
    if isinstance(kind, list):
        return any(_typed(value, k) for k in kind)
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def _at(body: Any, steps: list[str]) -> list[Any]:
    """The values at a place in an answer ("results.[]": every item of results)."""
    nodes = [body]
    for step in steps:
        if step == "[]":
            nodes = [item for n in nodes if isinstance(n, list) for item in n]
        else:
            nodes = [n[step] for n in nodes if isinstance(n, dict) and step in n]
    return nodes


def check_answer(method: str, template: str, status: int, body: Any) -> list[str]:
    """Why an answer to the operation at `template` is not what the documents say, as far as the table holds them:
    the status is documented (an undocumented one only as an error, with the error object's shape), and every
    field the tools read that the answer declares has the documented type where it is present."""
    op = next((o for o in table()["operations"] if o["path"] == template and o["method"] == method), None)
    if op is None:
        return [f"{method} {template}: not an operation in tests/contract_table.json"]
    problems = []
    if str(status) not in op["statuses"] and status < 400:
        problems.append(f"{method} {template}: status {status} is not documented")
    if status >= 400:
        error = table()["error"]["properties"]
        if not isinstance(body, dict):
            problems.append(f"{method} {template}: the {status} body is not an error object")
        else:
            problems += [f"{method} {template}: error.{k} is not a {error[k]['type']}"
                         for k, v in body.items() if k in error and not _typed(v, error[k].get("type"))]
        return problems
    for read in table()["fields"].values():
        if read["path"] != template or method != "GET":
            continue
        for name, spec in read["fields"].items():
            for place in spec.get("at", []):
                for parent in _at(body, [step for step in place.split(".") if step]):
                    if isinstance(parent, dict) and name in parent and not _typed(parent[name], spec.get("type")):
                        problems.append(f"{method} {template}: {place or 'the answer'}.{name} = "
                                        f"{parent[name]!r:.40} is not a {spec['type']} ({spec['ref']})")
    return problems


def path_regex(read: Any) -> str:
    """The pattern of a contract read's path, whole (for the sandbox's drift rules)."""
    return f"^{_regex(read.path).pattern}$"
