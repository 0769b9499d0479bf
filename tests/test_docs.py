"""The docs follow the catalogue: the README's tool table is generated from tools/catalogue.py between markers.

After changing a tool (its toolset, `description` or `about`), rewrite the table with
`UPDATE_DOCS=1 .venv/bin/pytest tests/test_docs.py` and review `git diff README.md`.
"""

from __future__ import annotations

import os

from sheepcrm_mcp.server.specs import WriteTool
from sheepcrm_mcp.tools.catalogue import TOOLS
from sheepcrm_mcp.tools.resources import guide
from tests.helpers import REPO

BEGIN = "<!-- tool table: generated from tools/catalogue.py by UPDATE_DOCS=1 pytest tests/test_docs.py -->"
END = "<!-- end of tool table -->"


def tool_table() -> str:
    """The README's tool table: one row per tool of the catalogue, in its order; writes carry ✎."""
    rows = ["| toolset | tool | what it answers |", "|---|---|---|"]
    for spec in TOOLS:
        mark = " ✎" if isinstance(spec, WriteTool) else ""
        rows.append(f"| {spec.toolset} | `{spec.name}`{mark} | {spec.about or spec.description} |")
    return "\n".join(rows)


def test_the_readme_tool_table_is_the_catalogue() -> None:
    path = REPO / "README.md"
    text = path.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, f"README.md needs one {BEGIN!r} ... {END!r} block"
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    wanted = f"{head}{BEGIN}\n{tool_table()}\n{END}{tail}"
    if os.environ.get("UPDATE_DOCS") == "1" and text != wanted:
        path.write_text(wanted)
        text = wanted  # rewritten: this run passes, and the diff is there to review
    assert text == wanted, (
        "README.md's tool table differs from the catalogue: UPDATE_DOCS=1 .venv/bin/pytest tests/test_docs.py"
    )


def test_the_guide_names_every_write_tool() -> None:
    writes = [spec.name for spec in TOOLS if isinstance(spec, WriteTool)]
    assert writes, "the catalogue has no write tools: the guide's write list would be empty"
    line = next(line for line in guide().splitlines() if line.startswith("- Writes ("))
    assert line.startswith("- Writes (" + ", ".join(f"`{name}`" for name in writes) + ")"), line
