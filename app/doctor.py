"""`sheepcrm-mcp doctor`: check settings, reachability, credentials, bucket and a sample read.

One line per check on stdout (`ok   ...` or `FAIL ...`); each failure says what to fix.
Exit codes, so scripts can tell the verdicts apart:
  0  every check passed
  1  sheepCRM answered but refused: the API key, the bucket, or a sample read
  2  the settings are missing or malformed (as for `sheepcrm-mcp` itself)
  3  sheepCRM could not be reached at the configured address
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import anyio

from sheepcrm_mcp.sandboxed import sandbox_settings
from sheepcrm_mcp.server import logs
from sheepcrm_mcp.server.auth import PROFILES, check_oauth
from sheepcrm_mcp.server.settings import ConfigError, Settings, load_settings
from sheepcrm_mcp.sheepcrm import AuthError, NotFoundError, SheepClient, SheepError

OK, BAD = "ok  ", "FAIL"
EXIT_OK, EXIT_REFUSED, EXIT_SETTINGS, EXIT_UNREACHABLE = 0, 1, 2, 3
UNREACHABLE = "cannot reach"


async def diagnose(settings: Settings) -> list[tuple[bool, str]]:
    lines: list[tuple[bool, str]] = []
    quick = settings.model_copy(update={"retry_attempts": 1, "cache_ttl": 0.0, "timeout": min(settings.timeout, 5.0)})
    async with SheepClient(quick.client_config()) as client:
        try:
            await client.ping()
            lines.append((True, f"sheepCRM v1 API reachable at {settings.v1_base_url}"))
        except SheepError as exc:
            lines.append(
                (
                    False,
                    f"{UNREACHABLE} {settings.v1_base_url} ({exc}) -> check SHEEPCRM_V1_BASE_URL, "
                    "the network and any proxy",
                )
            )
            return lines
        try:
            await client.all_segments(page_size=1)
            lines.append((True, f"API key accepted for bucket '{settings.bucket}' (v2 API at {settings.base_url})"))
        except AuthError:
            lines.append(
                (
                    False,
                    "the API key was refused (HTTP 401/403) -> put a valid key in SHEEPCRM_API_KEY "
                    "(sheepCRM: Settings > API keys)",
                )
            )
            return lines
        except NotFoundError:
            lines.append(
                (
                    False,
                    f"bucket '{settings.bucket}' was not found with this key -> check SHEEPCRM_BUCKET "
                    "(the name in your sheepCRM address) and that the key belongs to it",
                )
            )
            return lines
        except SheepError as exc:  # upstream down, rate limited, or an answer we did not expect
            lines.append((False, f"v2 API at {settings.base_url} failed ({exc}) -> check SHEEPCRM_BASE_URL"))
            return lines
        try:
            info = await client.bucket_info()
            kinds = len(info.get("resource_type", []) or [])
            lines.append((True, f"v1 API accepts the key for bucket '{settings.bucket}' ({kinds} record types)"))
        except SheepError as exc:
            lines.append(
                (
                    False,
                    f"v1 API refused bucket '{settings.bucket}' ({type(exc).__name__}) -> sheepCRM "
                    "answers 404 for a bad key or bucket on v1; check both",
                )
            )
            return lines
        try:
            found = await client.search("a")
            count = len(found.get("results", []) or [])
            lines.append((True, f"sample read works (a search returned {count} contacts)"))
        except SheepError as exc:
            lines.append((False, f"sample read failed ({exc})"))
    return lines


def run_doctor(overrides: dict[str, Any], *, sandbox: bool = False) -> int:
    with contextlib.ExitStack() as stack:
        if sandbox:
            overrides = stack.enter_context(sandbox_settings(overrides))
        try:
            settings = load_settings(**overrides)
            logs.add_secret(settings.api_key.get_secret_value() if settings.api_key else None)
            if settings.auth == "oauth":  # hosted: sheepCRM is checked with the first profile's own key
                keys = [k for p in PROFILES if (k := settings.profile_key(p)) is not None]
                for key in keys:
                    logs.add_secret(key.get_secret_value())
                settings = settings.model_copy(update={"api_key": keys[0] if keys else None})
            settings.require_credentials()
        except ConfigError as exc:
            print(f"{BAD} settings: {exc}")
            print("doctor: fix the settings, then run doctor again", file=sys.stderr)
            return EXIT_SETTINGS
        print(
            f"{OK} settings: bucket '{settings.bucket}', read_only={settings.read_only}, "
            f"confirm={settings.confirm}, audit log {settings.audit_log}"
        )
        lines = anyio.run(diagnose, settings)
        if settings.auth == "oauth":
            lines += anyio.run(check_oauth, settings)
        for ok, text in lines:
            print(f"{OK if ok else BAD} {text}")
        failed = [text for ok, text in lines if not ok]
        print("doctor: fix the FAIL lines above" if failed else "doctor: all checks passed", file=sys.stderr)
        if not failed:
            return EXIT_OK
        return EXIT_UNREACHABLE if failed[0].startswith(UNREACHABLE) else EXIT_REFUSED
