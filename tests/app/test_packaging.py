"""The distribution as shipped: one version everywhere, server.json true to pyproject.toml, and a wheel check
that fails when a module is missing (the CI wheel smoke test, .ci/wheel-smoke.sh, relies on it)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from sheepcrm_mcp.server import __version__
from sheepcrm_mcp.server.settings import Settings
from tests.helpers import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_one_version_everywhere() -> None:
    version = PYPROJECT["project"]["version"]
    assert __version__ == version, "reinstall (pip install -e .) after changing pyproject.toml's version"
    doc = json.loads((REPO / "server.json").read_text())
    assert doc["version"] == version and all(p["version"] == version for p in doc["packages"])
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## {version}" in changelog, f"CHANGELOG.md has no section for {version}"
    out = subprocess.run([sys.executable, "-m", "sheepcrm_mcp", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"sheepcrm-mcp {version}"


def test_server_json_matches_the_package() -> None:
    doc = json.loads((REPO / "server.json").read_text())
    [package] = doc["packages"]
    assert package["identifier"] == PYPROJECT["project"]["name"]
    assert "sheepcrm-mcp" in PYPROJECT["project"]["scripts"]
    assert package["transport"]["type"] == "stdio"
    settings = {f"SHEEPCRM_{name.upper()}" for name in Settings.model_fields}
    for variable in package["environmentVariables"]:
        assert variable["name"] in settings, f"server.json documents {variable['name']}, which is not a setting"
    assert doc["repository"]["url"].rstrip("/").endswith("/sheepcrm-mcp")


def test_readme_says_how_to_release() -> None:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Releasing"):]
    for step in ("python -m build", "twine check", "git tag", "twine upload", "mcp-publisher"):
        assert step in section, f"RELEASING section misses {step!r}"


@pytest.mark.slow
def test_the_wheel_check_fails_when_a_module_is_missing(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = tmp_path.glob("*.whl")
    check = [sys.executable, str(REPO / ".ci" / "check_wheel.py")]
    assert subprocess.run([*check, str(wheel), str(REPO)], capture_output=True).returncode == 0
    dropped = "sheepcrm_mcp/sheepcrm/history.py"
    doctored = tmp_path / "doctored" / wheel.name
    doctored.parent.mkdir()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(doctored, "w") as dst:
        for item in src.infolist():
            if item.filename != dropped:
                dst.writestr(item, src.read(item.filename))
    failed = subprocess.run([*check, str(doctored), str(REPO)], capture_output=True, text=True)
    assert failed.returncode == 1 and f"missing from the wheel: {dropped}" in failed.stderr
