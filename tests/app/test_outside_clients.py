"""Real outside clients: the MCP conformance suite over HTTP and the MCP Inspector's CLI over stdio and HTTP.

Both run through .ci/conformance.sh and .ci/inspector.sh, which install a pinned Node 22 and the
tools into .ci/node (gitignored) the first time (~20 s, from the npm registry), then reuse it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.helpers import REPO, binary

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("npm") is None, reason="npm is not installed: the conformance suite and the Inspector need it"
    ),
]


def run_script(name: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHEEPCRM_MCP_BIN": binary()}
    env = {k: v for k, v in env.items() if not k.startswith("SHEEPCRM_") or k == "SHEEPCRM_MCP_BIN"}
    return subprocess.run(["bash", str(REPO / ".ci" / name)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def test_conformance_suite() -> None:
    r = run_script("conformance.sh")
    assert r.returncode == 0, r.stdout + r.stderr
    # Both modes ran and reported their counts (see docs/CONFORMANCE.md).
    assert "conformance (stateful): 9 scenarios passed, 0 failed" in r.stdout, r.stdout + r.stderr
    assert "conformance (stateless): 8 scenarios passed, 0 failed" in r.stdout, r.stdout + r.stderr


def test_inspector_cli() -> None:
    r = run_script("inspector.sh")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("inspector: ok") == 8, r.stdout
    assert "inspector: all checks passed" in r.stdout
