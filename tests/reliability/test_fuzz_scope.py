"""Fuzzing and scope.

Fuzzing: for every tool in tools/list, Hypothesis draws arguments from the tool's published input schema
(mostly valid values, some of the wrong type, unknown arguments, look-alikes and escape attempts) and sends
them through a real client session (approving every write). Every answer must be a result: never a JSON-RPC
error, never a traceback, never "failed unexpectedly"; failures are isError with a message.

Scope: across the fuzzing and a corpus of escape attempts passed as uri/uid arguments (and resource uids),
every request the sandbox received must be on the allowed path set of the configured bucket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests import manifest
from tests.helpers import CANARY_KEY, approve, open_session
from tests.reliability.helpers import figure, out_of_scope, result_text

pytestmark = pytest.mark.reliability

PROFILES: tuple[manifest.Profile, ...] = ("staff", "member")
TOOL_NAMES = list(manifest.every_tool())  # every tool of both catalogues, each called in its first profile
MAX_EXAMPLES = 40
BAD_WORDS = ("failed unexpectedly", "Traceback", "Exception Group", "Internal error")


def escapes(uid: str, bucket: str) -> list[str]:
    """Ways a uri or uid argument might try to leave the bucket or the allowed paths."""
    b = bucket
    return [
        f"/other/person/{uid}/",
        f"/{b}/person/../../other/person/{uid}/",
        f"/{b}/person/{uid}/../../../api/v1/other/",
        "..",
        "../" + uid,
        f"/{b}/person/%2e%2e/",
        "%2e%2e",
        f"%2e%2e%2f%2e%2e%2fother%2fperson%2f{uid}",
        f"/{b}/person/{uid}%2fsummary/",
        f"{uid}%2f..%2f..",
        f"%252e%252e%252f{uid}",
        f"/{b}/person/%252e%252e%252f/",
        f"https://evil.example/{b}/person/{uid}/",
        f"//evil.example/{b}/person/{uid}/",
        f"http://127.0.0.1:1/{b}/person/{uid}/",
        f"/{b}/person/{uid}@evil.example/",
        f"{uid}@evil.example",
        f"@evil.example/{uid}",
        f"\\{b}\\person\\{uid}\\",
        f"/{b}/person/{uid}\\..\\..\\other/",
        f"{uid}\x00",
        f"/{b}/person/{uid}\x00/",
        f"{uid}%00",
        f"/{b}/person/{uid}/\x00../../other/",
        f"/dеmo/person/{uid}/",  # Cyrillic е
        f"/{b}/pеrson/{uid}/",  # Cyrillic е
        f"／{b}／person／{uid}／",  # fullwidth solidus
        f"/{b}/person/{uid}∕",  # division slash
        "ｕｉｄ１２３",  # fullwidth letters and digits
        "١٢٣٤",  # Arabic-Indic digits
        f"{uid}?bucket=other",
        f"/{b}/person/{uid}/?q=x&page_size=100000",
        f"{uid}&person_uri=/other/person/{uid}/",
        f"{uid}#fragment",
        f"{uid};other",
        f"{uid}\r\nX-Injected: 1",
        "a" * 65,
        "a" * 5000,
        f"/{b}/person/{'a' * 65}/",
        f"/{b}/person/{uid}/summary",
        f"/{b}/user/{uid}/",
        f"/{b}/booking/{uid}/",
        f"/{b}//person/{uid}/",
        f"//{b}/person/{uid}/",
        f"/{b}/person/{uid}//",
        f"/{b}/person/./{uid}/",
        "",
        " ",
        "/",
        f"/{b}/",
        f"/{b.upper()}/person/{uid}/",
        f"file:///etc/passwd#{uid}",
    ]


@dataclass
class Env:
    portal: BlockingPortal
    client: Client
    sb: SandboxServer
    schemas: dict[str, dict[str, Any]]
    facts: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    calls: int = 0
    errors: int = 0

    def call(self, tool: str, args: dict[str, Any]) -> None:
        """One call; anything but a proper result is a problem."""
        self.calls += 1
        try:
            result = self.portal.call(self.client.call_tool, tool, args)
        except Exception as exc:
            self.problems.append(f"{tool} {args!r:.200}: {type(exc).__name__}: {exc}")
            return
        text = result_text(result)
        if any(w in text for w in BAD_WORDS):
            self.problems.append(f"{tool} {args!r:.200}: {text[:300]}")
        if result.is_error:
            self.errors += 1
            if len(text.removeprefix(f"Error executing tool {tool}").strip(" :")) < 15:
                self.problems.append(f"{tool} {args!r:.200}: error without an explanation: {text!r}")
        elif result.structured_content is None:
            self.problems.append(f"{tool} {args!r:.200}: success without structured content")


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    handler = Collector()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory, collector: Collector) -> Iterator[dict[str, Env]]:
    """One session per profile on one sandbox: the staff catalogue and a signed-in member."""
    with SandboxServer(key=CANARY_KEY) as sb, start_blocking_portal() as portal:
        with (
            portal.wrap_async_context_manager(
                open_session(sb, tmp_path_factory.mktemp("fuzz"), profile="staff", elicitation=approve, timeout=3.0)
            ) as staff,
            portal.wrap_async_context_manager(
                open_session(sb, tmp_path_factory.mktemp("fuzz-member"), profile="member", timeout=3.0)
            ) as member,
        ):
            found = {}
            for profile, client in (("staff", staff), ("member", member)):
                listed = portal.call(client.list_tools)
                schemas = {t.name: t.input_schema for t in listed.tools}
                found[profile] = Env(portal, client, sb, schemas, sb.store.demo_facts())
            yield found


def value_strategy(schema: dict[str, Any], known: list[str], wrong_too: bool = True) -> st.SearchStrategy[Any]:
    """Values for one property: what the schema allows, and (wrong_too) sometimes what it does not."""
    kind = schema.get("type")
    if "enum" in schema:
        good: st.SearchStrategy[Any] = st.sampled_from(schema["enum"])
    elif kind == "integer":
        good = st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    elif kind == "number":
        good = st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    elif kind == "boolean":
        good = st.booleans()
    elif kind == "array":
        good = st.lists(
            value_strategy(schema.get("items", {}), known, wrong_too),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 4), 4),
        )
    elif schema.get("format") == "date":
        good = st.dates().map(lambda d: d.isoformat())
    else:
        good = st.one_of(st.sampled_from(known), st.sampled_from(known), st.text(max_size=60))
    if not wrong_too:
        return good
    wrong = st.one_of(
        st.none(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.text(max_size=400),
        st.lists(st.text(max_size=5), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    )
    return st.one_of(good, good, good, good, good, wrong)


def arguments_strategy(schema: dict[str, Any], known: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Half the time only schema-valid values (so handlers run), otherwise anything, sometimes with strangers."""
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))

    def objects(wrong_too: bool) -> st.SearchStrategy[dict[str, Any]]:
        # a valid cursor only comes from a previous answer, so schema-valid calls leave it out
        strategies = {
            name: value_strategy(sub, known, wrong_too)
            for name, sub in props.items()
            if wrong_too or name != "cursor"
        }
        return st.fixed_dictionaries(
            {n: s for n, s in strategies.items() if n in required},
            optional={n: s for n, s in strategies.items() if n not in required},
        )

    extra = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20), max_size=2)
    valid, anything = objects(False), objects(True)
    return st.one_of(valid, valid, anything, st.builds(lambda a, b: {**b, **a}, anything, extra))


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_fuzz_tool(envs: dict[str, Env], tool: str) -> None:
    env = envs[manifest.entry(tool).profiles[0]]
    assert tool in env.schemas, f"{tool} is not in tools/list"
    f = env.facts
    valid = [
        f["jane_uri"], f["jane_uid"], f["jane_email"], f["organisation_uri"], f["past_event_uid"],
        f["my_open_task_uid"], f["segment_fellows_uid"], "austen", "refund", "2099-01-01",
    ]
    known = valid * 3 + escapes(f["jane_uid"], env.sb.bucket)[:20]  # valid ids weigh more
    before = len(env.problems)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(args=arguments_strategy(env.schemas[tool], known))
    def check(args: dict[str, Any]) -> None:
        env.call(tool, args)

    check()
    assert env.problems[before:] == []


def test_fuzz_figures_and_scope(envs: dict[str, Env], collector: Collector) -> None:
    """Runs after the fuzzing (same module, same sandbox)."""
    env = envs["staff"]
    env.calls += envs["member"].calls
    env.errors += envs["member"].errors
    env.problems += envs["member"].problems
    log = list(env.sb.request_log)
    outside = out_of_scope(log, env.sb.bucket)
    tracebacks = [logging.Formatter().format(r)[-1500:] for r in collector.records if r.exc_info]
    figure(
        "fuzzing",
        tools=len(TOOL_NAMES),
        examples_per_tool=MAX_EXAMPLES,
        calls=env.calls,
        is_error_results=env.errors,
        protocol_errors_or_tracebacks=len(env.problems) + len(tracebacks),
        upstream_requests=len(log),
        out_of_scope=len(outside),
    )
    assert env.calls >= len(TOOL_NAMES) * 10
    assert env.problems == [], env.problems[:5]
    assert tracebacks == [], "\n".join(tracebacks[:2])
    assert outside == []


async def test_escape_corpus_stays_in_scope(sandbox: SandboxServer, tmp_path: Path) -> None:
    facts = sandbox.store.demo_facts()
    corpus = escapes(facts["jane_uid"], sandbox.bucket)
    calls = refused = 0
    problems: list[str] = []
    accepted: list[str] = []
    for profile in PROFILES:
        async with open_session(sandbox, tmp_path, profile=profile, elicitation=approve, timeout=3.0) as client:
            for bad in corpus:
                for tool, args in manifest.slots(facts, bad, profile):
                    calls += 1
                    try:
                        result = await client.call_tool(tool, args)
                    except Exception as exc:
                        problems.append(f"{tool} {bad!r:.60}: {type(exc).__name__}: {exc}")
                        continue
                    text = result_text(result)
                    if any(w in text for w in BAD_WORDS) or (
                        result.is_error and len(text.removeprefix(f"Error executing tool {tool}").strip(" :")) < 15
                    ):
                        problems.append(f"{tool} {bad!r:.60}: {text[:200]}")
                    refused += result.is_error
                    names_record = any(  # record arguments: uri, uid, *_uri, *_uid, *_uris (CONTRIBUTING.md)
                        ((k in ("uri", "uid") or k.endswith(("_uri", "_uid"))) and v == bad)
                        or (k.endswith("_uris") and v == [bad])
                        for k, v in args.items()
                    )
                    if names_record and not result.is_error:
                        accepted.append(f"{tool} {bad!r:.60}")
                resources = ("contact", "event", "segment") if profile == "staff" else ()
                for uri in (f"sheepcrm://{kind}/{bad}" for kind in resources):
                    calls += 1
                    try:
                        await client.read_resource(uri)
                        accepted.append(f"resource {uri!r:.80}")
                    except Exception:  # resources report errors as JSON-RPC errors, by the spec
                        refused += 1
    log = list(sandbox.request_log)
    outside = out_of_scope(log, sandbox.bucket)
    figure(
        "scope",
        escape_strings=len(corpus),
        calls=calls,
        refused=refused,
        record_args_accepted=len(accepted),
        upstream_requests=len(log),
        out_of_scope=len(outside),
    )
    assert outside == [], outside[:10]
    assert problems == [], problems[:10]
    # an escape string in a uri/uid slot is refused; the only exceptions are ones the server normalises
    # back to the configured bucket itself (e.g. a doubled trailing slash), which is in scope by the log
    assert len(accepted) <= 3, accepted
    puts = [e for e in log if e.method == "PUT"]
    assert puts == [], "an escape attempt reached a write"
