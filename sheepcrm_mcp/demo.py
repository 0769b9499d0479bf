"""`sheepcrm-mcp demo`: a real MCP client drives the real server (stdio) against the embedded sandbox.

The sandbox runs in this process; the server is the installed `sheepcrm-mcp` command, started as a
subprocess over stdio exactly as a desktop client would start it. The transcript shows the questions,
the tool calls, the answers, and one gated write with its preview, a scripted approval and the undo.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.session import ClientRequestContext

BOLD, DIM, GREEN, CYAN, RESET = ("\033[1m", "\033[2m", "\033[32m", "\033[36m", "\033[0m")


def _style(on: bool) -> None:
    global BOLD, DIM, GREEN, CYAN, RESET
    if not on:
        BOLD = DIM = GREEN = CYAN = RESET = ""


def say(text: str = "") -> None:
    print(text, flush=True)


class Demo:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = 0

    async def call(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        started = time.perf_counter()
        result = await self.client.call_tool(name, args)
        ms = (time.perf_counter() - started) * 1000
        body = result.structured_content or {}
        size = len(json.dumps(body, separators=(",", ":")))
        shown = json.dumps(args, ensure_ascii=False)
        say(f"  {CYAN}-> {name}({shown}){RESET} {DIM}[{size} chars, {ms:.0f} ms]{RESET}")
        if result.is_error:
            text = result.content[0].text if result.content and isinstance(result.content[0], types.TextContent) else ""
            say(f"  {BOLD}error:{RESET} {text}")
            return {}
        return body


def question(text: str) -> None:
    say()
    say(f"{BOLD}Q: {text}{RESET}")


def answer(text: str) -> None:
    say(f"  {GREEN}A: {text}{RESET}")


async def script(client: Client, facts: dict[str, Any], audit_log: Path) -> None:
    d = Demo(client)
    tools = (await client.list_tools()).tools
    listing = (await client.list_tools()).model_dump_json(by_alias=True, exclude_none=True)
    info = client.server_info
    say(
        f"{BOLD}Connected to {info.name if info else '?'} {info.version if info else ''} over stdio "
        f"(protocol {client.protocol_version}){RESET}"
    )
    say(f"  {len(tools)} tools, tools/list = {len(listing)} characters (~{len(listing) // 4} tokens):")
    say("  " + ", ".join(t.name for t in tools))

    question(f"Is {facts['jane_email']} a member, and until when?")
    m = await d.call("check_membership", {"email": facts["jane_email"]})
    answer(m.get("summary", "?"))

    question("Which events has Jane Austen booked, and did she come?")
    mine = await d.call("list_events", {"person": facts["jane_uri"]})
    for e in mine.get("events", []):
        answer(f"{str(e.get('start', ''))[:10]}  {e['title']}: {e.get('person_status', '?')}")

    question("Which events in the next 14 days still have free places?")
    fortnight = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 14 * 86400))
    events = await d.call("list_events", {"to_date": fortnight, "limit": 5})
    for e in events.get("events", []):
        answer(f"{e.get('title')} on {str(e.get('start', ''))[:10]}: {e.get('free', '?')} free")

    question("Who attended our last past event?")
    att = await d.call("list_attendees", {"uid": facts["past_event_uid"], "status": "attended", "limit": 10})
    names = ", ".join(a["name"] for a in att.get("attendees", []))
    answer(f"{att.get('event')}: {names} ({att.get('total')} attended; all statuses: {att.get('counts')})")

    question("What are my open tasks due this week?")
    week = time.time() + 7 * 86400
    due = time.strftime("%Y-%m-%d", time.gmtime(week))
    tasks = await d.call("list_tasks", {"scope": "mine", "status": "open", "due_before": due})
    for t in tasks.get("tasks", []):
        answer(f"{str(t.get('due', ''))[:10]}  {t['title']} - {t.get('about', '')}  (uid {t['uid']})")
    if not tasks.get("tasks"):
        answer("none")

    question("How do I refund a booking?")
    help_ = await d.call("search_help", {"query": "refund booking", "limit": 1})
    for a in help_.get("articles", []):
        answer(f"{a['title']}: {a.get('snippet', '')[:110]} ... {a.get('link')}")

    question("How many people are in the 'Current members' segment?")
    found = await d.call("find_segments", {"name": "current members", "limit": 1})
    for s in found.get("segments", []):
        count = await d.call("query_segment", {"uid": s["uid"], "mode": "count"})
        answer(f"{s['name']}: {count.get('count')} people")

    question("Mark my task 'Call about renewal' as done (a gated write)")
    result = await d.call("update_task", {"uid": facts["my_open_task_uid"], "action": "complete"})
    answer(f"status={result.get('status')}: {result.get('message')}")
    if result.get("undo"):
        answer(f"undo with: {result['undo']['tool']}({json.dumps(result['undo']['arguments'])})")
    lines = audit_log.read_text(encoding="utf-8").splitlines() if audit_log.exists() else []
    if lines:
        entry = json.loads(lines[-1])
        say(
            f"  {DIM}audit: {entry['time']} {entry['tool']} outcome={entry['outcome']} "
            f"channel={entry['channel']}{RESET}"
        )
    say()
    say(f"{BOLD}Done: {d.calls} tool calls through a real MCP client over stdio.{RESET}")


async def approve(
    context: ClientRequestContext, params: types.ElicitRequestParams
) -> types.ElicitResult | types.ErrorData:
    say(f"  {BOLD}confirmation shown to the person:{RESET}")
    for line in params.message.splitlines():
        say(f"  | {line}")
    say(f"  {GREEN}person (scripted): Apply this change = yes{RESET}")
    return types.ElicitResult(action="accept", content={"confirm": True})


def run_demo() -> int:
    from sheepcrm_mcp.sandbox.runner import SandboxServer

    _style(sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    exe = shutil.which("sheepcrm-mcp") or str(Path(sys.executable).with_name("sheepcrm-mcp"))
    with tempfile.TemporaryDirectory() as tmp, SandboxServer() as sb:
        audit_log = Path(tmp) / "audit.jsonl"
        say(f"{DIM}sandbox: sheepCRM-compatible API at {sb.url} (bucket '{sb.bucket}', seeded demo data){RESET}")
        env = {
            **os.environ,
            **sb.env(),
            "SHEEPCRM_AUDIT_LOG": str(audit_log),
        }
        params = StdioServerParameters(command=exe, args=[], env=env)

        async def main() -> None:
            async with Client(params, mode="legacy", elicitation_callback=approve, read_timeout_seconds=60) as client:
                await script(client, sb.store.demo_facts(), audit_log)

        anyio.run(main)
    return 0
