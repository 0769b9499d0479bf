"""`sheepcrm-mcp doctor`: check settings, reachability, credentials, bucket and a sample read.

One line per check on stdout (`ok   ...` or `FAIL ...`); each failure says what to fix.
Exit codes, so scripts can tell the verdicts apart:
  0  every check passed
  1  sheepCRM answered but refused: the API key, the bucket, or a sample read
  2  the settings are missing or malformed (as for `sheepcrm-mcp` itself)
  3  sheepCRM could not be reached at the configured address
  4  drift: an endpoint the tools read answered in another shape, lost a field the answers depend on, or refused
     (4xx other than 403) a request the tools send as documented once the key, bucket and address are known good
     (a `DRIFT` line; `--contract` checks every endpoint, plain doctor the ones its checks read)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import anyio

from sheepcrm_mcp.sandboxed import sandbox_settings
from sheepcrm_mcp.server import __version__, logs
from sheepcrm_mcp.server.auth import check_oauth
from sheepcrm_mcp.server.caller import PROFILES
from sheepcrm_mcp.server.settings import ConfigError, Settings, load_settings
from sheepcrm_mcp.sheepcrm import (
    AuthError,
    BadRequestError,
    NotFoundError,
    PermissionDenied,
    SheepClient,
    SheepError,
)
from sheepcrm_mcp.sheepcrm.scope import CONTACT_TYPES, RecordUri, ScopeError, parse_uri
from sheepcrm_mcp.sheepcrm.search import PERSON_MATCHES
from sheepcrm_mcp.sheepcrm.tasks import TASK_PAGE
from sheepcrm_mcp.tools.common import PAGE, day, plain, text
from sheepcrm_mcp.tools.contacts import NAME_PAGE
from sheepcrm_mcp.tools.contract import CORE_KINDS, DATES, NULLABLE, Read, by_name
from sheepcrm_mcp.tools.membership import EMAIL_PAGE, WINDOW_PAGE

OK, BAD, SKIP = "ok  ", "FAIL", "skip"
EXIT_OK, EXIT_REFUSED, EXIT_SETTINGS, EXIT_UNREACHABLE, EXIT_DRIFT = 0, 1, 2, 3, 4
UNREACHABLE = "cannot reach"


def _settings_to_check(settings: Settings) -> Settings:
    """The settings doctor checks sheepCRM with: in hosted mode (SHEEPCRM_AUTH=oauth) the first profile's own key.
    Every key is scrubbed from the output; ConfigError when there is none."""
    logs.add_secret(settings.api_key.get_secret_value() if settings.api_key else None)
    if settings.auth == "oauth":
        keys = [k for p in PROFILES if (k := settings.profile_key(p)) is not None]
        for key in keys:
            logs.add_secret(key.get_secret_value())
        settings = settings.model_copy(update={"api_key": keys[0] if keys else None})
    settings.require_credentials()
    return settings


@dataclass
class Basic:
    """The basic checks' verdicts: one (ok, text) line per check, and the reads of those checks that sheepCRM
    refused once the key, the bucket and the address were known good (another read answered with them): drift,
    never a setting to fix."""

    lines: list[tuple[bool, str]]
    drift: list[Probe] = field(default_factory=list)


MOVED_OR_REFUSED = (NotFoundError, BadRequestError)  # a moved path, a refused parameter: or a bucket or address


async def diagnose(settings: Settings) -> Basic:
    lines: list[tuple[bool, str]] = []
    basic = Basic(lines)
    reads = by_name()

    def drifted(name: str, exc: SheepError) -> None:
        status = exc.status or 0
        basic.drift.append(Probe(name, reads[name].path, status, refused=refusal(status, reads[name], False)))

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
            return basic
        accepted = f"API key accepted for bucket '{settings.bucket}' (v2 API at {settings.base_url})"
        try:
            await client.all_segments(page_size=1)
            lines.append((True, accepted))
        except AuthError:
            lines.append((False, KEY_REFUSED))
            return basic
        except PermissionDenied:
            lines.append(
                (
                    False,
                    "the API key is valid but may not list segments (HTTP 403) -> give the key's user the "
                    "permissions the tools need in sheepCRM, or use a key whose user has them",
                )
            )
            return basic
        except MOVED_OR_REFUSED as exc:  # the bucket, the address, or the segment list moved or refusing a parameter
            if not await _other_v2_read(client, settings, exc, lines):
                return basic
            lines.append((True, f"{accepted}: the search answered, the segment list did not (its DRIFT line)"))
            drifted("segments", exc)
        except SheepError as exc:  # upstream down, rate limited, or an answer we did not expect
            lines.append((False, V2_FAILED.format(url=settings.base_url, exc=exc)))
            return basic
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
            return basic
        try:
            found = await client.search("a")
            count = len(found.get("results", []) or [])
            lines.append((True, f"sample read works (a search returned {count} contacts)"))
        except MOVED_OR_REFUSED as exc:  # the key, bucket and address just answered a v2 read: the search changed
            drifted("search", exc)
        except SheepError as exc:
            lines.append((False, f"sample read failed ({exc})"))
    return basic


KEY_REFUSED = (
    "the API key was refused (HTTP 401) -> put a valid key in SHEEPCRM_API_KEY (sheepCRM: Settings > API keys)"
)
V2_FAILED = "v2 API at {url} failed ({exc}) -> check SHEEPCRM_BASE_URL"


async def _other_v2_read(client: SheepClient, settings: Settings, first: SheepError,
                         lines: list[tuple[bool, str]]) -> bool:
    """After the segment list answered 404 or 400: whether another v2 read (the search) answers with the same key,
    bucket and address, so that the segment list itself has moved or refuses a parameter (True). Otherwise the FAIL
    line says which setting to check, the v1 API telling a bad bucket from a bad v2 address (False)."""
    try:
        await client.search("a")
        return True
    except AuthError:
        lines.append((False, KEY_REFUSED))
        return False
    except PermissionDenied:  # valid credentials: the key and bucket are known good
        return True
    except SheepError as exc:
        second = exc
    try:
        await client.bucket_info()
    except SheepError:  # v1 refuses them too: the bucket (or the key, which v1 also answers 404 for)
        if first.status == 404:
            lines.append(
                (
                    False,
                    f"bucket '{settings.bucket}' was not found with this key -> check SHEEPCRM_BUCKET "
                    "(the name in your sheepCRM address) and that the key belongs to it",
                )
            )
        else:
            lines.append((False, V2_FAILED.format(url=settings.base_url, exc=first)))
        return False
    lines.append(
        (
            False,
            f"the v2 API at {settings.base_url} answered HTTP {first.status} to the segment list and HTTP "
            f"{second.status} to the search for bucket '{settings.bucket}', which the v1 API accepts with this key "
            f"-> check SHEEPCRM_BASE_URL; if it is right, sheepCRM has moved these endpoints: {ACT}",
        )
    )
    return False


def run_doctor(overrides: dict[str, Any], *, sandbox: bool = False, env_file: Path | None = None) -> int:
    with contextlib.ExitStack() as stack:
        if sandbox:
            overrides = stack.enter_context(sandbox_settings(overrides))
        try:
            settings = _settings_to_check(load_settings(env_file, **overrides))
        except ConfigError as exc:
            print(logs.scrub(f"{BAD} settings: {exc}"))
            print("doctor: fix the settings, then run doctor again", file=sys.stderr)
            return EXIT_SETTINGS
        print(
            logs.scrub(
                f"{OK} settings: bucket '{settings.bucket}', read_only={settings.read_only}, "
                f"confirm={settings.confirm}, audit log {settings.audit_log}"
            )
        )
        basic = anyio.run(diagnose, settings)
        lines = basic.lines
        if settings.auth == "oauth":
            lines += anyio.run(check_oauth, settings)
        if settings.redis_url is not None:
            from sheepcrm_mcp.server.redis_store import check_redis  # Redis is loaded only where it is used

            lines += anyio.run(check_redis, settings.redis_url.get_secret_value(), settings.public_url)
        for ok, text in lines:
            print(logs.scrub(f"{OK if ok else BAD} {text}"))
        for probe in basic.drift:
            print(logs.scrub(described(probe)))
        failed = [text for ok, text in lines if not ok]
        if failed:
            print("doctor: fix the FAIL lines above", file=sys.stderr)
            return EXIT_UNREACHABLE if failed[0].startswith(UNREACHABLE) else EXIT_REFUSED
        if basic.drift:
            print(f"doctor: {DRIFTED.format(n=len(basic.drift))}; run `sheepcrm-mcp doctor --contract` to check "
                  "every endpoint the tools read", file=sys.stderr)
            return EXIT_DRIFT
        print("doctor: all checks passed", file=sys.stderr)
        return EXIT_OK


# ---- doctor --contract --------------------------------------------------------------------

URI_IDS = frozenset({"search", "person search", "segment members", "segment lookup"})  # rows whose id is a uri
WRITES_UNPROBED = (
    "doctor --contract reads only: the write endpoints (attendance and task PUTs, v1 POST, PUT and DELETE) are not "
    "probed; a write that meets a moved path fails with nothing changed and says so"
)
ACT = "upgrade sheepcrm-mcp, or send `sheepcrm-mcp doctor --contract --json` to its maintainers"
DRIFTED = ("sheepCRM has changed under {n} read(s) (the DRIFT lines): answers that depend on them may be wrong or "
           f"fail -> {ACT}")


@dataclass
class Probe:
    """One upstream read: its HTTP status and which of the fields the tools read came back. Never values."""

    endpoint: str
    path: str
    status: int | str
    records: int = 0
    wrapper: str | None = None
    missing: list[str] = field(default_factory=list)  # core fields (or groups a|b) absent from every record
    null: list[str] = field(default_factory=list)  # core fields present but null in every record
    absent: list[str] = field(default_factory=list)  # optional fields seen in no record (a warning)
    note: str | None = None
    refused: str | None = None  # why a 4xx other than 403 is drift: the path moved or a parameter is refused
    retyped: list[str] = field(default_factory=list)  # core fields sent as a kind the tools cannot read
    unread: str | None = None  # items of the answer that are not records (the list could not be read)
    unchecked: bool = False  # nothing could be checked (skipped, not permitted, no answer): never "ok"

    @property
    def drift(self) -> bool:
        return self.wrapper == "(not found)" or bool(
            self.missing or self.null or self.refused or self.retyped or self.unread)


def described(p: Probe) -> str:
    """A probe's line: `DRIFT` or `ok`, the read, its path, and what came back (names and counts, never values)."""
    parts = [] if p.status == "skipped" else [f"HTTP {p.status}"]
    parts += [f"{p.records} record(s)"] if isinstance(p.status, int) and p.status < 400 else []
    if p.wrapper:
        parts.append(f"under '{p.wrapper}'")
    if p.missing:
        parts.append(f"MISSING {', '.join(p.missing)} (the tools' answers depend on it)")
    if p.null:
        parts.append(f"ALWAYS NULL {', '.join(p.null)}")
    if p.retyped:
        parts.append(f"RETYPED {'; '.join(p.retyped)} -> {ACT}")
    if p.unread:
        parts.append(f"UNREADABLE {p.unread}")
    if p.absent:
        parts.append(f"not seen (optional): {', '.join(p.absent)}")
    if p.note:
        parts.append(p.note)
    if p.refused:
        parts.append(p.refused)
    if p.drift and not any(ACT in part for part in parts):
        parts.append(f"-> {ACT}")
    return f"{'DRIFT' if p.drift else SKIP if p.unchecked else OK:5} {p.endpoint} ({p.path}): {'; '.join(parts)}"


def _keys(value: Any, seen: dict[str, list[Any]]) -> None:
    """Every key in a record, nested objects and lists of objects included, with its values."""
    if isinstance(value, dict):
        for k, v in value.items():
            seen.setdefault(str(k), []).append(v)
            _keys(v, seen)
    elif isinstance(value, list):
        for v in value:
            _keys(v, seen)


def inspect(read: Read, data: Any, status: int | str = 200) -> Probe:
    probe = Probe(read.name, read.path, status)
    records: list[Any]
    if isinstance(data, dict):  # the answer's own keys the tools read (a listing's total and paging echo)
        probe.missing += [k for k in read.envelope if k not in data]
        probe.retyped += [w for k in read.envelope if k in data and (w := retyped(k, [data[k]]))]
    if isinstance(data, list):
        records = data
    elif isinstance(data, dict) and read.wrapper:
        key = next((k for k in read.wrapper if k in data), None)
        if key is None and read.bare and any(f in data for f in read.fields):
            records, probe.wrapper = [data], "(the record itself)"
        elif key is None:
            probe.wrapper = "(not found)"
            probe.note = f"none of {', '.join(read.wrapper)} in the answer (keys: {', '.join(sorted(data)[:8])})"
            return probe
        else:
            probe.wrapper = key
            inner = data[key]
            records = inner if isinstance(inner, list) else [inner]
    else:
        records = [data]
    items = records
    records = [r for r in items if isinstance(r, dict)]
    probe.records = len(records)
    if len(records) < len(items):  # items the tools cannot read as records: never "no records to check"
        kinds = ", ".join(sorted({kind(r) for r in items if not isinstance(r, dict)}))
        wrapped = isinstance(data, dict) and probe.wrapper in data
        if wrapped and not isinstance(data[probe.wrapper], list):
            what = f"'{probe.wrapper}' holds a {kinds}, not a list of records"
        elif not wrapped and not isinstance(data, list):
            what = f"the answer is a {kinds}, not a record"
        else:
            what = f"{len(items) - len(records)} of {len(items)} item(s) are not records ({kinds})"
        probe.unread = f"{what}: the tools cannot read this answer -> {ACT}"
    if not records:
        probe.note = None if probe.unread else "no records to check"
        return probe
    seen: dict[str, list[Any]] = {}
    for r in records:
        _keys(r, seen)
    core = {f for g in read.groups for f in g}
    for group, name in zip(read.groups, read.core, strict=True):
        values = [v for f in group for v in seen.get(f, [])]
        if not any(f in seen for f in group):
            probe.missing.append(name)
        elif all(v is None for v in values) and not set(group) <= NULLABLE:  # a state or flag may be unset
            probe.null.append(name)
        else:
            probe.retyped += [w for f in group if (w := retyped(f, seen.get(f, [])))]
    if read.name in URI_IDS:  # the tools read a search row's id as the record's uri
        bare = [v for v in seen.get("id", []) if isinstance(v, str) and not v.startswith("/")]
        if bare and not any(isinstance(v, str) and v.startswith("/") for v in seen.get("uri", [])):
            probe.retyped.append(f"id sent as a bare uid in {len(bare)} record(s), with no uri (the tools read a uri)")
    top = set(data) if isinstance(data, dict) else set()  # keys of the answer itself (a listing's total)
    probe.absent = [f for f in read.fields if f not in core and f not in seen and f not in top]
    return probe


def kind(value: Any) -> str:
    """A JSON value's kind, as the documents name them (never the value)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "list", type(None): "null"}.get(type(value), type(value).__name__)


def retyped(name: str, values: list[Any]) -> str | None:
    """What is wrong with the kind of a core field's values (CORE_KINDS), in words a person can act on; None when
    every value that is not null is of a kind the tools read."""
    expected = CORE_KINDS.get(name)
    if expected is None:
        return None
    given = [v for v in values if v is not None]
    bad = sorted({kind(v) for v in given if kind(v) not in expected})
    if name == "count":
        bad += ["string (not digits)"] if any(isinstance(v, str) and not v.strip().isdigit() for v in given) else []
    if name in DATES:
        bad += ["string (not a date)"] if any(isinstance(v, str) and not _iso_day(v) for v in given) else []
    if not bad:
        return None
    return f"{name} sent as {' / '.join(bad)} (the tools read {' or '.join(expected)})"


def _iso_day(value: str) -> bool:
    try:
        date.fromisoformat(value.strip()[:10])
    except ValueError:
        return False
    return True


def refusal(status: int, read: Read, found: bool) -> str:
    """Why a 4xx answer (not 403, not a documented answer) is drift, in words a person can act on."""
    what = "a record this check had just found" if found else "a request the tools send as documented"
    if status == 404:
        return f"sheepCRM answered 404 for {what}: the path has moved or the endpoint is gone -> {ACT}"
    if status in (400, 422):
        return f"sheepCRM refused the parameters the tools send (HTTP {status}) -> {ACT}"
    return f"sheepCRM answered HTTP {status} for {what} -> {ACT}"


async def probe_contract(settings: Settings) -> list[Probe]:
    """Read-only: one call per upstream read the tools use, on sample records found along the way."""
    reads = by_name()
    quick = settings.model_copy(update={"retry_attempts": 2, "cache_ttl": 0.0, "timeout": min(settings.timeout, 10.0)})
    probes: list[Probe] = []
    async with SheepClient(quick.client_config()) as client:

        async def call(name: str, make: Callable[[], Awaitable[Any]], *, found: bool = True, sent: str = "") -> Any:
            """`found`: the call is about a record this check found (a 404 then means the path moved). `sent`: the
            parameters this probe is about, named in its line (a 400 then means sheepCRM refuses them)."""
            read = reads[name] if not sent else dataclasses.replace(reads[name], name=f"{name} ({sent})")
            try:
                data = await make()
            except PermissionDenied as exc:
                said = f" (sheepCRM said: {exc.detail})" if exc.detail else ""
                probes.append(Probe(read.name, read.path, 403, note=f"this key lacks a permission{said}: not checked",
                                    unchecked=True))
                return None
            except SheepError as exc:
                status = exc.status
                probe = Probe(read.name, read.path, status or "error", note=type(exc).__name__)
                if status in read.answers and not (found and status == 404):  # no match for what it just read: moved
                    probe.note = "a documented answer (no match)" if status == 404 else "a documented answer"
                elif status is not None and 400 <= status < 500:
                    probe.refused = refusal(status, read, found)
                else:
                    probe.note = f"{type(exc).__name__}: could not check (try again later)"
                    probe.unchecked = True
                probes.append(probe)
                return None
            probes.append(inspect(read, data))
            return data

        def skipped(name: str, why: str, *, sent: str = "") -> None:
            probes.append(Probe(f"{name} ({sent})" if sent else name, reads[name].path, "skipped", note=why,
                                unchecked=True))

        found = await call("search", lambda: client.search("a"), found=False)
        listed = {
            rtype: await call(f"{rtype} list", functools.partial(client.resources, rtype, {}, 1, 5), found=False)
            for rtype in ("person", "organisation", "member", "membership_type")
        }
        # the people to sample: the search's, else the person listing's (when the search is refused or moved)
        people = [u for r in _records(found, "results") if "person" in str(r.get("resource") or r.get("id") or "")
                  if (u := _uri(r.get("id") or r.get("uri"), client.bucket, ("person",)))]
        people += [u for r in _records(listed["person"], "results")
                   if (u := _uri(r.get("uri"), client.bucket, ("person",)))]
        people = list(dict.fromkeys(people))
        contact = people[0] if people else None
        sampled: list[dict[str, str]] = []  # the details of each person read, as the tools send them
        if contact:
            sampled.append(_details(await call("v1 record", lambda: client.record(contact))))
            await call("record history", lambda: client.record_audit(contact, since_days=3650))
        else:
            for name in ("v1 record", "record history"):
                skipped(name, "neither the search nor the person listing gave a person to sample")
        # each set of details the person search matches on (and the tools send), from a person who has them: more
        # people are read until every set has one (at most SAMPLED)
        for more in people[1:SAMPLED]:
            if all(any(m <= d.keys() for d in sampled) for m in PERSON_MATCHES):
                break
            with contextlib.suppress(SheepError):
                sampled.append(_details(await client.record(more)))
        email = next((d["email"] for d in sampled if "email" in d), None)
        if email:
            await call("v1 membership by email", lambda: client.membership_by_email(email))
        else:
            skipped("v1 membership by email", "no sampled person has an email" if people else "no person to sample")
        for match in PERSON_MATCHES:  # the details of a person just read: a 404 ("no match") means a moved search
            sent = ", ".join(k for k in DETAILS if k in match)
            details = next(({k: d[k] for k in match} for d in sampled if match <= d.keys()), None)
            if details:
                await call("person search", functools.partial(client.search_people, **details), sent=sent)
            else:  # a search for anything else tells nothing: a 404 is both "no match" and a moved path
                skipped("person search", f"no sampled person has {sent} to search by" if people
                        else "no person to sample", sent=sent)
        # the listings by name create_contact reads for namesakes (and for the record a create made)
        names = next(({k: d[k] for k in ("first_name", "last_name")} for d in sampled
                      if {"first_name", "last_name"} <= d.keys()), None)
        if names:
            await call("person list", functools.partial(client.resources, "person", names, 1, NAME_PAGE),
                       found=False, sent="first_name, last_name")
        else:
            skipped("person list", "no sampled person has a first and last name", sent="first_name, last_name")
        org_name = next((n.strip() for r in _records(listed["organisation"], "results")
                         if isinstance(d := r.get("data"), dict) and isinstance(n := d.get("name"), str) and n.strip()),
                        None)
        if org_name:
            await call("organisation list", functools.partial(
                client.resources, "organisation", {"name": org_name}, 1, NAME_PAGE), found=False, sent="name")
        else:
            skipped("organisation list", "no organisation with a name to sample", sent="name")
        await call("help search", lambda: client.search_help("membership", include_text=True), found=False,
                   sent="include_text")
        if email:  # by email, both types (with_email), with the page size the tools ask for
            for rtype in ("person", "organisation"):
                await call(f"{rtype} list", functools.partial(
                    client.resources, rtype, {"email__startswithi": email}, 1, EMAIL_PAGE),
                    found=False, sent="email__startswithi")
        linked: Any = None
        with contextlib.suppress(SheepError):  # organisations whose `connections` field is not empty, to sample
            linked = await client.resources("organisation", {"connections__ne": ""}, 1, 5)
        orgs = [o for data in (linked, listed["organisation"]) for r in _records(data, "results")
                if (o := _uri(r.get("uri"), client.bucket, ("organisation",)))]
        if orgs:  # the first sampled organisation with connections (any, when none has one)
            org = orgs[0]
            for one in orgs:
                with contextlib.suppress(SheepError):
                    if _records(await client.connections(one), "connections"):
                        org = one
                        break
            await call("connections", lambda: client.connections(org))
        else:
            skipped("connections", "no organisation to sample")
        holders = (_uri(d.get("member"), client.bucket) for r in _records(listed["member"], "results")
                   if isinstance(d := r.get("data"), dict))
        holder = next((h for h in holders if h), None)
        if holder:
            today = date.today().isoformat()
            await call("member list", functools.partial(client.resources, "member", {"member": str(holder)}, 1,
                                                        WINDOW_PAGE), found=False, sent="member")
            await call("member list", functools.partial(
                client.resources, "member", {"start_date__lte": today, "end_date__gte": today}, 1, WINDOW_PAGE),
                found=False, sent="start_date__lte, end_date__gte")
            memberships = await call("memberships", lambda: client.memberships(holder))
            plans = (_uri(m.get("membership_type"), client.bucket, ("membership_type",))
                     for m in _records(memberships, "memberships"))
            plan = next((p for p in plans if p), None)
            if plan:
                await call("display", lambda: _display(client, plan))
            else:
                skipped("display", "no membership plan to name")
        else:
            for name in ("memberships", "display"):
                skipped(name, "no member to sample")
        # the renewal window's end and the plan, each on its own so that a refusal names the parameter refused
        until = (date.today() + timedelta(days=90)).isoformat()
        await call("member list", functools.partial(client.resources, "member", {"end_date__lte": until}, 1,
                                                    WINDOW_PAGE), found=False, sent="end_date__lte")
        plan_uri = next((str(p) for r in _records(listed["membership_type"], "results")
                         if (p := _uri(r.get("uri"), client.bucket, ("membership_type",)))), None)
        if plan_uri:
            await call("member list", functools.partial(client.resources, "member", {"membership_type": plan_uri},
                                                        1, WINDOW_PAGE), found=False, sent="membership_type")
        else:
            skipped("member list", "no membership plan to filter by", sent="membership_type")
        events = [await call("events", lambda: client.events("all", 1, PAGE), found=False)]
        for state in ("current", "future", "running", "past", "draft"):  # each state the tools list
            events.append(await call("events", functools.partial(client.events, state, 1, PAGE), found=False,
                                     sent=state))
        # an event to sample: from the list of all, else from any state's (one list moved or refused)
        event_uids = [str(e["uid"]) for data in events for e in _records(data, "bookings")
                      if isinstance(e.get("uid"), str)]
        if event_uids:
            uid = event_uids[0]
            await call("event", lambda: client.event(uid))
            await call("event summary", lambda: client.event_summary(uid))
            await call("tickets", lambda: client.event_tickets(uid))
            sessions = await call("attendance", lambda: client.attendance(uid))
            booker = next((u for s in _records(sessions, "sessions")
                           if (u := _uri(s.get("person_ref"), client.bucket)) and u.type == "person"), None)
            if booker:
                await call("person orders", lambda: client.person_orders(booker.uid))
            else:
                skipped("person orders", "no attendee to sample")
        else:
            for name in ("event", "event summary", "tickets", "attendance", "person orders"):
                skipped(name, "no event to sample")
        mine = await call("my tasks", lambda: client.my_tasks(TASK_PAGE, include_completed=True), found=False)
        every = await call("all tasks", lambda: client.all_tasks(TASK_PAGE, include_completed=True), found=False)
        tasks = _records(every, "tasks") + _records(mine, "tasks")
        task_uids = [str(t["uid"]) for t in tasks if isinstance(t.get("uid"), str)]
        if task_uids:
            await call("task", lambda: client.task(task_uids[0]))
        else:
            skipped("task", "no task to sample")
        segments = await call("segments", lambda: client.all_segments(1, PAGE), found=False)
        seg = sorted((s for s in _records(segments, "segments") if isinstance(s.get("uid"), str)),
                     key=lambda s: s.get("active") is not True)  # an active one first: find lists only those
        seg_name = str(seg[0]["name"]) if seg and isinstance(seg[0].get("name"), str) else "a"
        named = await call("segment search", lambda: client.find_segments(seg_name, 1, 20), found=bool(seg))
        seg = seg or [s for s in _records(named, "segments") if isinstance(s.get("uid"), str)]  # the list moved
        if seg:
            seg_uid = str(seg[0]["uid"])
            await call("segment count", lambda: client.segment_count(seg_uid))
            listed_members = await call("segment members", lambda: client.segment_members(seg_uid, 1, PAGE))
            await call("segment members", lambda: client.segment_members(seg_uid, 1, PAGE, q="a"), found=False,
                       sent="q")
            last = [str(r["display_value"]).split()[-1] for r in _records(listed_members, "results")
                    if isinstance(r.get("display_value"), str) and r["display_value"].strip()]
            await call("segment lookup", lambda: client.segment_lookup(seg_uid, last[0] if last else "a"))
        else:
            for n in ("segment count", "segment members", "segment lookup"):
                skipped(n, "no segment to sample")
    return probes


DETAILS = ("email", "title", "first_name", "last_name", "date_of_birth", "postal_code")  # as the lines name them
SAMPLED = 5  # people read at most, to find one with each set of details the person search matches on


def _details(record: Any) -> dict[str, str]:
    """A v1 record's details that the person search and the listings by name take, as the tools send them (the
    first email without its label, a date of birth as YYYY-MM-DD); {} when it has none."""
    data = record.get("data") if isinstance(record, dict) else None
    if not isinstance(data, dict):
        return {}
    given = {k: v for k in ("title", "first_name", "last_name", "postal_code") if (v := text(data.get(k)))}
    if email := plain(data.get("email")):
        given["email"] = email
    if born := day(data.get("date_of_birth")):
        given["date_of_birth"] = born.isoformat()
    return given


async def _display(client: SheepClient, uri: RecordUri) -> dict[str, Any]:
    name = await client.display(uri.type, uri.uid)  # None when the answer has no display_value
    return {"display_value": name} if name is not None else {}


def _records(data: Any, key: str) -> list[dict[str, Any]]:
    value = data.get(key) if isinstance(data, dict) else data
    if isinstance(value, dict):
        value = [value]
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _uri(value: Any, bucket: str, types: tuple[str, ...] = CONTACT_TYPES) -> RecordUri | None:
    try:
        return parse_uri(str(value), bucket, types)
    except ScopeError:
        return None


def run_contract(overrides: dict[str, Any], *, sandbox: bool = False, as_json: bool = False) -> int:
    """`doctor --contract`: the basic checks, then one read of every upstream endpoint the tools use."""
    with contextlib.ExitStack() as stack:
        if sandbox:
            overrides = stack.enter_context(sandbox_settings(overrides))
        try:
            settings = _settings_to_check(load_settings(**overrides))
        except ConfigError as exc:
            print(json.dumps({"error": str(exc)}) if as_json else f"{BAD} settings: {exc}")
            return EXIT_SETTINGS
        basic = anyio.run(diagnose, settings)
        failed = [text for ok, text in basic.lines if not ok]
        if failed:
            print(json.dumps({"error": failed[0]}) if as_json else f"{BAD} {failed[0]}")
            return EXIT_UNREACHABLE if failed[0].startswith(UNREACHABLE) else EXIT_REFUSED
        probes = anyio.run(probe_contract, settings)
    # a basic check's refused read is probed again below; kept here only if that probe did not see it
    seen = {p.endpoint for p in probes if p.drift}
    probes = [p for p in basic.drift if p.endpoint not in seen] + probes
    drift = [p for p in probes if p.drift]
    if as_json:
        report = {
            "sheepcrm_mcp": __version__,
            "drift": bool(drift),
            "endpoints": [{**asdict(p), "drift": p.drift} for p in probes],
            "not_probed": WRITES_UNPROBED,
        }
        print(logs.scrub(json.dumps(report, indent=1)))
    else:
        for p in probes:
            print(logs.scrub(described(p)))
        print(
            f"doctor --contract: {DRIFTED.format(n=len(drift))}"
            if drift
            else "doctor --contract: every read the tools use answered in the documented shape",
            file=sys.stderr,
        )
        print(WRITES_UNPROBED, file=sys.stderr)
    return EXIT_DRIFT if drift else EXIT_OK
