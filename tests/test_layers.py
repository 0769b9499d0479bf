"""The import-layer contracts (pyproject.toml, [tool.importlinter]) hold, and would catch an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports as anyone runs it: from `root`, with the contracts of its pyproject.toml (a copy elsewhere
    goes first on the path, ahead of the installed checkout)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if root != REPO:
        env["PYTHONPATH"] = str(root)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """The package as plain files (the symlinks followed, as a wheel holds it) beside the project's pyproject.toml."""
    if not LINT_IMPORTS.exists():
        pytest.fail("lint-imports is not installed (pip install -e '.[dev]')")
    shutil.copytree(REPO / "sheepcrm_mcp", tmp_path / "sheepcrm_mcp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_layers_hold_from_the_repository_root() -> None:
    """Plain `lint-imports` from the repository root: no generated view, no dev.sh."""
    if not LINT_IMPORTS.exists():
        pytest.fail("lint-imports is not installed (pip install -e '.[dev]')")
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_the_copied_package_holds_too(copied: Path) -> None:
    result = lint(copied)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("sheepcrm/errors.py", "import sheepcrm_mcp.server.specs"),  # the client reaching into MCP machinery
        ("server/gate.py", "import sheepcrm_mcp.tools.catalogue"),  # machinery reaching into the catalogue
        ("tools/common.py", "import sheepcrm_mcp.assembly"),  # the catalogue reaching into the entry
        ("sheepcrm/client.py", "import mcp"),  # the client knowing MCP
        ("sandbox/store.py", "import sheepcrm_mcp.sheepcrm"),  # the sandbox depending on our client
    ],
)
def test_an_upward_import_breaks_a_contract(copied: Path, module: str, upward: str) -> None:
    path = copied / "sheepcrm_mcp" / module
    path.write_text(path.read_text() + f"\n{upward}  # noqa\n")
    result = lint(copied)
    assert result.returncode != 0, f"{upward} in {module} went unnoticed:\n{result.stdout[-2000:]}"
    assert "BROKEN" in result.stdout
