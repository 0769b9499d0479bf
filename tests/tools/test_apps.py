"""MCP Apps on the wire (tools/apps.py): who sees them, what they declare, what their documents hold.

A client that does not negotiate the `io.modelcontextprotocol/ui` extension sees tools, resources and answers
exactly as before (the tool snapshots in tests/__toolsnaps__ are taken by such a client); one that does sees
each app on its tools, in the nested and the flat form, and the ui:// resources with their CSP. The browser
tests (test_apps_browser.py) render them in a real host.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.tools import apps
from sheepcrm_mcp.tools.profiles import HELPDESK, MEMBER, STAFF, Profile
from tests.helpers import CANARY_KEY, HTTP_TOKEN, REPO, TOOLS_LIST_BUDGET, http_session, serve_http, settings_for

SNAP = REPO / "tests" / "__toolsnaps__" / "apps" / "ui.json"
UI_SOURCES = REPO / "tools" / "ui"
CHECK_IN, CARD, RENEWALS = (a.uri for a in apps.APPS)
APPS_CLIENT = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
APPS_ALLOWANCE = 400  # what the apps' _meta may add to it for a client that negotiates them


@asynccontextmanager
async def session(
    sb: SandboxServer, tmp: Path, *, ui: bool, profile: Profile = STAFF, mode: str = "legacy", **over: Any
) -> AsyncIterator[Client]:
    built = build_app(settings_for(sb, tmp, **over), profile=profile)
    try:
        async with Client(built.server, mode=mode, extensions=[APPS_CLIENT] if ui else []) as client:  # type: ignore[arg-type]
            yield client
    finally:
        await built.aclose()


async def listing(client: Client) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    tools = {t.name: t.model_dump(mode="json", by_alias=True, exclude_none=True)
             for t in (await client.list_tools()).tools}
    resources = [r.model_dump(mode="json", by_alias=True, exclude_none=True)
                 for r in (await client.list_resources()).resources]
    return tools, resources


def bound(tools: dict[str, dict[str, Any]]) -> dict[str, str]:
    """tool -> the app it declares (nested form), checking the flat form says the same."""
    out = {}
    for name, tool in tools.items():
        meta = tool.get("_meta") or {}
        nested = (meta.get("ui") or {}).get("resourceUri")
        assert nested == meta.get(apps.FLAT_KEY), name
        if nested:
            out[name] = nested
    return out


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_client_without_apps_sees_what_it_saw_before(
    shared_sandbox: SandboxServer, tmp_path: Path, mode: str
) -> None:
    async with session(shared_sandbox, tmp_path, ui=False, mode=mode) as plain:
        tools, resources = await listing(plain)
    async with session(shared_sandbox, tmp_path, ui=True, mode=mode) as rich:
        rich_tools, rich_resources = await listing(rich)
    assert bound(tools) == {} and all("_meta" not in t for t in tools.values())
    assert [r for r in resources if r["uri"].startswith("ui://")] == []
    assert bound(rich_tools) == {
        "list_attendees": CHECK_IN, "check_membership": CARD, "search_contacts": RENEWALS,
    }
    # Apart from the ui keys, the tools are the same for both.
    assert {n: {k: v for k, v in t.items() if k != "_meta"} for n, t in rich_tools.items()} == tools
    assert [r for r in rich_resources if not r["uri"].startswith("ui://")] == resources


async def test_a_stateless_server_offers_apps_only_where_the_request_says_the_client_has_them(
    shared_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """On 2025-11-25 a stateless server has no session to remember the client's capabilities, so it cannot know;
    on 2026-07-28 every request declares them."""
    seen = {}
    with serve_http(shared_sandbox, tmp_path, stateless=True) as base:
        for mode in ("legacy", "2026-07-28"):
            async with http_session(base, mode=mode, extensions=[APPS_CLIENT]) as client:
                seen[mode] = bound({t.name: t.model_dump(by_alias=True) for t in (await client.list_tools()).tools})
    assert seen == {"legacy": {}, "2026-07-28": {
        "list_attendees": CHECK_IN, "check_membership": CARD, "search_contacts": RENEWALS}}


async def test_answers_are_the_same_with_and_without_apps(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    facts = shared_sandbox.store.demo_facts()
    calls = [
        ("check_membership", {"uri": facts["jane_uri"]}),
        ("search_contacts", {"renewing_within_days": 60}),
        ("list_attendees", {"uid": facts["running_event_uid"], "limit": 5}),
    ]
    answers = []
    for ui in (False, True):
        async with session(shared_sandbox, tmp_path, ui=ui) as client:
            answers.append([(await client.call_tool(name, args)).model_dump(mode="json", by_alias=True)
                            for name, args in calls])
    assert answers[0] == answers[1]
    assert all(a["structuredContent"] and not a.get("isError") for a in answers[0])


async def test_apps_declarations_match_the_snapshot(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    """What an Apps client is told about each app (the HTML itself is checked below)."""
    async with session(shared_sandbox, tmp_path, ui=True) as client:
        tools, resources = await listing(client)
        declared = {
            "tools": {n: t["_meta"] for n, t in sorted(tools.items()) if "_meta" in t},
            "resources": [r for r in resources if r["uri"].startswith("ui://")],
            "read": {},
        }
        for r in declared["resources"]:
            content = (await client.read_resource(r["uri"])).contents[0]
            assert content.mime_type == APP_MIME_TYPE
            declared["read"][r["uri"]] = content.model_dump(mode="json", by_alias=True, exclude={"text", "uri"})
    text = json.dumps(declared, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_TOOLSNAPS") == "1":
        SNAP.parent.mkdir(exist_ok=True)
        SNAP.write_text(text)
    assert SNAP.read_text() == text, (
        "the apps' declarations changed: review, then run UPDATE_TOOLSNAPS=1 .venv/bin/pytest tests/tools/test_apps.py"
    )
    csp = declared["read"][CHECK_IN]["_meta"]["ui"]["csp"]
    assert csp == {"connectDomains": [], "resourceDomains": [], "frameDomains": [], "baseUriDomains": []}


async def test_tools_list_with_apps_fits_the_budget(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    sizes = []
    for ui in (False, True):
        async with session(shared_sandbox, tmp_path, ui=ui) as client:
            sizes.append(len((await client.list_tools()).model_dump_json(by_alias=True, exclude_none=True)))
    plain, rich = sizes
    assert plain <= TOOLS_LIST_BUDGET, f"tools/list is {plain} characters"
    assert rich <= TOOLS_LIST_BUDGET, f"tools/list with the apps is {rich} characters"
    assert 0 < rich - plain <= APPS_ALLOWANCE, f"the apps add {rich - plain} characters to tools/list"


@pytest.mark.parametrize(
    ("profile", "over", "expected", "writes"),
    [
        (STAFF, {"toolsets": "events"}, {"list_attendees": CHECK_IN}, True),
        (STAFF, {"toolsets": "events", "read_only": True}, {"list_attendees": CHECK_IN}, False),
        (STAFF, {"toolsets": "membership,help"}, {"check_membership": CARD}, None),
        (STAFF, {"toolsets": "tasks,help"}, {}, None),
        (HELPDESK, {"helpdesk_writes": "update_task"}, {
            "list_attendees": CHECK_IN, "check_membership": CARD, "search_contacts": RENEWALS}, False),
        (HELPDESK, {}, {"list_attendees": CHECK_IN, "check_membership": CARD, "search_contacts": RENEWALS}, True),
        (MEMBER, {}, {"my_membership": CARD}, None),
    ],
)
async def test_apps_follow_toolsets_profiles_and_read_only(
    shared_sandbox: SandboxServer, tmp_path: Path, profile: Profile, over: dict[str, Any],
    expected: dict[str, str], writes: bool | None,
) -> None:
    async with session(shared_sandbox, tmp_path, ui=True, profile=profile, **over) as client:
        tools, resources = await listing(client)
        assert bound(tools) == expected
        assert sorted(r["uri"] for r in resources if r["uri"].startswith("ui://")) == sorted(set(expected.values()))
        if writes is not None:
            board = (await client.read_resource(CHECK_IN)).contents[0].text  # type: ignore[union-attr]
            assert f'data-writes="{"on" if writes else "off"}"' in board
            assert ("set_attendance" in tools) is writes


def test_documents_run_only_their_own_script_and_style() -> None:
    for app in apps.APPS:
        for writes in (False, True):
            doc = apps.document(app, writes)
            policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', doc)
            assert policy, app.uri
            rules = dict(r.strip().split(" ", 1) for r in policy.group(1).replace("&#x27;", "'").split(";"))
            scripts = re.findall(r"<script>(.*?)</script>", doc, re.S)
            styles = re.findall(r"<style>(.*?)</style>", doc, re.S)
            assert len(scripts) == len(styles) == 1 and "<script " not in doc and "<link" not in doc
            assert rules["default-src"] == "'none'" and rules["connect-src"] == "'none'"
            assert rules["script-src"] == digest(scripts[0]) and rules["style-src"] == digest(styles[0])
            assert not re.search(r"https?://", doc), f"{app.uri} names an address"


def digest(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def test_sources_never_parse_markup() -> None:
    """Values reach the screen only as text (el(..., text) / textContent): no API that parses markup or code."""
    sources = sorted(UI_SOURCES.glob("*.js"))
    assert len(sources) == 1 + len(apps.APPS)
    for path in sources:
        code = path.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(",
                       "setTimeout(\"", "srcdoc", ".href", "window.open", "localStorage", "fetch("):
            assert banned not in code, f"{path.name} uses {banned}"


async def test_no_secret_reaches_an_app(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    async with session(shared_sandbox, tmp_path, ui=True, mcp_token=HTTP_TOKEN, confirm="page") as client:
        docs = [(await client.read_resource(uri)).contents[0].model_dump_json() for uri in (CHECK_IN, CARD, RENEWALS)]
    for doc in docs:
        for secret in (CANARY_KEY, HTTP_TOKEN, "127.0.0.1", "localhost", "/approve", "/open/"):
            assert secret not in doc, secret
