"""Assembles the MCP server from the catalogue: toolsets, read-only mode, the gate, resources, prompts."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.mcpserver import Context, MCPServer

from sheepcrm_mcp.server import __version__, logs
from sheepcrm_mcp.server.approvals import ApprovalPage, ApprovalStore
from sheepcrm_mcp.server.audit import AuditLog
from sheepcrm_mcp.server.auth import OAuth
from sheepcrm_mcp.server.gate import Gate
from sheepcrm_mcp.server.settings import Settings
from sheepcrm_mcp.server.toolkit import Deps, GatedWrites, ReadTool, WriteDeps, build_tool, read_registration
from sheepcrm_mcp.sheepcrm import SheepClient
from sheepcrm_mcp.tools import catalogue
from sheepcrm_mcp.tools.profiles import STAFF, Profile


@dataclass
class App:
    """A built server and what it holds besides the SDK's state (for the CLI, transports, tests, benchmarks)."""

    server: MCPServer
    client: SheepClient
    settings: Settings
    gate: Gate
    audit: AuditLog
    page: ApprovalPage

    async def aclose(self) -> None:
        self.page.close()
        await self.client.aclose()


def build_app(
    settings: Settings, client: SheepClient | None = None, *, profile: Profile = STAFF, oauth: OAuth | None = None
) -> App:
    """An MCP server bound to one bucket. The client is created here unless one is given.

    `profile` picks the tools, resources and prompts (stdio and token mode: staff, the whole catalogue);
    `oauth` makes it an OAuth resource server through the SDK's own auth settings (hosted mode).
    """
    catalogue.toolsets(settings.toolsets)  # an unknown toolset name fails here, whatever the profile
    specs = profile.tools(settings)
    sheep = client or SheepClient(settings.client_config())
    reader = sheep.reader  # read tools, resources and prompts get a client that cannot write

    def read_deps(ctx: Context) -> Deps:
        return Deps(client=reader, settings=settings, ctx=ctx)

    def write_deps(ctx: Context) -> WriteDeps:
        return WriteDeps(client=reader, settings=settings, ctx=ctx, writes=GatedWrites(sheep))

    for secret in (settings.api_key, settings.mcp_token):  # scrubbed from every log line, result and error
        logs.add_secret(secret.get_secret_value() if secret else None)
    audit = AuditLog(
        settings.audit_log, settings.api_key.get_secret_value() if settings.api_key else None, settings.confirm
    )
    page = ApprovalPage(ApprovalStore(), settings.approval_port)
    gate = Gate(settings, audit, page.store, page)
    registrations = [
        read_registration(spec, read_deps) if isinstance(spec, ReadTool) else gate.registration(spec, write_deps)
        for spec in specs
    ]
    server: MCPServer = MCPServer(
        name="sheepcrm-mcp",
        title="sheepCRM",
        instructions=profile.instructions,
        version=__version__,
        tools=[build_tool(r) for r in registrations],
        token_verifier=oauth.verifier if oauth else None,
        auth=oauth.auth_settings() if oauth else None,
    )
    profile.install(server, Deps(client=reader, settings=settings), settings)
    return App(server, sheep, settings, gate, audit, page)
