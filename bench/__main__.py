"""`python -m bench [--quick] [--no-write] [--only a,b]`: every figure side by side, one table, bench/RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Row, machine, table

SECTIONS = ("context", "questions", "startup", "overhead", "throughput", "auth", "cluster", "hosted", "scale")
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="few iterations (a smoke test, not a measurement)")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    p.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    args = p.parse_args(argv)
    # The SDK's MCPServer() sets up INFO logging on first use; keep the bench's own clients quiet.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    chosen = tuple(s.strip() for s in args.only.split(",")) if args.only else SECTIONS
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s): {', '.join(sorted(unknown))}")

    from sheepcrm_mcp.sandbox.runner import SandboxServer

    rows: list[Row] = []
    notes: list[str] = []
    t0 = time.monotonic()
    demo = [s for s in chosen if s != "scale"]
    if demo:
        with SandboxServer(size="demo", seed=1) as sb:
            for name in demo:
                rows_, notes_ = run_section(name, sb, args.quick)
                rows += rows_
                notes += ["", f"### {name}", "", *notes_]
    if "scale" in chosen:
        print("bench: building the large sandbox ...", file=sys.stderr)
        built = time.monotonic()
        with SandboxServer(size="large", seed=1) as sb:
            build_s = time.monotonic() - built
            rows_, notes_ = run_section("scale", sb, args.quick)
            rows += [Row("large sandbox: build and start (seed 1)", f"{build_s:.1f} s", "-", "-", "-", None), *rows_]
            notes += ["", "### scale", "", *notes_]
    elapsed = time.monotonic() - t0
    out = table(rows)
    print(out)
    failed = [r.figure for r in rows if r.ok is False]
    print(f"\n{len(rows)} figures, {sum(r.ok is True for r in rows)} pass, {len(failed)} fail, "
          f"{sum(r.ok is None for r in rows)} informational; {elapsed:.0f} s{' (quick)' if args.quick else ''}")
    if not args.no_write:
        write_results(out, notes, elapsed, args.quick)
    # A target missed is a finding to report; a comparison with no baseline is no measurement at all.
    missing = [r.figure for r in rows if r.baseline == "no baseline"]
    if missing:
        print(f"bench: no baseline for {', '.join(missing)}: install the bench extra (and, for the context "
              "section, set SHEEPCRM_API_DOCS to a copy of sheepCRM's documents)", file=sys.stderr)
    return 1 if missing else 0


def run_section(name: str, sb: Any, quick: bool) -> tuple[list[Row], list[str]]:
    import importlib

    print(f"bench: {name} ...", file=sys.stderr)
    module = importlib.import_module(f"bench.{name}")
    result: tuple[list[Row], list[str]] = asyncio.run(module.run(sb, quick))
    return result


def write_results(out: str, notes: list[str], elapsed: float, quick: bool) -> None:
    m = machine()
    analysis = (HERE / "ANALYSIS.md").read_text() if (HERE / "ANALYSIS.md").exists() else ""
    text = "\n".join([
        "# Benchmark results",
        "",
        f"Written by `python -m bench{' --quick' if quick else ''}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"in {elapsed:.0f} s.",
        "",
        f"Machine: nproc {m['nproc']}, CPU {m['cpu']}, Python {m['python']}, {m['platform']}, mcp {m['mcp']}.",
        "",
        "Every figure is measured side by side in the same run against the sandbox over loopback; ratios are "
        "ours / baseline. `info` rows have no target.",
        "",
        out,
        "",
        "## Details",
        *notes,
        "",
        analysis,
    ])
    (HERE / "RESULTS.md").write_text(text.rstrip() + "\n")
    print(f"wrote {HERE / 'RESULTS.md'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
