"""`python -m sandbox`: serve the sandbox alone."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from sheepcrm_mcp.sandbox.app import create_app
from sheepcrm_mcp.sandbox.faults import FaultPlan, FaultSyntaxError
from sheepcrm_mcp.sandbox.seed import SIZES
from sheepcrm_mcp.sandbox.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="sheepCRM-compatible sandbox API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--key", default=os.environ.get("SANDBOX_KEY", "sandbox-key"), help="bearer key accepted")
    parser.add_argument("--bucket", default="demo")
    parser.add_argument("--db", default=None, help="SQLite file (rebuilt on start); a temp file by default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[=ARG][@after]:RATE[:PATH_REGEX]",
        help="inject faults (repeatable; also SANDBOX_FAULTS, comma-separated)",
    )
    parser.add_argument("--fault-seed", type=int, default=None, help="seed for fault decisions (default: --seed)")
    args = parser.parse_args(argv)
    specs = [s for s in [os.environ.get("SANDBOX_FAULTS", ""), *args.fault] if s.strip()]
    try:
        faults = FaultPlan.parse(specs, args.seed if args.fault_seed is None else args.fault_seed) if specs else None
    except FaultSyntaxError as exc:
        parser.error(str(exc))
    store = Store.create(args.db, size=args.size, seed=args.seed, bucket=args.bucket)
    app = create_app(store, key=args.key, bucket=args.bucket, faults=faults)
    counts = {r["name"]: r["count"] for r in store.resource_counts()}
    print(f"sandbox: http://{args.host}:{args.port} bucket={args.bucket}", file=sys.stderr)
    print(
        f"sandbox: size={args.size} seed={args.seed} built in {store.build_seconds:.2f}s: "
        f"{counts.get('person', 0)} people, {counts.get('organisation', 0)} organisations, "
        f"{counts.get('booking', 0)} events, {counts.get('task', 0)} tasks, {counts.get('segment', 0)} segments; "
        f"faults: {', '.join(r.label for r in faults.rules) if faults else 'none'}",
        file=sys.stderr,
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=1)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
