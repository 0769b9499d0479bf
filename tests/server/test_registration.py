"""registration.build_tools: tools/list served from the tool cache is byte for byte the list built at start; a tool
listed from it still validates its arguments, refuses unknown ones and goes through the gate on its first call; a
cache for other code, a corrupt one or one others can read is ignored."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import mcp_types as mt
from mcp import Client

from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.toolcache import LazyTool, source_key
from tests.helpers import settings_for


async def listing(sb: SandboxServer, tmp: Path, cache: Path) -> tuple[str, list[Any]]:
    """tools/list as the server answers it (JSON) and the tools behind it."""
    built = build_app(settings_for(sb, tmp), tool_cache=cache)
    try:
        tools = await built.server.list_tools()
        return mt.ListToolsResult(tools=tools).model_dump_json(by_alias=True, exclude_none=True), \
            built.server._tool_manager.list_tools()
    finally:
        await built.aclose()


async def test_tools_list_from_the_cache_is_the_list_built_at_start(shared_sandbox: SandboxServer,
                                                                   tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "tools.json"
    built, tools = await listing(shared_sandbox, tmp_path, cache)
    assert not any(isinstance(t, LazyTool) for t in tools)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600 and stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    cached, tools = await listing(shared_sandbox, tmp_path, cache)
    assert tools and all(isinstance(t, LazyTool) for t in tools)
    assert cached == built


async def test_a_cache_for_other_code_or_readable_by_others_is_ignored(shared_sandbox: SandboxServer,
                                                                     tmp_path: Path) -> None:
    cache = tmp_path / "tools.json"
    built, _ = await listing(shared_sandbox, tmp_path, cache)
    data = json.loads(cache.read_text())
    forged = {fp: [{"type": "object", "properties": {"forged": {}}}, None] for fp in data["tools"]}
    for key, mode in ((source_key(), 0o644), ("other code", 0o600)):
        cache.unlink()
        cache.write_text(json.dumps({"key": key, "tools": forged}))
        cache.chmod(mode)
        again, tools = await listing(shared_sandbox, tmp_path, cache)
        assert again == built and not any(isinstance(t, LazyTool) for t in tools)
    cache.write_text("{not json")
    assert (await listing(shared_sandbox, tmp_path, cache))[0] == built


async def test_a_tool_listed_from_the_cache_checks_its_arguments_and_passes_the_gate(sandbox: SandboxServer,
                                                                                    tmp_path: Path) -> None:
    cache = tmp_path / "tools.json"
    await listing(sandbox, tmp_path, cache)
    jane = sandbox.store.demo_facts()["jane_uri"]

    async def accept(context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
        return mt.ElicitResult(action="accept", content={"confirm": True})

    built = build_app(settings_for(sandbox, tmp_path), tool_cache=cache)
    assert isinstance(built.server._tool_manager.get_tool("get_contact"), LazyTool)
    try:
        async with Client(built.server, mode="legacy", elicitation_callback=accept) as client:
            stranger = await client.call_tool("get_contact", {"uri": jane, "smuggled": "x"})
            wrong = await client.call_tool("get_contact", {"uri": 5})
            read = await client.call_tool("get_contact", {"uri": jane})
            write = await client.call_tool("update_contact", {"uri": jane, "phone": "+44 20 7946 0999"})
    finally:
        await built.aclose()
    assert stranger.is_error and "unknown argument(s) smuggled" in stranger.content[0].text  # type: ignore[union-attr]
    assert wrong.is_error and "uri" in wrong.content[0].text  # type: ignore[union-attr]
    assert not read.is_error and read.structured_content and read.structured_content["uri"] == jane
    assert not write.is_error and (write.structured_content or {}).get("status") == "applied"


async def test_a_tool_the_cache_lists_is_still_chosen_by_the_catalogue_on_its_first_call(sandbox: SandboxServer,
                                                                                          tmp_path: Path) -> None:
    """A tool cache (this user's own, for this code) that lists a write tool as a read, or a tool the catalogue does
    not have, lists them; their first call asks the catalogue, which refuses them in read-only mode."""
    cache = tmp_path / "tools.json"
    await listing(sandbox, tmp_path, cache)
    data = json.loads(cache.read_text())
    entries = data["catalogue"]["tools"]
    update = next(e for e in entries if e["name"] == "update_contact")
    get = next(e for e in entries if e["name"] == "get_contact")
    entries += [{**get, "name": "get_everything"}]
    update["write"] = False
    cache.write_text(json.dumps(data))
    built = build_app(settings_for(sandbox, tmp_path, read_only=True), tool_cache=cache)
    jane = sandbox.store.demo_facts()["jane_uri"]
    try:
        names = {t.name for t in await built.server.list_tools()}
        assert {"update_contact", "get_everything", "get_contact"} <= names  # as the forged cache lists them
        async with Client(built.server, mode="legacy") as client:
            write = await client.call_tool("update_contact", {"uri": jane, "phone": "+44 20 7946 0999"})
            other = await client.call_tool("get_everything", {"uri": jane})
            read = await client.call_tool("get_contact", {"uri": jane})
    finally:
        await built.aclose()
    assert write.is_error and "not among this server's tools" in write.content[0].text  # type: ignore[union-attr]
    assert other.is_error and "not among this server's tools" in other.content[0].text  # type: ignore[union-attr]
    assert not read.is_error
