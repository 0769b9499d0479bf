"""MCP Apps (the `io.modelcontextprotocol/ui` extension): screens a host renders beside three tools.

- a check-in board on `list_attendees` (marking people is a `set_attendance` call through the host, so it
  passes the gate like a model's call: preview, the person's approval, re-read, audit, undo);
- a membership card on `check_membership` and the member profile's `my_membership`;
- a renewals view on `search_contacts` (answers with `renewing_within_days`).

Each app is one self-contained HTML document (`tools/ui/`: its markup, script and style, with the shared
`common.js` and `common.css` inlined) served as a `ui://` resource through the SDK's `Apps` extension. It loads
nothing: the resource declares empty CSP domain lists, and the document carries its own policy that runs only
its own inline script and style (by hash). It shows only what tool answers say, puts every value on screen as
text, and holds no secret, token or address. An app is offered only with its tool (toolsets and profiles
choose), and the board's write controls only when `set_attendance` is registered.

A client that does not negotiate the extension sees none of it (`client_supports_apps`): tools/list without the
`ui` keys and resources/list without the `ui://` resources, so its tools, text and structured answers are
exactly as before.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID, Apps, ResourceCsp, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel

FLAT_KEY = "ui/resourceUri"  # the older flat key some hosts still read beside the nested ui.resourceUri
NO_DOMAINS = ResourceCsp(connect_domains=[], resource_domains=[], frame_domains=[], base_uri_domains=[])
# Each app's resource `_meta.ui`, as the SDK's Apps.add_html_resource writes it: no domains, a border preferred.
UI_META = {"csp": NO_DOMAINS.model_dump(by_alias=True, exclude_none=True), "prefersBorder": True}


@dataclass(frozen=True)
class UiApp:
    uri: str
    page: str  # tools/ui/<page>.html, .js and .css
    title: str
    description: str
    tools: tuple[str, ...]  # the tools that render it
    writes: tuple[str, ...] = ()  # write tools whose controls it shows when they are registered


APPS: tuple[UiApp, ...] = (
    UiApp(
        "ui://sheepcrm/check-in.html", "check-in", "Event check-in",
        "An event's attendees by status; mark several attended or no-show.",
        ("list_attendees",), writes=("set_attendance",),
    ),
    UiApp(
        "ui://sheepcrm/membership-card.html", "membership-card", "Membership card",
        "Membership status, plan, dates and days left.", ("check_membership", "my_membership"),
    ),
    UiApp(
        "ui://sheepcrm/renewals.html", "renewals", "Renewals",
        "Members whose membership ends soon, by week, with plan and email.", ("search_contacts",),
    ),
)


def _asset(name: str) -> str:
    return resources.files("sheepcrm_mcp.tools").joinpath("ui", name).read_text(encoding="utf-8")


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


@functools.cache
def document(app: UiApp, writes: bool) -> str:
    """The app's HTML: one inline style and one inline script, allowed by hash and nothing else."""
    style = _asset("common.css") + _asset(f"{app.page}.css")
    script = _asset("common.js") + _asset(f"{app.page}.js")
    policy = (
        f"default-src 'none'; script-src {_hash(script)}; style-src {_hash(style)}; img-src data:; "
        "connect-src 'none'; frame-src 'none'; base-uri 'none'; form-action 'none'"
    )
    return (
        f'<!doctype html>\n<html lang="en" data-writes="{"on" if writes else "off"}"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(app.title)}</title>\n<style>{style}</style></head>\n"
        f"<body>\n{_asset(f'{app.page}.html')}<script>{script}</script>\n</body></html>\n"
    )


@dataclass
class UiApps:
    """The apps for one server's tools: the extension to pass to MCPServer, and the tools' `_meta`."""

    extension: Apps
    bound: dict[str, str]  # tool name -> resource uri

    def stamp(self, tools: list[Tool]) -> list[Tool]:
        """Each bound tool points at its app, in the nested and the older flat form."""
        for tool in tools:
            if uri := self.bound.get(tool.name):
                tool.meta = {**(tool.meta or {}), "ui": {"resourceUri": uri}, FLAT_KEY: uri}
        return tools

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Clients that did not negotiate the extension list the tools and resources as if it did not exist."""
        result = await call_next(ctx)
        if ctx.method not in ("tools/list", "resources/list") or result is None or client_supports_apps(ctx):
            return result
        data = result.model_dump(by_alias=True, exclude_none=True) if isinstance(result, BaseModel) else dict(result)
        if ctx.method == "tools/list":
            data["tools"] = [_unbound(tool) for tool in data.get("tools", [])]
        else:
            data["resources"] = [r for r in data.get("resources", []) if not str(r.get("uri", "")).startswith("ui://")]
        return data


def _unbound(tool: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (tool.get("_meta") or {}).items() if k not in ("ui", FLAT_KEY)}
    return {k: v for k, v in tool.items() if k != "_meta"} | ({"_meta": meta} if meta else {})


def for_tools(names: Iterable[str]) -> UiApps | None:
    """The apps whose tools are registered (None when there are none). Each document is built when first read
    (`document` keeps it), not at start."""
    registered = set(names)
    extension = Apps()
    bound: dict[str, str] = {}
    for app in APPS:
        tools = [t for t in app.tools if t in registered]
        if not tools:
            continue
        writes = any(w in registered for w in app.writes)

        async def html(app: UiApp = app, writes: bool = writes) -> str:
            return document(app, writes)

        extension.add_resource(FunctionResource(
            uri=app.uri, name=app.page, title=app.title, description=app.description, mime_type=APP_MIME_TYPE,
            meta={"ui": UI_META}, fn=html,
        ))
        bound.update(dict.fromkeys(tools, app.uri))
    return UiApps(extension, bound) if bound else None


__all__ = ["APPS", "EXTENSION_ID", "FLAT_KEY", "UiApp", "UiApps", "document", "for_tools"]
