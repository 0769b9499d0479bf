"""Every tool in the catalogue went through every step of CONTRIBUTING.md's "Adding a tool" checklist.

Each assertion names the step a new tool missed and where to do it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sheepcrm_mcp.server.specs import Input, Output, ReadTool, WriteTool
from sheepcrm_mcp.tools.catalogue import TOOLS, TOOLSETS

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
    readme = (REPO / "README.md").read_text()
    mark = " ✎" if isinstance(spec, WriteTool) else ""
    row = f"| `{name}`{mark} |"
    assert row in readme, f"{name}: add a row for it to the README's tool table, with the cell {row!r}"
    calls = _tests_text().replace("'", '"')
    assert re.search(rf'\bcall(_tool)?\([^\n]*"{name}"', calls), (
        f"{name}: no end-to-end test calls it; add one in tests/tools/ (client.call_tool({name!r}, ...))"
    )
    bad_input = (TESTS / "tools" / "test_bad_input.py").read_text()
    assert f'("{name}",' in bad_input, f"{name}: add a bad-input case to CASES in tests/tools/test_bad_input.py"


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
