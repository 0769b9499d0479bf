"""Check a built wheel holds exactly the package: every tracked module and data file, under `sheepcrm_mcp/`,
and no generic top-level import name (server, tools, sandbox, app).

    python .ci/check_wheel.py dist/sheepcrm_mcp-X-py3-none-any.whl [REPO]

Exit 0 when the wheel is complete; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path


def expected_files(repo: Path) -> dict[str, str]:
    """wheel path -> repo path, for every tracked module under sheepcrm_mcp/ (its subpackages are symlinks to the
    top-level folders, which the wheel must hold as real files)."""
    tracked = set(
        subprocess.run(["git", "-C", str(repo), "ls-files"], check=True, capture_output=True, text=True).stdout.split()
    )
    out: dict[str, str] = {}
    for folder, _, names in os.walk(repo / "sheepcrm_mcp", followlinks=True):
        for path in (Path(folder) / n for n in names if n.endswith(".py")):
            source = path.resolve().relative_to(repo.resolve()).as_posix()
            if source in tracked:
                out[path.relative_to(repo).as_posix()] = source
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
