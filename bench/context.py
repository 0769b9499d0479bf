"""3. Context cost: tools/list as sent (compact JSON) for our full catalogue vs a server generated from the
OpenAPI spec by fastmcp's `FastMCP.from_openapi`."""

from __future__ import annotations

from typing import Any

from mcp import Client

from bench.common import SPEC, Row

TARGET_TOKENS = 3000
TARGET_RATIO = 0.1


def size(result: Any) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


async def ours(sb: Any) -> tuple[int, int]:
    from bench.overhead import bench_settings
    from sheepcrm_mcp.assembly import build_app

    built = build_app(bench_settings(sb))

    server = built.server
    try:
        async with Client(server, mode="legacy") as client:
            result = await client.list_tools()
    finally:
        await built.aclose()
    return size(result), len(result.tools)


async def generated(sb: Any) -> tuple[int, int, str]:
    """(characters, tools, what) for the generated server; (0, 0, why) when it cannot be built, which fails the row:
    a comparison without its baseline never passes."""
    if SPEC is None:
        return 0, 0, "SHEEPCRM_API_DOCS is not set (the generated server is built from sheepCRM's OpenAPI document)"
    if not SPEC.exists():
        return 0, 0, f"{SPEC} is missing"
    try:
        import httpx2
        import yaml
        from fastmcp import Client as FastClient
        from fastmcp import FastMCP
    except ImportError:
        return 0, 0, "the bench extra is not installed (pip install -e '.[bench]'; `bash dev.sh bench` does it)"
    spec = yaml.safe_load(SPEC.read_text())
    from importlib.metadata import version

    server = FastMCP.from_openapi(openapi_spec=spec, client=httpx2.AsyncClient(base_url=sb.url))
    async with FastClient(server) as client:
        result = await client.list_tools_mcp()
    return size(result), len(result.tools), f"FastMCP.from_openapi (fastmcp {version('fastmcp')})"


async def run(sb: Any, quick: bool) -> tuple[list[Row], list[str]]:
    chars, tools = await ours(sb)
    gen_chars, gen_tools, what = await generated(sb)
    tokens, gen_tokens = chars / 4, gen_chars / 4
    if not gen_chars:
        return [Row(f"tools/list characters ({tools} tools) vs generated server", f"{chars}", "no baseline", "-",
                    f"<= {TARGET_RATIO}x", False),
                Row("tools/list est. tokens (characters / 4)", f"{tokens:.0f}", "-", "-", f"<= {TARGET_TOKENS}",
                    tokens <= TARGET_TOKENS)], [f"Context: no baseline ({what})."]
    ratio = chars / gen_chars
    rows = [
        Row(f"tools/list characters ({tools} tools vs {gen_tools})", f"{chars}", f"{gen_chars}", f"{ratio:.3f}x",
            f"<= {TARGET_RATIO}x", ratio <= TARGET_RATIO),
        Row("tools/list est. tokens (characters / 4)", f"{tokens:.0f}", f"{gen_tokens:.0f}", f"{ratio:.3f}x",
            f"<= {TARGET_TOKENS}", tokens <= TARGET_TOKENS),
    ]
    notes = [f"Context: compact JSON of ListToolsResult (model_dump_json(by_alias=True, exclude_none=True)); "
             f"baseline: {what} over {SPEC.name if SPEC else '-'}. Tokens are estimated as characters / 4, not "
             "counted by a tokenizer."]
    return rows, notes
