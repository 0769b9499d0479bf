"""The import-layer contracts (pyproject.toml, [tool.importlinter]) hold, and would catch an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import REPO

FOLDERS = {"app": "", "tools": "tools", "server": "server", "sheepcrm": "sheepcrm", "sandbox": "sandbox"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def view(root: Path) -> Path:
    """The package as installed (sheepcrm_mcp = app/ with the other folders inside), as plain copies."""
    package = root / "sheepcrm_mcp"
    for folder, inside in FOLDERS.items():
        target = package / inside
        target.mkdir(parents=True, exist_ok=True)
        for path in (REPO / folder).glob("*.py"):
            shutil.copy(path, target / path.name)
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = [f"[importlinter]\nroot_package = {config['root_package']}\ninclude_external_packages = True\n"]
    for n, contract in enumerate(config["contracts"]):
        lines.append(f"[importlinter:contract:{n}]")
        for key, value in contract.items():
            shown = "".join(f"\n    {v}" for v in value) if isinstance(value, list) else f" {value}"
            lines.append(f"{key} ={shown}")
        lines.append("")
    (root / ".importlinter").write_text("\n".join(lines))
    return package


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / ".importlinter"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    if not LINT_IMPORTS.exists():
        pytest.fail("lint-imports is not installed (pip install -e '.[dev]')")
    view(tmp_path)
    return tmp_path


def test_the_layers_hold(copied: Path) -> None:
    result = lint(copied)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("sheepcrm/errors.py", "import sheepcrm_mcp.server.toolkit"),  # the client reaching into MCP machinery
        ("server/gate.py", "import sheepcrm_mcp.tools.catalogue"),  # machinery reaching into the catalogue
        ("tools/common.py", "import sheepcrm_mcp.assembly"),  # the catalogue reaching into the entry
        ("sheepcrm/client.py", "import mcp"),  # the client knowing MCP
        ("sandbox/store.py", "import sheepcrm_mcp.sheepcrm"),  # the sandbox depending on our client
    ],
)
def test_an_upward_import_breaks_a_contract(copied: Path, module: str, upward: str) -> None:
    folder, name = module.split("/")
    path = copied / "sheepcrm_mcp" / FOLDERS[folder] / name
    path.write_text(path.read_text() + f"\n{upward}  # noqa\n")
    result = lint(copied)
    assert result.returncode != 0, f"{upward} in {module} went unnoticed:\n{result.stdout[-2000:]}"
    assert "BROKEN" in result.stdout
