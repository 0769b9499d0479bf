"""3. Context cost: tools/list as sent (compact JSON) for our full catalogue vs a server generated from the
OpenAPI spec by fastmcp's `FastMCP.from_openapi`."""

from __future__ import annotations

from typing import Any

from mcp import Client

from bench.common import SPEC, Row

TARGET_TOKENS = 3000
TARGET_RATIO = 0.1


def size(result: Any) -> int:
    return len(sent(result))


def sent(result: Any) -> str:
    return str(result.model_dump_json(by_alias=True, exclude_none=True))


def tokenizer() -> tuple[Any, str] | None:
    """A real tokenizer that works offline, when installed (`pip install -e '.[tokens]'`): the Claude vocabulary
    shipped inside the anthropic 0.34.2 wheel (anthropic/tokenizer.json, the SDK's legacy token counter, found
    without importing the SDK), read by HuggingFace `tokenizers`. It is the vocabulary of Claude models before
    Claude 3, whose own tokenizer is not published: a real count of a close vocabulary, not today's exact figure."""
    import importlib.util
    from pathlib import Path

    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    spec = importlib.util.find_spec("anthropic")
    vocab = Path(spec.origin).parent / "tokenizer.json" if spec is not None and spec.origin else None
    if vocab is None or not vocab.is_file():
        return None
    from importlib.metadata import version

    return Tokenizer.from_file(str(vocab)), f"anthropic {version('anthropic')}'s tokenizer.json"


async def ours(sb: Any) -> tuple[str, int]:
    from bench.overhead import bench_settings
    from sheepcrm_mcp.assembly import build_app

    built = build_app(bench_settings(sb))

    server = built.server
    try:
        async with Client(server, mode="legacy") as client:
            result = await client.list_tools()
    finally:
        await built.aclose()
    return sent(result), len(result.tools)


async def generated(sb: Any) -> tuple[str, int, str]:
    """(characters, tools, what) for the generated server; (0, 0, why) when it cannot be built, which fails the row:
    a comparison without its baseline never passes."""
    if SPEC is None:
        return "", 0, "SHEEPCRM_API_DOCS is not set (the generated server is built from sheepCRM's OpenAPI document)"
    if not SPEC.exists():
        return "", 0, f"{SPEC} is missing"
    try:
        import httpx2
        import yaml
        from fastmcp import Client as FastClient
        from fastmcp import FastMCP
    except ImportError:
        return "", 0, "the bench extra is not installed (pip install -e '.[bench]'; `bash dev.sh bench` does it)"
    spec = yaml.safe_load(SPEC.read_text())
    from importlib.metadata import version

    server = FastMCP.from_openapi(openapi_spec=spec, client=httpx2.AsyncClient(base_url=sb.url))
    async with FastClient(server) as client:
        result = await client.list_tools_mcp()
    return sent(result), len(result.tools), f"FastMCP.from_openapi (fastmcp {version('fastmcp')})"


async def run(sb: Any, quick: bool) -> tuple[list[Row], list[str]]:
    listed, tools = await ours(sb)
    gen_listed, gen_tools, what = await generated(sb)
    chars, gen_chars = len(listed), len(gen_listed)
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
    counted = tokenizer()
    if counted is not None:
        tok, vocab = counted
        real, gen_real = len(tok.encode(listed).ids), len(tok.encode(gen_listed).ids)
        rows.append(Row(f"tools/list tokens ({vocab})", f"{real}", f"{gen_real}", f"{real / gen_real:.3f}x",
                        "info", None))
    notes = [f"Context: compact JSON of ListToolsResult (model_dump_json(by_alias=True, exclude_none=True)); "
             f"baseline: {what} over {SPEC.name if SPEC else '-'}. Tokens are estimated as characters / 4"
             + (f"; and counted with {counted[1]} (the vocabulary of Claude models before Claude 3, read offline by "
                "HuggingFace tokenizers; Claude 3's own tokenizer is not published)." if counted is not None else
                ", not counted by a tokenizer (`pip install -e '.[tokens]'` adds a count).")]
    return rows, notes
