"""Every tool in the catalogue went through every step of CONTRIBUTING.md's "Adding a tool" checklist.

Each assertion names the step a new tool missed and where to do it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sheepcrm_mcp.server.specs import Input, Output, ReadTool, WriteTool
from sheepcrm_mcp.tools.catalogue import TOOLS, TOOLSETS
from tests import manifest
from tests.helpers import TOOL_ALLOWANCES, TOOLS_LIST_BUDGET

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"


def _tests_text() -> str:
    """The end-to-end tests: every test module but the catalogue's own checks and the bad-input cases."""
    skip = {"test_catalogue.py", "test_bad_input.py", "test_surface.py"}
    return "\n".join(p.read_text() for p in TESTS.rglob("test_*.py") if p.name not in skip)


@pytest.mark.parametrize("spec", TOOLS, ids=[t.name for t in TOOLS])
def test_tool_went_through_the_checklist(spec: ReadTool[Input, Output] | WriteTool[Input]) -> None:
    name = spec.name
    assert re.fullmatch(r"[a-z][a-z_]{2,40}", name), f"{name}: tool names are snake_case verbs"
    assert issubclass(spec.input, Input), f"{name}: its input model must derive from specs.Input"
    if isinstance(spec, ReadTool):
        assert issubclass(spec.output, Output), f"{name}: its output model must derive from specs.Output"
    assert (TESTS / "__toolsnaps__" / f"{name}.json").exists(), (
        f"{name}: no tools/list snapshot; run `UPDATE_TOOLSNAPS=1 .venv/bin/pytest tests/tools/test_surface.py`"
        " and review it"
    )
    assert name in TOOL_ALLOWANCES, (
        f"{name}: give it a character allowance in TOOL_ALLOWANCES (tests/helpers.py): what its snapshot takes"
    )
    listed = json.loads((TESTS / "__toolsnaps__" / f"{name}.json").read_text())
    size = len(json.dumps(listed, separators=(",", ":"), ensure_ascii=False))  # as tools/list sends it
    assert size <= TOOL_ALLOWANCES[name], (
        f"{name}: {size} characters in tools/list, over its allowance of {TOOL_ALLOWANCES[name]}; say it in fewer"
    )
    readme = (REPO / "README.md").read_text()
    mark = " ✎" if isinstance(spec, WriteTool) else ""
    row = f"| `{name}`{mark} |"
    assert row in readme, (
        f"{name}: regenerate the README's tool table: UPDATE_DOCS=1 .venv/bin/pytest tests/test_docs.py"
    )
    calls = _tests_text().replace("'", '"')
    assert re.search(rf'\b(call_tool|answer|answer_body|answer_sized|read)\(\s*(?:[\w.]+,\s*)*"{name}"', calls), (
        f"{name}: no end-to-end test calls it; add one in tests/tools/ (client.call_tool({name!r}, ...))"
    )
    bad_input = (TESTS / "tools" / "test_bad_input.py").read_text()
    assert f'("{name}",' in bad_input, f"{name}: add a bad-input case to CASES in tests/tools/test_bad_input.py"


@pytest.mark.parametrize("name", list(manifest.every_tool()))
def test_every_tool_of_both_catalogues_has_a_manifest_entry(name: str) -> None:
    """The suites that must reach every tool iterate tests/manifest.py; a tool without an entry is named here."""
    assert manifest.missing([manifest.every_tool()[name]]) == []


def test_the_manifest_names_no_tool_that_is_gone() -> None:
    assert set(manifest.MANIFEST) - set(manifest.every_tool()) == set(), "stale entries in tests/manifest.py"


def test_a_new_tool_without_a_manifest_entry_fails_naming_it() -> None:
    async def handler(request: Input, deps: object) -> Output:
        raise AssertionError("never called")

    new = ReadTool(name="list_invoices", description="Invoices of a contact.",
                   toolset="contacts", input=Input, output=Output, handler=handler)
    problems = manifest.missing([new])
    assert len(problems) == 1 and problems[0].startswith("list_invoices: no entry in tests/manifest.py"), problems
    assert not manifest.missing(list(manifest.every_tool().values())), "a catalogue tool has no manifest entry"


@pytest.mark.parametrize("profile", ["staff", "member"])
def test_the_suites_stop_at_a_tool_without_an_entry_naming_it(
    profile: manifest.Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suites read the manifest through entries() and entry(): a tool left out fails them with its name, never
    a bare KeyError or a silent skip."""
    first = manifest.tools_of(profile)[0].name
    monkeypatch.setattr(manifest, "MANIFEST", {k: v for k, v in manifest.MANIFEST.items() if k != first})
    for reach in (lambda: manifest.entries(profile), lambda: manifest.entry(first)):
        with pytest.raises(AssertionError, match=rf"^{first}: no entry in tests/manifest.py MANIFEST"):
            reach()


def test_the_tool_allowances_fit_the_context_budget() -> None:
    stale = set(TOOL_ALLOWANCES) - {t.name for t in TOOLS}
    assert not stale, f"allowances for tools that no longer exist: {sorted(stale)}"
    brackets = len('{"tools":[]}') + len(TOOL_ALLOWANCES) - 1
    total = sum(TOOL_ALLOWANCES.values()) + brackets
    assert total <= TOOLS_LIST_BUDGET, f"the tools' allowances add up to {total}, over TOOLS_LIST_BUDGET"


def test_names_are_unique_and_toolsets_come_from_the_tools() -> None:
    names = [t.name for t in TOOLS]
    assert len(names) == len(set(names)), "two tools share a name"
    assert set(TOOLSETS) == {t.toolset for t in TOOLS}


def test_an_unknown_toolset_is_a_clear_configuration_error() -> None:
    from sheepcrm_mcp.server.settings import ConfigError
    from sheepcrm_mcp.tools.catalogue import select

    with pytest.raises(ConfigError, match=r"unknown toolset.*choose from"):
        select(("events", "nope"), read_only=False)
    assert {t.name for t in select(("all",), read_only=True)} == {t.name for t in TOOLS if isinstance(t, ReadTool)}
