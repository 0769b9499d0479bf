"""`python -m bench --quick --no-write` runs end to end and prints every figure with numbers that parse.

A smoke test, not a measurement: no timing is asserted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import SECTIONS

REPO = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
EXPECTED = (
    "tools/list characters",
    "tools/list est. tokens",
    "Q1 answer chars",
    "Q10 answer chars",
    "questions: total answer chars",
    "start-up to initialize response",
    "idle RSS after initialize",
    "our overhead stdio p50 (MCP - direct - echo)",
    "our overhead HTTP p50 (MCP - direct - echo)",
    "throughput HTTP x32: get_contact vs echo (calls/s)",
    "throughput via HAProxy x8: 2 replicas vs 1 (calls/s)",
    "hosted call, token reused: get_contact p50",
    "hosted call, new token each call: p50",
    "verify a new JWT (RS256, keys cached): p50",
    "gated write p50: Redis stores vs in-process",
    "hosted calls x8 people: HAProxy to 3 replicas vs straight to 1 (calls/s)",
    "large (",
    "segment paging",
    "bench RSS while paging",
)


@pytest.mark.slow  # about two minutes (it starts the cluster twice); run by `bash dev.sh test` and CI
@pytest.mark.timeout(600)
def test_bench_quick_prints_every_figure() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env = {k: v for k, v in env.items() if not k.startswith("SHEEPCRM_") or k == "SHEEPCRM_API_DOCS"}
    # The context section's baseline is generated from sheepCRM's documents: it runs when SHEEPCRM_API_DOCS
    # names a copy (.ci/run runs it then), and is left out otherwise (the repository alone has no copy).
    only = [] if env.get("SHEEPCRM_API_DOCS") else ["--only", ",".join(s for s in SECTIONS if s != "context")]
    expected = [e for e in EXPECTED if env.get("SHEEPCRM_API_DOCS") or not e.startswith("tools/list")]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-write", *only],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=580,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and not line.startswith("| figure")]
    figures = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in rows}
    for name in expected:
        assert any(name in f for f in figures), f"missing row {name!r} in:\n{proc.stdout}"
    for figure, (ours, baseline, ratio, _target, result) in figures.items():
        assert NUMBER.search(ours), f"{figure}: ours {ours!r} has no number"
        assert result in ("pass", "FAIL", "info"), f"{figure}: result {result!r}"
        assert baseline != "no baseline", f"{figure}: its baseline is missing"
        for cell in (baseline, ratio):
            assert cell == "-" or NUMBER.search(cell), f"{figure}: {cell!r} does not parse"
            if cell != "-":
                float(NUMBER.search(cell).group())  # type: ignore[union-attr]
