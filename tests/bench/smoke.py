"""`python -m bench --quick --no-write --only <sections>` runs end to end and prints every figure with numbers that
parse: the checks behind tests/bench/test_bench_smoke_*.py. The sections run in groups, one group per test file, so
pytest-xdist (one file per worker) runs the groups side by side; together they run every section.

A smoke test, not a measurement: no timing is asserted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
# Rows each section must print (a row's figure starts with, or contains, one of these).
EXPECTED: dict[str, tuple[str, ...]] = {
    "context": ("tools/list characters", "tools/list est. tokens"),
    "questions": ("Q1 answer chars", "Q10 answer chars", "questions: total answer chars"),
    "startup": ("start-up to initialize response, stdio (p50)", "start-up to initialize response, stdio (best",
                "CPU time to initialize response", "start-up to tools/list response", "first tool call after start",
                "start-up to the first tool answer",
                "idle RSS after initialize"),
    "overhead": ("our overhead stdio p50 (MCP - direct - echo)", "our overhead HTTP p50 (MCP - direct - echo)"),
    "throughput": ("throughput HTTP x32: get_contact vs echo (calls/s)",),
    "auth": (
        "hosted call, token reused: get_contact p50",
        "hosted call, new token each call: p50",
        "verify a new JWT (RS256, keys cached): p50",
    ),
    "cluster": ("throughput via HAProxy x8: 2 replicas vs 1 (calls/s)", "gated write p50: Redis stores vs in-process"),
    "hosted": ("hosted calls x8 people: HAProxy to 3 replicas vs straight to 1 (calls/s)",),
    "scale": ("large (", "segment paging", "bench RSS while paging"),
}
# About half a minute each on a quiet two-core machine. The context section's baseline is generated from sheepCRM's
# documents: it runs (in the first group) when SHEEPCRM_API_DOCS names a copy (.ci/run runs it then), and is left
# out otherwise (the repository alone has no copy).
GROUPS: dict[str, tuple[str, ...]] = {
    "demo": ("context", "questions", "startup", "overhead", "auth"),
    "throughput": ("throughput",),
    "cluster": ("cluster",),
    "hosted": ("hosted",),
    "scale": ("scale",),
}


def run_group(group: str) -> None:
    """Run one group's sections with `--quick --no-write` and check every row it prints."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env = {k: v for k, v in env.items() if not k.startswith("SHEEPCRM_") or k == "SHEEPCRM_API_DOCS"}
    sections = [s for s in GROUPS[group] if s != "context" or env.get("SHEEPCRM_API_DOCS")]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-write", "--only", ",".join(sections)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and not line.startswith("| figure")]
    figures = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in rows}
    for name in (row for section in sections for row in EXPECTED[section]):
        assert any(name in f for f in figures), f"missing row {name!r} in:\n{proc.stdout}"
    for figure, (ours, baseline, ratio, _target, result) in figures.items():
        assert NUMBER.search(ours), f"{figure}: ours {ours!r} has no number"
        assert result in ("pass", "FAIL", "info"), f"{figure}: result {result!r}"
        assert baseline != "no baseline", f"{figure}: its baseline is missing"
        for cell in (baseline, ratio):
            assert cell == "-" or NUMBER.search(cell), f"{figure}: {cell!r} does not parse"
            if cell != "-":
                float(NUMBER.search(cell).group())  # type: ignore[union-attr]
