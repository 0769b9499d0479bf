"""Write tests/contract_table.json, the project's own table of the sheepCRM API it relies on, from a copy of
sheepCRM's documents (the folder holding openapi.yaml, openapi-with-tasks.yaml and openapi-2025-02-draft.yaml,
with the v1 notes in ../seeds/):

    python scripts/contract_table.py /path/to/sheepcrm-api                      # rewrite the table
    python scripts/contract_table.py /path/to/sheepcrm-api --add "PUT /x/{bucket}"  # rely on one more operation
    python scripts/contract_table.py /path/to/sheepcrm-api --check              # exit 1 when the table is stale

The operations are the ones the table already lists (plus --add); the fields are those tools/contract.py's READS
read. For each the table keeps only what the project checks, each with its reference (document, cut, line):
the query parameters (type, enum), the documented statuses, and where each field read is named. Nothing at test
time runs this script: the tests read the committed table, and with SHEEPCRM_API_DOCS set they also rebuild the
table with `build()` and compare (tests/test_contract_table.py).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "tests" / "contract_table.json"
MAIN, TASKS, DRAFT = "openapi.yaml", "openapi-with-tasks.yaml", "openapi-2025-02-draft.yaml"
NOTES = "seeds/sheepcrm-api-v1-notes.txt"  # beside the documents' folder: ../seeds/
CUTS = {
    MAIN: "2025-04-22 (05e816a), the contract for all it covers",
    TASKS: "2024-12-11 (e265ba3), for tasks only",
    DRAFT: "2025-02-10 (ca812a3), withdrawn draft: the newer task parameters are accepted too",
    NOTES: "the v1 notes",
}
Pointer = tuple[str, ...]


class Doc:
    """One OpenAPI document: its data, and the line of every node (by JSON pointer)."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        self.data: dict[str, Any] = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        self.lines: dict[Pointer, int] = {}
        self._walk(yaml.compose(text, Loader=loader), ())

    def _walk(self, node: yaml.Node, at: Pointer) -> None:
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self.lines[(*at, str(key.value))] = key.start_mark.line + 1
                self._walk(value, (*at, str(key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                self._walk(value, (*at, str(i)))

    def ref(self, at: Pointer) -> str:
        return f"{self.name}:{self.lines[at]}"

    def get(self, at: Pointer) -> Any:
        node: Any = self.data
        for key in at:
            node = node[int(key)] if isinstance(node, list) else node[key if key in node else _number(key)]
        return node

    def resolve(self, at: Pointer) -> Pointer:
        """Follow $ref (within the document) to the pointer of the node it names."""
        for _ in range(20):
            node = self.get(at)
            if not (isinstance(node, dict) and "$ref" in node):
                return at
            at = tuple(node["$ref"].lstrip("#/").split("/"))
        raise ValueError(f"{self.name}: $ref loop at {at}")


def _number(key: str) -> Any:
    return int(key) if key.isdigit() else key


def template_regex(template: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{"):
            out += r"/[^/]+/[^/]+/[^/]+/" if part.endswith("_uri}") else r"[^/]+"
        else:
            out += re.escape(part)
    return re.compile(out)


def _type(doc: Doc, at: Pointer) -> dict[str, Any]:
    schema = doc.get(doc.resolve(at))
    out: dict[str, Any] = {}
    if isinstance(schema, dict):
        if "type" in schema:
            out["type"] = schema["type"]
        if "enum" in schema:
            out["enum"] = schema["enum"]
    return out


def _properties(doc: Doc, at: Pointer, path: tuple[str, ...], seen: set[Pointer]) -> list[tuple[str, Pointer, str]]:
    """(name, pointer, where in the answer) of every property under the schema at `at`, breadth first."""
    at = doc.resolve(at)
    if at in seen:
        return []
    seen.add(at)
    node = doc.get(at)
    found: list[tuple[str, Pointer, str]] = []
    if not isinstance(node, dict):
        return found
    nested: list[tuple[Pointer, tuple[str, ...]]] = []
    for name in node.get("properties") or {}:
        found.append((name, (*at, "properties", name), ".".join(path)))
        nested.append(((*at, "properties", name), (*path, name)))
    if "items" in node:
        nested.append(((*at, "items"), (*path, "[]")))
    for combo in ("allOf", "oneOf", "anyOf"):
        for i in range(len(node.get(combo) or [])):
            nested.append(((*at, combo, str(i)), path))
    for child, child_path in nested:
        found.extend(_properties(doc, child, child_path, seen))
    return found


def _declared(node: Any, at: Pointer) -> list[tuple[str, Pointer]]:
    """(name, pointer) of every property declared anywhere under `node`, in document order."""
    found: list[tuple[str, Pointer]] = []
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            found.extend((k, (*at, "properties", str(k))) for k in node["properties"])
        for key, value in node.items():
            found.extend(_declared(value, (*at, str(key))))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_declared(value, (*at, str(i))))
    return found


def _documents(template: str) -> list[str]:
    """The documents that speak for a path: the tasks cut and the draft for tasks, the latest cut for the rest."""
    return [TASKS, DRAFT] if template.startswith("/notifications/") else [MAIN]


def _op_in(doc: Doc, method: str, template: str) -> Pointer | None:
    item = doc.data["paths"].get(template)
    return ("paths", template, method.lower()) if item and method.lower() in item else None


def _operation(docs: dict[str, Doc], method: str, template: str) -> tuple[Doc, Pointer] | None:
    for name in _documents(template):
        if (op := _op_in(docs[name], method, template)) is not None:
            return docs[name], op
    return None


def build(folder: Path, operations: list[tuple[str, str]]) -> dict[str, Any]:
    """The table for `operations` ((method, path template) pairs) from the documents in `folder`."""
    sys.path.insert(0, str(REPO))
    from sheepcrm_mcp.tools.contract import READS, UNDOCUMENTED

    docs = {name: Doc(name, (folder / name).read_text()) for name in (MAIN, TASKS, DRAFT)}
    notes = (folder.parent / NOTES).read_text().splitlines()
    table: dict[str, Any] = {
        "about": "The sheepCRM API this project relies on, written by scripts/contract_table.py from sheepCRM's "
        "documents. ref = document:line. A field with `at` is declared in that operation's answer (at that place, "
        "with that type); one without is named by the documents elsewhere (the same family, or the v1 notes); "
        "ref null = named by no document for it, with the reason in tools/contract.py UNDOCUMENTED.",
        "cuts": CUTS,
        "error": {
            "ref": docs[MAIN].ref(("components", "schemas", "error")),
            "properties": {
                k: _type(docs[MAIN], ("components", "schemas", "error", "properties", k))
                for k in docs[MAIN].data["components"]["schemas"]["error"]["properties"]
            },
        },
        "operations": [],
        "fields": {},
    }
    for method, template in sorted(set(operations), key=lambda o: (o[1], o[0])):
        params: dict[str, Any] = {}
        statuses: dict[str, str] = {}
        primary = _operation(docs, method, template)
        if primary is None:
            raise SystemExit(f"{method} {template}: no such operation in the documents")
        for name in _documents(template):
            doc = docs[name]
            if (op := _op_in(doc, method, template)) is None:
                continue
            item = doc.get(op[:2])
            for where, entries in ((op[:2], item.get("parameters") or []), (op, doc.get(op).get("parameters") or [])):
                for i in range(len(entries)):
                    at = doc.resolve((*where, "parameters", str(i)))
                    p = doc.get(at)
                    if p.get("in") == "query" and p["name"] not in params:
                        params[p["name"]] = {**_type(doc, (*at, "schema")), "required": bool(p.get("required")),
                                             "ref": doc.ref(at)}
            for status in doc.get(op).get("responses") or {}:
                statuses.setdefault(str(status), doc.ref((*op, "responses", str(status))))
        doc, op = primary
        table["operations"].append(
            {"method": method, "path": template, "ref": doc.ref(op), "params": params, "statuses": statuses}
        )

    everywhere: dict[str, str] = {}  # every property any schema of the three documents declares: its first line
    for name in (MAIN, TASKS, DRAFT):
        for prop, at in _declared(docs[name].data, ()):
            everywhere.setdefault(prop, docs[name].ref(at))
    for read in READS:
        answer: dict[str, list[tuple[Pointer, str, Doc]]] = {}  # a field -> where each document declares it
        for name in _documents(read.path):
            doc = docs[name]
            op = _op_in(doc, "GET", read.path)
            ok = next((s for s in ("200", "201") if op and s in (doc.get(op).get("responses") or {})), None)
            if op is None or ok is None:
                continue
            body = (*op, "responses", ok, "content", "application/json", "schema")
            try:
                doc.get(body)
            except (KeyError, TypeError):
                continue
            first: dict[str, tuple[Pointer, str, Doc]] = {}
            for prop, at, where in _properties(doc, body, (), set()):
                first.setdefault(prop, (at, where, doc))
            for prop, found in first.items():
                answer.setdefault(prop, []).append(found)
        fields: dict[str, Any] = {}
        for field in (*read.wrapper, *read.fields):
            if field in answer:  # declared in the answer: where, with which type (every cut that speaks for it)
                places = answer[field]
                kinds = list(dict.fromkeys(_type(doc, at).get("type") for at, _, doc in places))
                fields[field] = {
                    "type": [k for k in kinds if k] if len(kinds) > 1 else kinds[0],
                    "at": list(dict.fromkeys(where for _, where, _ in places)),
                    "ref": ", ".join(doc.ref(at) for at, _, doc in places),
                }
            elif (read.name, field) in UNDOCUMENTED:
                fields[field] = {"ref": None}  # no document names it for this endpoint: the reason is in UNDOCUMENTED
            elif field in everywhere:
                fields[field] = {"ref": everywhere[field]}
            elif line := next((n for n, text in enumerate(notes, 1) if f'"{field}"' in text), None):
                fields[field] = {"ref": f"{NOTES}:{line}"}
            else:
                raise SystemExit(f"{read.name}: {field} is named by no document; add it to UNDOCUMENTED with a reason")
        table["fields"][read.name] = {"path": read.path, "core": list(read.core), "fields": fields}
    return table


def render(table: dict[str, Any]) -> str:
    """JSON, one operation and one field per line."""

    def dump(value: Any, depth: int, indent: str) -> str:
        flat = isinstance(value, list) and not all(isinstance(v, dict) for v in value)
        if depth == 0 or flat or not isinstance(value, dict | list) or not value:
            return json.dumps(value, ensure_ascii=False)
        inner = indent + " "
        if isinstance(value, list):
            return "[\n" + ",\n".join(inner + dump(v, depth - 1, inner) for v in value) + "\n" + indent + "]"
        items = [f"{inner}{json.dumps(k)}: {dump(v, depth - 1, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"

    depths = {"operations": 1, "fields": 3}
    body = [f" {json.dumps(k)}: {dump(v, depths.get(k, 0), ' ')}" for k, v in table.items()]
    return "{\n" + ",\n".join(body) + "\n}\n"


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[0])
    current = json.loads(TABLE.read_text()) if TABLE.exists() else {"operations": []}
    operations = [(o["method"], o["path"]) for o in current["operations"]]
    args = argv[1:]
    while "--add" in args:
        i = args.index("--add")
        method, template = args[i + 1].split(" ", 1)
        operations.append((method.upper(), template))
        del args[i : i + 2]
    text = render(build(folder, operations))
    if "--check" in args:
        if TABLE.exists() and TABLE.read_text() == text:
            return 0
        print(f"{TABLE.relative_to(REPO)} is stale: run python scripts/contract_table.py {folder}", file=sys.stderr)
        return 1
    TABLE.write_text(text)
    print(f"wrote {TABLE.relative_to(REPO)}: {len(operations)} operations")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
