"""The catalogue: every tool, the toolsets they declare, the server's instructions, resources and prompts.

Adding a tool means adding it to its domain module's TOOLS; the toolset names come from the
tools themselves (each declares one), so there is no second list to keep in step.
"""

from __future__ import annotations

from sheepcrm_mcp.server.specs import ReadTool, ToolSpec
from sheepcrm_mcp.tools import contacts, events, help, history, membership, search, segments, tasks
from sheepcrm_mcp.tools.outline import INSTRUCTIONS, choose_toolsets

TOOLS: tuple[ToolSpec, ...] = (
    *search.TOOLS,
    *contacts.TOOLS,
    *membership.TOOLS,
    *events.TOOLS,
    *tasks.TOOLS,
    *help.TOOLS,
    *segments.TOOLS,
    *history.TOOLS,
)

TOOLSETS: tuple[str, ...] = tuple(dict.fromkeys(spec.toolset for spec in TOOLS))

__all__ = ["INSTRUCTIONS", "TOOLS", "TOOLSETS", "select", "toolsets"]


def toolsets(names: tuple[str, ...]) -> tuple[str, ...]:
    """The toolsets named in settings ('all' = every one); an unknown name is a configuration error."""
    return choose_toolsets(names, TOOLSETS)


def select(names: tuple[str, ...], read_only: bool) -> list[ToolSpec]:
    """What tools/list shows: the named toolsets, without writes in read-only mode."""
    chosen = toolsets(names)
    return [t for t in TOOLS if t.toolset in chosen and (isinstance(t, ReadTool) or not read_only)]
