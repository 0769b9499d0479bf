"""`sheepcrm-mcp` entry point: serve (stdio or HTTP), `demo`, `doctor`."""

from __future__ import annotations

import os

# Pydantic plugins are code any installed distribution names under the "pydantic" entry point group, run inside
# every model's validation; finding them reads every installed distribution's metadata when the first model is
# built (some 30 ms of every start). The server runs none: a person who wants theirs names them in
# PYDANTIC_DISABLE_PLUGINS (as pydantic documents it: an empty value, or the names of the ones to leave out).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import anyio

from sheepcrm_mcp.server import __version__, logs
from sheepcrm_mcp.server.settings import ConfigError, Settings, check_interpreter, load_settings

log = logging.getLogger("sheepcrm_mcp")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sheepcrm-mcp",
        description="MCP server for sheepCRM. Settings come from SHEEPCRM_* variables, these flags, or a .env "
        "file named with --env-file (which cannot set security settings).",
    )
    p.add_argument(
        "command",
        nargs="?",
        choices=["serve", "demo", "doctor", "audit"],
        default="serve",
        help="serve (default): run the MCP server; demo: scripted session against the sandbox; "
        "doctor: check settings, reachability and credentials; audit tail|archive: read the audit",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["tail", "archive"],
        help="with audit: tail prints the last lines (of the Redis stream when SHEEPCRM_REDIS_URL is set, else "
        "of SHEEPCRM_AUDIT_LOG); archive appends the stream's new entries to SHEEPCRM_AUDIT_LOG, once each",
    )
    p.add_argument("-n", "--lines", type=int, default=20, help="audit tail: how many lines (default 20)")
    p.add_argument("--follow", action="store_true", help="audit tail: keep printing new entries (Redis only)")
    p.add_argument(
        "--transport", choices=["stdio", "http"],
        help="stdio (default) or http; http counts only when your own settings file says SHEEPCRM_TRANSPORT=http",
    )
    p.add_argument(
        "--host", help="HTTP bind address (default 127.0.0.1); another counts only from your own settings file"
    )
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument(
        "--uds", type=Path, help="serve HTTP on this Unix socket instead of a port (in a folder only you can enter: "
        "a replica behind a balancer on the same machine)",
    )
    p.add_argument(
        "--stateless", action="store_true", help="stateless HTTP (no sessions; confirmations go to the approval page)"
    )
    p.add_argument(
        "--sandbox", action="store_true", help="start the embedded sheepCRM sandbox on a free loopback port and use it"
    )
    p.add_argument(
        "--contract", action="store_true",
        help="doctor: read every endpoint the tools use and check the fields they read came back (no values shown)",
    )
    p.add_argument("--json", action="store_true", help="doctor --contract: the report as JSON, for a bug report")
    p.add_argument("--read-only", action="store_true", default=None, help="register no write tools")
    p.add_argument("--toolsets", help="comma-separated toolsets to register (default: all)")
    p.add_argument(
        "--env-file",
        type=Path,
        help="read SHEEPCRM_API_KEY, SHEEPCRM_BUCKET and tuning settings from this .env file (none is read "
        "unless named; security settings come only from the environment or flags)",
    )
    p.add_argument(
        "--confirm",
        choices=["elicit", "page", "none"],
        help="how a person approves writes (default elicit; page: always the out-of-band browser page)",
    )
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--version", action="version", version=f"sheepcrm-mcp {__version__}")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.read_only:
        out["read_only"] = True
    if args.toolsets:
        out["toolsets"] = args.toolsets
    if args.confirm:
        out["confirm"] = args.confirm
    if args.transport:
        out["transport"] = args.transport
    if args.host:
        out["host"] = args.host
    return out


def serve(settings: Settings, args: argparse.Namespace) -> None:
    from sheepcrm_mcp.assembly import build_app

    if settings.confirm == "none":
        print(
            "sheepcrm-mcp: SHEEPCRM_CONFIRM=none - write tools run WITHOUT human confirmation "
            "(trusted automation only); every audit line records it.",
            file=sys.stderr,
        )
    if settings.redis_url is not None and settings.transport != "http":
        # Whoever runs that Redis decides approvals: only replicas serving HTTP share one (docs/DEPLOY.md).
        raise ConfigError("SHEEPCRM_REDIS_URL is for replicas (--transport http); a stdio server keeps its own")
    if settings.otel:
        from sheepcrm_mcp.server.telemetry import enable_tracing

        enable_tracing()
    if settings.auth == "oauth":
        if settings.transport != "http":
            raise ConfigError("SHEEPCRM_AUTH=oauth needs --transport http (stdio has one user and no tokens)")
        from sheepcrm_mcp.hosted import run_hosted

        run_hosted(settings, host=settings.host, port=args.port, stateless=args.stateless)
        return
    built = build_app(settings)
    if settings.transport == "http":
        from sheepcrm_mcp.http import run_http

        run_http(built, host=settings.host, port=args.port, stateless=args.stateless, uds=args.uds)
    else:
        built.server.run("stdio")


async def run_audit(settings: Settings, args: argparse.Namespace) -> int:
    """`sheepcrm-mcp audit tail|archive`: one command reads the audit every replica writes."""
    from sheepcrm_mcp.assembly import Stores
    from sheepcrm_mcp.server.redis_store import RedisAudit
    from sheepcrm_mcp.server.stores import StoreUnavailable

    stores = Stores(settings.model_copy(update={"metrics": False}))  # this command serves no /metrics
    shared = stores.audit if isinstance(stores.audit, RedisAudit) else None
    try:
        if args.action == "archive":
            if shared is None:
                raise ConfigError("audit archive copies the Redis stream: set SHEEPCRM_REDIS_URL")
            added = await shared.archive(settings.audit_log)
            print(f"appended {added} audit line(s) to {settings.audit_log}", file=sys.stderr)
            return 0
        for entry in await stores.audit.entries(last=max(1, args.lines)):
            print(json.dumps(entry, ensure_ascii=True), flush=True)
        if args.follow:
            if shared is None:
                raise ConfigError("--follow reads the Redis stream: set SHEEPCRM_REDIS_URL (or tail -f the file)")
            async for entry in shared.follow():
                print(json.dumps(entry, ensure_ascii=True), flush=True)
        return 0
    except StoreUnavailable as exc:
        print(f"sheepcrm-mcp: {exc}", file=sys.stderr)
        return 1
    finally:
        if stores.shared is not None:
            await stores.shared.aclose()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(args.log_level)
    try:
        check_interpreter()  # before anything else: a variable that loaded code into this process stops it
        if args.command == "demo":
            from sheepcrm_mcp.demo import run_demo

            return run_demo()
        if args.command == "audit":
            return anyio.run(run_audit, load_settings(), args)
        if args.command == "doctor":
            from sheepcrm_mcp.doctor import run_contract, run_doctor

            if args.contract:
                return run_contract(_overrides(args), sandbox=args.sandbox, as_json=args.json)
            return run_doctor(_overrides(args), sandbox=args.sandbox, env_file=args.env_file)
        with contextlib.ExitStack() as stack:
            overrides = _overrides(args)
            if args.sandbox:
                from sheepcrm_mcp.sandboxed import sandbox_settings  # the sandbox loads only when asked for

                overrides = stack.enter_context(sandbox_settings(overrides))
            settings = load_settings(args.env_file, **overrides)
            for secret in (
                settings.api_key,
                settings.mcp_token,
                settings.api_key_staff,
                settings.api_key_helpdesk,
                settings.api_key_member,
            ):
                logs.add_secret(secret.get_secret_value() if secret else None)
            if settings.auth != "oauth":  # hosted mode checks each profile's key itself
                settings.require_credentials()
            serve(settings, args)
        return 0
    except ConfigError as exc:
        print(f"sheepcrm-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
