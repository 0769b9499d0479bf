"""`python -m sheepcrm_mcp.sandbox`: serve the sandbox alone."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import uvicorn

from sheepcrm_mcp.sandbox.app import create_app
from sheepcrm_mcp.sandbox.drift import parse as parse_drift
from sheepcrm_mcp.sandbox.faults import FaultPlan, FaultSyntaxError
from sheepcrm_mcp.sandbox.runner import ByPort, listen, random_key
from sheepcrm_mcp.sandbox.seed import SIZES
from sheepcrm_mcp.sandbox.store import Store
from sheepcrm_mcp.sandbox.variants import ENV, NAMES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sheepcrm_mcp.sandbox", description="sheepCRM-compatible sandbox API"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="v2 API port")
    parser.add_argument("--v1-port", type=int, default=None, help="v1 API port (default: --port + 1)")
    parser.add_argument("--restricted-key", default=None, help="a second key whose user lacks event permissions")
    parser.add_argument(
        "--drift", action="append", default=[], metavar="KIND[=ARG][:PATH_REGEX]",
        help="answer as a changed upstream would (see sandbox/drift.py), for doctor --contract",
    )
    parser.add_argument(
        "--variant", default=os.environ.get(ENV) or None, choices=NAMES,
        help=f"serve another answer the documents allow for one silent choice (also ${ENV}; see sandbox/README.md)",
    )
    parser.add_argument("--key", default=os.environ.get("SANDBOX_KEY") or None,
                        help="bearer key accepted (also $SANDBOX_KEY; a random one, shown on stderr, without either)")
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
    try:
        parse_drift(args.drift)
    except ValueError as exc:
        parser.error(str(exc))
    chosen = args.key is not None
    args.key = args.key or random_key()
    store = Store.create(args.db, size=args.size, seed=args.seed, bucket=args.bucket, variant=args.variant)
    v1_port = args.port + 1 if args.v1_port is None else args.v1_port
    options: dict[str, Any] = {
        "key": args.key, "bucket": args.bucket, "faults": faults, "log": [],
        "restricted_key": args.restricted_key, "drift": frozenset(args.drift), "variant": args.variant,
    }
    app = ByPort({args.port: create_app(store, api="v2", **options), v1_port: create_app(store, api="v1", **options)})
    counts = {r["name"]: r["count"] for r in store.resource_counts()}
    print(
        f"sandbox: v2 http://{args.host}:{args.port} v1 http://{args.host}:{v1_port} bucket={args.bucket}",
        file=sys.stderr,
    )
    if not chosen:  # only this terminal learns it; a fixed default would let any local user write to the sandbox
        print(f"sandbox: key {args.key} (random for this start; --key or $SANDBOX_KEY to choose one)", file=sys.stderr)
    print(
        f"sandbox: size={args.size} seed={args.seed} built in {store.build_seconds:.2f}s: "
        f"{counts.get('person', 0)} people, {counts.get('organisation', 0)} organisations, "
        f"{counts.get('booking', 0)} events, {counts.get('task', 0)} tasks, {counts.get('segment', 0)} segments; "
        f"faults: {', '.join(r.label for r in faults.rules) if faults else 'none'}; variant: {args.variant or 'none'}",
        file=sys.stderr,
    )
    config = uvicorn.Config(app, lifespan="off", log_level="warning", timeout_graceful_shutdown=1)
    try:
        uvicorn.Server(config).run(sockets=[listen(args.host, args.port), listen(args.host, v1_port)])
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
