"""What each kind of caller gets: the tools, resources and prompts of a profile.

`staff` is the whole catalogue (as chosen by SHEEPCRM_TOOLSETS / SHEEPCRM_READ_ONLY), and is what
stdio and token mode serve. On a hosted server (SHEEPCRM_AUTH=oauth) the caller's roles pick one:
`helpdesk` is every read plus the writes named in SHEEPCRM_HELPDESK_WRITES (attendance and tasks by
default, no contact edits); `member` is self-service about the signed-in person only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sheepcrm_mcp.server.settings import ConfigError, Settings
from sheepcrm_mcp.tools.outline import INSTRUCTIONS

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from sheepcrm_mcp.server.specs import Deps, ToolSpec


@dataclass(frozen=True)
class Profile:
    name: str
    instructed: Callable[[], str]  # the server's instructions, read when a server is built for the profile
    tools: Callable[[Settings], list[ToolSpec]]
    install: Callable[[MCPServer, Deps, Settings, tuple[str, ...]], None]  # resources and prompts, of these toolsets

    @property
    def instructions(self) -> str:
        return self.instructed()


# The catalogue (every tool module) loads when the tools are built or a tool is first called, not at a start that
# lists them from the tool cache (assembly.build_app).


def _catalogue(settings: Settings) -> list[ToolSpec]:
    from sheepcrm_mcp.tools import catalogue

    return catalogue.select(settings.toolsets, settings.read_only)


def _helpdesk(settings: Settings) -> list[ToolSpec]:
    from sheepcrm_mcp.server.specs import ReadTool
    from sheepcrm_mcp.tools import catalogue

    writes = {t.name for t in catalogue.TOOLS if not isinstance(t, ReadTool)}
    unknown = sorted(set(settings.helpdesk_writes) - writes)
    if unknown:
        raise ConfigError(
            f"SHEEPCRM_HELPDESK_WRITES: {', '.join(unknown)} is not a write tool; "
            f"choose from {', '.join(sorted(writes))}"
        )
    return [t for t in _catalogue(settings) if isinstance(t, ReadTool) or t.name in settings.helpdesk_writes]


def _install_catalogue(server: MCPServer, deps: Deps, settings: Settings, chosen: tuple[str, ...]) -> None:
    from sheepcrm_mcp.tools import prompts, resources  # with the first request for resources or prompts

    resources.install(server, deps, chosen)
    prompts.install(server, chosen, settings.read_only)


# The member profile's module loads when a member's server is built (hosted mode), not at every start.


def _member_instructions() -> str:
    from sheepcrm_mcp.tools import self_service

    return self_service.INSTRUCTIONS


def _member_tools(settings: Settings) -> list[ToolSpec]:
    from sheepcrm_mcp.tools import self_service

    return list(self_service.TOOLS)


def _install_member(server: MCPServer, deps: Deps, settings: Settings, chosen: tuple[str, ...]) -> None:
    from sheepcrm_mcp.tools import self_service

    self_service.install(server, deps)


STAFF = Profile("staff", lambda: INSTRUCTIONS, _catalogue, _install_catalogue)
HELPDESK = Profile("helpdesk", lambda: INSTRUCTIONS, _helpdesk, _install_catalogue)
MEMBER = Profile("member", _member_instructions, _member_tools, _install_member)
PROFILES: dict[str, Profile] = {p.name: p for p in (STAFF, HELPDESK, MEMBER)}
