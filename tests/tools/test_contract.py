"""Contract, field side: every field the tools read has its reference in sheepCRM's documents in the project's
contract table (tests/contract_table.json), or sits in tools/contract.py's short UNDOCUMENTED table with its
reason, and the tools read no field that table does not list (checked by recording every key the tools touch in
real answers). tests/test_contract_table.py checks the table against the documents themselves."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sheepcrm.transport import Http
from sheepcrm_mcp.tools.contract import READS, UNDOCUMENTED, Read
from tests import manifest
from tests.contract import _regex, field_refs, table
from tests.helpers import approve, open_session


def test_every_field_the_tools_read_has_its_reference() -> None:
    refs = field_refs()
    stale = sorted(
        f"{r.name}: {f}" for r in READS for f in (*r.wrapper, *r.fields) if f not in refs.get(r.name, {})
    )
    assert stale == [], "fields READS reads that tests/contract_table.json lacks: run scripts/contract_table.py"
    listed = {(r.name, f) for r in READS for f in (*r.wrapper, *r.fields)}
    assert {(r, f) for r, fields in refs.items() for f in fields} == listed, "the table lists reads READS has not"
    unreferenced = {(r, f) for r, fields in refs.items() for f, ref in fields.items() if ref is None}
    assert unreferenced == set(UNDOCUMENTED), "a field with no reference needs its reason in UNDOCUMENTED (and back)"
    assert all(len(why) > 20 for why in UNDOCUMENTED.values())
    cuts = table()["cuts"]
    for read, fields in refs.items():
        for field, ref in fields.items():
            for one in (ref or "").split(", ") if ref else []:
                document, line = one.rsplit(":", 1)
                assert document in cuts and int(line) > 0, f"{read}: {field}: {ref}"


@pytest.mark.parametrize("name", ["snoozed_until", "membership_type_display", "user_display", "member_display"])
def test_sandbox_only_fields_are_not_read(name: str) -> None:
    """The fields the old tools depended on are sandbox inventions (no document names them: checked against the
    documents in tests/test_contract_table.py): none may come back into READS or the table."""
    assert all(name not in r.fields for r in READS)
    assert all(name not in fields for fields in field_refs().values())


class Recorder(dict[str, Any]):
    """A dict that notes every key read from it (and from dicts inside it)."""

    def __init__(self, data: dict[str, Any], seen: set[str]) -> None:
        super().__init__({k: wrap(v, seen) for k, v in data.items()})
        self.seen = seen

    def get(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        self.seen.add(str(key))
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.seen.add(str(key))
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.seen.add(str(key))
        return super().__contains__(key)


def wrap(value: Any, seen: set[str]) -> Any:
    if isinstance(value, dict) and not isinstance(value, Recorder):
        return Recorder(value, seen)
    if isinstance(value, list):
        return [wrap(v, seen) for v in value]
    return value


def read_for(path: str) -> Read | None:
    matches = [r for r in READS if _regex(r.path).fullmatch(path)]
    matches.sort(key=lambda r: r.path.count("{"))
    return matches[0] if matches else None


async def test_tools_read_only_the_listed_fields(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tool of both profiles, called as the manifest says, reads exactly the upstream reads its entry
    names, and of each only the fields tools/contract.py lists."""
    seen: dict[str, set[str]] = defaultdict(set)
    reads_of: dict[str, set[str]] = defaultdict(set)
    unknown: list[str] = []
    calling = [""]
    original = Http.get

    async def recording(self: Http, path: str, *args: Any, **kwargs: Any) -> Any:
        data = await original(self, path, *args, **kwargs)
        read = read_for(path)
        if read is None:
            unknown.append(f"{calling[0]}: {path}")
            return data
        reads_of[calling[0]].add(read.name)
        return wrap(data, seen[read.name])

    monkeypatch.setattr(Http, "get", recording)
    facts = sandbox.store.demo_facts()
    for profile in ("staff", "member"):
        async with open_session(sandbox, tmp_path, profile=profile, elicitation=approve, cache_ttl=0) as client:
            for name, args in manifest.calls(facts, profile):
                calling[0] = name
                result = await client.call_tool(name, args)
                assert not result.is_error, (name, result.content)
    assert unknown == [], "upstream reads missing from tools/contract.py"
    declared = {name: set(manifest.entry(name).reads) for name in manifest.every_tool()}
    differ = {
        name: {"read": sorted(reads_of.get(name, ())), "declared": sorted(declared.get(name, ()))}
        for name in {*reads_of, *declared}
        if reads_of.get(name, set()) != declared.get(name, set())
    }
    assert differ == {}, f"the upstream reads differ from tests/manifest.py's `reads`: {differ}"
    by_name = {r.name: r for r in READS}
    extra = {
        name: sorted(keys - {*by_name[name].wrapper, *by_name[name].fields}) for name, keys in seen.items()
    }
    missing = {k: v for k, v in extra.items() if v}
    assert missing == {}, f"fields the tools read but tools/contract.py does not list: {missing}"
    assert {"search", "person search", "v1 record", "memberships", "record history", "events", "attendance",
            "my tasks", "all tasks", "task", "segment members", "help search", "person orders", "person list",
            "member list", "membership_type list"} <= seen.keys()


def test_core_fields_are_read_fields() -> None:
    """Every alternative of a core group is a field the table lists (so the documents check covers it)."""
    assert all(f in r.fields for r in READS for g in (*r.groups, r.envelope) for f in g)
