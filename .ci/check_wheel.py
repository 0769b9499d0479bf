"""Check a built wheel holds exactly the package: every tracked module and data file, under `sheepcrm_mcp/`,
and no generic top-level import name (server, tools, sandbox, app).

    python .ci/check_wheel.py dist/sheepcrm_mcp-X-py3-none-any.whl [REPO]

Exit 0 when the wheel is complete; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path


def expected_files(repo: Path) -> dict[str, str]:
    """wheel path -> repo path, for every tracked file the package-dir mapping ships."""
    mapping = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    tracked = subprocess.run(
        ["git", "-C", str(repo), "ls-files"], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    out: dict[str, str] = {}
    for package, folder in mapping.items():
        prefix = package.replace(".", "/")
        for path in tracked:
            rel = Path(path)
            if rel.parent != Path(folder) or rel.suffix != ".py":
                continue  # a package's own folder; sub-folders are packages of their own in the mapping
            out[f"{prefix}/{rel.name}"] = path
    return out


def problems(wheel: Path, repo: Path) -> list[str]:
    names = set(zipfile.ZipFile(wheel).namelist())
    found: list[str] = []
    for inside, source in sorted(expected_files(repo).items()):
        if inside not in names:
            found.append(f"missing from the wheel: {inside} (from {source})")
    tops = {n.split("/")[0] for n in names}
    stray = sorted(t for t in tops if t != "sheepcrm_mcp" and not t.endswith((".dist-info", ".data")))
    if stray:
        found.append(f"top-level names other than sheepcrm_mcp in the wheel: {', '.join(stray)}")
    return found


def main(argv: list[str]) -> int:
    wheel = Path(argv[1])
    repo = Path(argv[2]) if len(argv) > 2 else Path(__file__).resolve().parents[1]
    found = problems(wheel, repo)
    for line in found:
        print(f"check_wheel: {line}", file=sys.stderr)
    if not found:
        print(f"check_wheel: {wheel.name} holds all {len(expected_files(repo))} modules under sheepcrm_mcp/")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
