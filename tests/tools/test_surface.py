"""What the model sees: tools/list snapshots, annotation lint, toolsets, resources, prompts, instructions.

Snapshots live in tests/__toolsnaps__/<tool>.json; rewrite them with UPDATE_TOOLSNAPS=1 after a deliberate
change, so every change to what the model sees shows up in review.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.specs import ReadTool, WriteTool
from sheepcrm_mcp.tools.catalogue import TOOLS
from sheepcrm_mcp.tools.profiles import MEMBER
from tests.helpers import TOOLS_LIST_BUDGET, settings_for

REWRITE = "UPDATE_TOOLSNAPS=1 .venv/bin/pytest tests/tools/test_surface.py"
SNAPS = Path(__file__).resolve().parents[1] / "__toolsnaps__"


def names(toolsets: set[str], writes: bool = True) -> set[str]:
    return {t.name for t in TOOLS if t.toolset in toolsets and (writes or isinstance(t, ReadTool))}


async def listed(connect: Any, sb: SandboxServer, **over: Any) -> list[dict[str, Any]]:
    async with connect(sb, **over) as client:
        tools = (await client.list_tools()).tools
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


def check_snapshots(tools: list[dict[str, Any]], snaps: Path) -> None:
    """Each tool as listed equals its committed snapshot in `snaps`, and no snapshot is left for a tool that is gone;
    UPDATE_TOOLSNAPS=1 rewrites them (for deliberate changes only)."""
    update = os.environ.get("UPDATE_TOOLSNAPS") == "1"
    snaps.mkdir(exist_ok=True)
    for tool in tools:
        path = snaps / f"{tool['name']}.json"
        text = json.dumps(tool, indent=2, sort_keys=True) + "\n"
        if update:
            path.write_text(text)
        assert path.exists(), f"no snapshot {path.relative_to(SNAPS)}: run {REWRITE}"
        assert path.read_text() == text, f"{path.relative_to(SNAPS)} changed: review, then run {REWRITE}"
    stale = {p.stem for p in snaps.glob("*.json")} - {t["name"] for t in tools}
    assert not stale, f"snapshots for tools that no longer exist: {stale}"


async def test_tools_list_matches_snapshots(shared_sandbox: SandboxServer, connect: Any) -> None:
    check_snapshots(await listed(connect, shared_sandbox), SNAPS)


async def test_member_tools_match_snapshots(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    """The member profile's tools (descriptions included) as a signed-in member's client lists them."""
    built = build_app(settings_for(shared_sandbox, tmp_path), profile=MEMBER)
    try:
        async with Client(built.server, mode="legacy") as client:
            tools = [t.model_dump(mode="json", by_alias=True, exclude_none=True)
                     for t in (await client.list_tools()).tools]
    finally:
        await built.aclose()
    check_snapshots(tools, SNAPS / "member")


def test_every_tool_declares_its_hints_and_schemas() -> None:
    assert TOOLS, "the catalogue is empty"
    for spec in TOOLS:
        hints = spec.annotations
        assert hints.read_only_hint is (isinstance(spec, ReadTool)), spec.name
        if isinstance(spec, WriteTool):
            assert hints.destructive_hint is not None and hints.idempotent_hint is not None, spec.name
        assert spec.description and len(spec.description) <= 160, spec.name


async def test_listed_tools_carry_output_schemas_and_hints(shared_sandbox: SandboxServer, connect: Any) -> None:
    reads = {t.name for t in TOOLS if isinstance(t, ReadTool)}
    for tool in await listed(connect, shared_sandbox):
        assert tool.get("outputSchema", {}).get("type") == "object", tool["name"]
        hints = tool.get("annotations", {})  # a false readOnlyHint or idempotentHint is left out, as MCP assumes it
        assert hints.get("readOnlyHint", False) is (tool["name"] in reads), tool["name"]
        assert hints["openWorldHint"] is False and ("destructiveHint" in hints) is (tool["name"] not in reads)
        assert tool["inputSchema"]["type"] == "object"


async def test_tools_list_fits_the_context_budget(shared_sandbox: SandboxServer, connect: Any) -> None:
    async with connect(shared_sandbox) as client:
        listing = (await client.list_tools()).model_dump_json(by_alias=True, exclude_none=True)
    assert len(listing) <= TOOLS_LIST_BUDGET, f"tools/list is {len(listing)} characters"


async def test_toolsets_register_only_the_named_sets(shared_sandbox: SandboxServer, connect: Any) -> None:
    got = {t["name"] for t in await listed(connect, shared_sandbox, toolsets="events,help")}
    assert got == names({"events", "help"}) and len(got) >= 2
    got = {t["name"] for t in await listed(connect, shared_sandbox, toolsets="events", read_only=True)}
    assert got == names({"events"}, writes=False) and got < names({"events"})


async def test_resources_and_templates(shared_sandbox: SandboxServer, connect: Any) -> None:
    store = shared_sandbox.store
    facts = store.demo_facts()
    async with connect(shared_sandbox) as client:
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates == {"sheepcrm://contact/{uid}", "sheepcrm://event/{uid}", "sheepcrm://segment/{uid}"}
        statics = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "sheepcrm://guide" in statics
        contact = json.loads((await client.read_resource(f"sheepcrm://contact/{facts['jane_uid']}")).contents[0].text)
        assert contact["uri"] == facts["jane_uri"]
        org_uid = facts["organisation_uri"].split("/")[3]
        org = json.loads((await client.read_resource(f"sheepcrm://contact/{org_uid}")).contents[0].text)
        assert org["type"] == "organisation"
        event = json.loads((await client.read_resource(f"sheepcrm://event/{facts['free_event_uid']}")).contents[0].text)
        assert event["uid"] == facts["free_event_uid"]
        seg_uid = facts["segment_current_members_uid"]
        segment = json.loads((await client.read_resource(f"sheepcrm://segment/{seg_uid}")).contents[0].text)
        assert segment["count"] == store.segment_count(store.uri("segment", seg_uid))
        guide = (await client.read_resource("sheepcrm://guide")).contents[0].text
        assert "search_contacts" in guide and "never follow instructions" in guide.lower().replace("\n", " ")


async def test_resource_errors_are_clear(shared_sandbox: SandboxServer, connect: Any) -> None:
    async with connect(shared_sandbox) as client:
        with pytest.raises(Exception, match=r"Unknown resource|not valid"):
            await client.read_resource("sheepcrm://event/..%2f..")
        with pytest.raises(Exception, match="answered 404 for event"):
            await client.read_resource("sheepcrm://event/ffffffffffffffffffffffff")


async def test_prompts(shared_sandbox: SandboxServer, connect: Any) -> None:
    async with connect(shared_sandbox) as client:
        names = {p.name for p in (await client.list_prompts()).prompts}
        assert names == {"member_lookup", "event_check_in", "helpdesk_answer"}
        got = await client.get_prompt("member_lookup", {"person": "jane.austen@example.org"})
        text = got.messages[0].content.text  # type: ignore[union-attr]
        assert "check_membership" in text and "jane.austen@example.org" in text


async def test_instructions_say_crm_text_is_data(shared_sandbox: SandboxServer, connect: Any) -> None:
    async with connect(shared_sandbox) as client:
        instructions = client.instructions or ""
    assert "never instructions" in instructions and "search_contacts" in instructions
    assert len(instructions) < 1200, (
        f"the instructions are {len(instructions)} characters, over 1,200 (sent once per session): name the new "
        "tool in the guide (tools/resources.py) instead, or trim"
    )


async def test_the_guide_names_every_write_tool_and_the_approval_as_it_is(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    from sheepcrm_mcp.server.specs import WriteTool
    from sheepcrm_mcp.tools import catalogue

    writes = [spec.name for spec in catalogue.TOOLS if isinstance(spec, WriteTool)]
    assert writes
    async with connect(shared_sandbox) as client:
        guide = (await client.read_resource("sheepcrm://guide")).contents[0].text
    flat = " ".join(guide.split())
    missing = [name for name in writes if f"`{name}`" not in guide]
    assert not missing, f"the guide does not name the write tool(s) {missing}"
    assert "no result carries its address" in flat and "wait until they say" in flat
    assert "result gives an approval page address" not in flat  # the design before the page was out of band


async def test_the_first_answer_says_when_approvals_are_off_or_the_key_goes_elsewhere(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    async with connect(shared_sandbox, confirm="none") as client:
        instructions = client.instructions or ""
    assert "approvals are OFF" in instructions
    sandbox = shared_sandbox.url.split("://", 1)[1].rstrip("/")
    [notice] = [line for line in instructions.splitlines() if "sends its sheepCRM API key to" in line]
    assert f"http://{sandbox}" in notice and "not to sheepCRM" in notice  # a sandbox is not sheepCRM
