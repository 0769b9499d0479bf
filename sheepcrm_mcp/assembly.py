"""Assembles the MCP server from the catalogue: toolsets, read-only mode, the gate, resources, prompts."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.request_state import RequestStateSecurity
from mcp_types import GetPromptResult, InputRequiredResult
from mcp_types import Prompt as MCPPrompt
from mcp_types import Resource as MCPResource
from mcp_types import ResourceTemplate as MCPResourceTemplate
from pydantic import AnyUrl

from sheepcrm_mcp.server import __version__, logs
from sheepcrm_mcp.server.settings import ConfigError, Settings, trust_notes
from sheepcrm_mcp.server.stores import Audit, FileLedger, Ledger, Limiter, MemoryLimiter, RateLimit
from sheepcrm_mcp.server.toolcache import LazyTool, Listed, read_listing, tool_cache_file
from sheepcrm_mcp.tools import apps
from sheepcrm_mcp.tools.outline import choose_toolsets
from sheepcrm_mcp.tools.profiles import STAFF, Profile

if TYPE_CHECKING:
    from mcp.server.mcpserver.tools import Tool

    from sheepcrm_mcp.server.approvals.page import ApprovalPage
    from sheepcrm_mcp.server.approvals.store import Approvals
    from sheepcrm_mcp.server.auth import OAuth
    from sheepcrm_mcp.server.gate import Gate
    from sheepcrm_mcp.server.registration import Registration
    from sheepcrm_mcp.server.specs import Deps, ToolSpec
    from sheepcrm_mcp.sheepcrm import ClientConfig, SheepClient, SheepReader


log = logging.getLogger("sheepcrm_mcp")


class Server(MCPServer[Any]):
    """The SDK's server, with the profile's resources and prompts installed by the first request that lists or reads
    either (`install`): a start answers initialize and tools/list without building them."""

    def __init__(self, install: Callable[[], None], **options: Any) -> None:
        super().__init__(**options)
        self._install: Callable[[], None] | None = install

    def _installed(self) -> None:
        if self._install is not None:
            try:
                self._install()
            except Exception:  # tried whole again by the next request (installed twice is still one)
                log.exception("installing the resources and prompts failed")
                raise RuntimeError("the resources and prompts could not be installed; see the server's log") from None
            self._install = None

    async def list_resources(self) -> list[MCPResource]:
        self._installed()
        return await super().list_resources()

    async def list_resource_templates(self) -> list[MCPResourceTemplate]:
        self._installed()
        return await super().list_resource_templates()

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        self._installed()
        return await super().read_resource(uri, context)

    async def list_prompts(self) -> list[MCPPrompt]:
        self._installed()
        return await super().list_prompts()

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        self._installed()
        return await super().get_prompt(name, arguments, context)


@dataclass
class App:
    """A built server and what it holds besides the SDK's state (for the CLI, transports, tests, benchmarks)."""

    server: MCPServer
    upstream: Upstream
    settings: Settings
    wiring: Wiring  # the approval page and the gate, made when first needed
    stores: Stores

    @property
    def client(self) -> SheepClient:
        return self.upstream.client

    @property
    def audit(self) -> Audit:
        return self.stores.audit

    @property
    def shared(self) -> Any:
        """The Redis client when the stores are shared (SHEEPCRM_REDIS_URL), else None."""
        return self.stores.shared

    @property
    def gate(self) -> Gate:
        return self.wiring.gate

    @property
    def page(self) -> ApprovalPage:
        return self.wiring.page

    async def aclose(self) -> None:
        self.wiring.close()
        await self.upstream.aclose()
        if self.shared is not None:
            await self.shared.aclose()


class Upstream:
    """The one sheepCRM client of a server, made (and the client's modules loaded) when first used: a start that
    lists the tools from the tool cache makes it with the first call. Its settings were checked at start."""

    def __init__(self, config: ClientConfig | None, client: SheepClient | None = None) -> None:
        self._config, self._client = config, client
        self._reader: SheepReader | None = None

    @property
    def client(self) -> SheepClient:
        if self._client is None:
            from sheepcrm_mcp import sheepcrm

            if self._config is None:
                raise RuntimeError("an Upstream is made with a client or the client's settings")
            self._client = sheepcrm.SheepClient(self._config)
        return self._client

    @property
    def reader(self) -> SheepReader:
        """What read tools, resources and prompts get: a view of the client that cannot write."""
        if self._reader is None:
            self._reader = self.client.reader
        return self._reader

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class Wiring:
    """The approval page and the gate of one server. A start that lists the tools from the tool cache makes (and
    imports) them with the first write tool's first call, or when a transport asks for the page; neither checks
    anything when made (settings are checked at start)."""

    def __init__(self, settings: Settings, stores: Stores, page: ApprovalPage | None, limit: RateLimit | None,
                 offered: frozenset[str]) -> None:
        self._settings, self._stores, self._page, self._limit, self._offered = settings, stores, page, limit, offered
        self._gate: Gate | None = None

    @property
    def page(self) -> ApprovalPage:
        if self._page is None:
            from sheepcrm_mcp.server.approvals.page import ApprovalPage, ServedPage, browser_opener

            settings, stores = self._settings, self._stores
            self._page = (
                ServedPage(
                    stores.approvals, settings.public_url, browser_opener(settings.browser), bucket=settings.bucket,
                    audit=stores.audit,
                )
                if settings.redis_url is not None
                else ApprovalPage(
                    stores.approvals, settings.approval_port, browser_opener(settings.browser),
                    bucket=settings.bucket, audit=stores.audit,
                )
            )
        return self._page

    @property
    def gate(self) -> Gate:
        if self._gate is None:
            from sheepcrm_mcp.server.gate import Gate

            self._gate = Gate(self._settings, self._stores.audit, self._stores.approvals, self.page, self._limit,
                              offered=self._offered)
        return self._gate

    def close(self) -> None:
        if self._page is not None:
            self._page.close()


class Stores:
    """The approvals, the audit, the rate limiter and the ledger of one server (hosted mode: of all its profiles'
    servers), in this process or in Redis when SHEEPCRM_REDIS_URL is set (replicas share them), counted for
    /metrics when SHEEPCRM_METRICS=1. Each is opened when first used: a start that lists the tools from the tool
    cache loads none of their modules."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._secret = settings.api_key.get_secret_value() if settings.api_key else None
        self._url = settings.redis_url.get_secret_value() if settings.redis_url else ""
        self.shared: Any = None  # the Redis client (it connects with its first command)
        if self._url:
            from sheepcrm_mcp.server import redis_store

            self.shared = redis_store.connect(self._url)
        if settings.metrics:
            from sheepcrm_mcp.server.telemetry import METRICS

            METRICS.enable()

    @functools.cached_property
    def approvals(self) -> Approvals:
        if self.shared is not None:
            from sheepcrm_mcp.server.redis_store import RedisApprovals

            found: Approvals = RedisApprovals(self.shared, self._url)
        else:
            from sheepcrm_mcp.server.approvals.store import ApprovalStore

            found = ApprovalStore()
        if self._settings.metrics:
            from sheepcrm_mcp.server.telemetry import CountedApprovals

            found = cast("Approvals", CountedApprovals(found))
        return found

    @functools.cached_property
    def audit(self) -> Audit:
        settings = self._settings
        if self.shared is not None:
            from sheepcrm_mcp.server.redis_store import RedisAudit

            found: Audit = RedisAudit(self.shared, self._url, self._secret, settings.confirm)
        else:
            from sheepcrm_mcp.server.audit import AuditLog

            found = AuditLog(settings.audit_log, self._secret, settings.confirm)
        if settings.metrics:
            from sheepcrm_mcp.server.telemetry import CountedAudit

            found = cast("Audit", CountedAudit(found))
        return found

    @functools.cached_property
    def limiter(self) -> Limiter:
        if self.shared is not None:
            from sheepcrm_mcp.server.redis_store import RedisLimiter

            return RedisLimiter(self.shared, self._url)
        return MemoryLimiter()

    @functools.cached_property
    def ledger(self) -> Ledger:
        if self.shared is not None:
            from sheepcrm_mcp.server.redis_store import RedisLedger

            return RedisLedger(self.shared, self._url)
        return FileLedger(self._settings.audit_log.parent / "ledger.json")


def _observers(settings: Settings, tools: list[str]) -> list[Any]:
    """SDK middleware counting tool calls for /metrics (SHEEPCRM_METRICS=1); none otherwise."""
    if not settings.metrics:
        return []
    from sheepcrm_mcp.server.telemetry import METRICS, CallMetrics

    METRICS.enable()
    return [CallMetrics(frozenset(tools))]


def build_app(
    settings: Settings,
    client: SheepClient | None = None,
    *,
    profile: Profile = STAFF,
    oauth: OAuth | None = None,
    stores: Stores | None = None,
    page: ApprovalPage | None = None,
    tool_cache: Path | None = None,
) -> App:
    """An MCP server bound to one bucket. The client is created here unless one is given.

    `profile` picks the tools, resources and prompts (stdio and token mode: staff, the whole catalogue);
    `oauth` makes it an OAuth resource server through the SDK's own auth settings (hosted mode), where the
    profiles' servers share one set of `stores` and one approval `page`. `tool_cache` is the file holding the
    published tool schemas between starts (registration.build_tools), by default in this account's cache folder.
    With the staff profile, a tool cache that lists the catalogue (written by an earlier start of the same code)
    lists the tools without loading the tool modules, the gate or the approval page: each tool is built, through
    the same gate, on its first call.
    """
    cache = tool_cache or tool_cache_file()
    listing = read_listing(cache) if profile is STAFF else None
    if listing is not None:
        chosen = choose_toolsets(settings.toolsets, listing.toolsets)  # an unknown toolset name fails here
        ahead = [t for t in listing.tools if t.toolset in chosen and not (t.write and settings.read_only)]
        published = [listing.published(t) for t in ahead]
        if any(p is None for p in published):  # a tool that earlier start did not build (other settings)
            listing = None
    if listing is None:
        from sheepcrm_mcp.tools import catalogue

        chosen = catalogue.toolsets(settings.toolsets)  # an unknown toolset name fails here, whatever the profile
    upstream = Upstream(None if client else settings.client_config(), client)  # no key or bucket fails here
    # Read tools, resources and prompts get a client that cannot write (upstream.reader), and settings without the
    # keys, so they cannot build another client.
    seen = settings.without_secrets()

    def install_deps() -> Deps:  # for the resources and prompts, installed with the first request for them
        from sheepcrm_mcp.server.specs import Deps

        return Deps(client=upstream.reader, settings=seen)

    for secret in settings.secret_values():  # scrubbed from every log line, result and audit line
        logs.add_secret(secret)
    if settings.redis_url is not None and not settings.public_url:
        raise ConfigError(
            "SHEEPCRM_PUBLIC_URL is not set: with SHEEPCRM_REDIS_URL the approval page is served by every replica; "
            "name the address people reach them at, e.g. https://mcp.example.org"
        )
    if settings.redis_url is not None and not settings.request_state_keys():
        raise ConfigError(
            "SHEEPCRM_REQUEST_STATE_KEY is not set: with SHEEPCRM_REDIS_URL a 2026-07-28 confirmation's next round may "
            "reach another replica, so every replica needs the same key to seal its request state; generate one with "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    stores = stores or Stores(settings)
    limit = RateLimit(stores.limiter, settings.rate_limit) if settings.rate_limit else None
    if listing is not None:
        names = [t.name for t in ahead]
    else:
        specs_now = profile.tools(settings)
        names = [spec.name for spec in specs_now]
    offered = frozenset(names)  # an undo is offered only among these tools
    wiring = Wiring(settings, stores, page, limit, offered)

    def registration(spec: ToolSpec) -> Registration:
        # The specs and the registration code load with the first tool built (a start from the tool cache: its
        # first call).
        from sheepcrm_mcp.server.registration import read_registration
        from sheepcrm_mcp.server.specs import Deps, GatedWrites, ReadTool, WriteDeps

        if isinstance(spec, ReadTool):
            reg = read_registration(spec, lambda ctx: Deps(client=upstream.reader, settings=seen, ctx=ctx))
            return limit.wrap(reg) if limit else reg
        return wiring.gate.registration(spec, lambda ctx: WriteDeps(
            client=upstream.reader, settings=seen, ctx=ctx, writes=GatedWrites(upstream.client), ledger=stores.ledger,
            offered=offered,
        ))

    tools: list[Tool]
    if listing is not None:

        @functools.cache
        def specs() -> dict[str, ToolSpec]:
            return {spec.name: spec for spec in profile.tools(settings)}  # the catalogue loads here

        def make(name: str) -> Tool:
            from sheepcrm_mcp.server.registration import build_tool

            spec = specs().get(name)  # chosen again from the catalogue itself: the cache only listed it
            if spec is None:
                raise ConfigError(f"{name} is not among this server's tools")
            return build_tool(registration(spec))

        tools = [
            LazyTool.ahead(t.name, t.description, t.annotations, p[0], p[1], functools.partial(make, t.name))
            for t, p in zip(ahead, published, strict=True) if p is not None
        ]
    else:
        from sheepcrm_mcp.server.registration import build_tools

        registrations = [registration(spec) for spec in specs_now]
        tools = build_tools(registrations, cache, _catalogue_listing(registration) if profile is STAFF else None)
    ui = apps.for_tools(names)  # MCP Apps for the tools this caller gets (none: no extension)
    server = Server(
        lambda: profile.install(server, install_deps(), seen, chosen),
        name="sheepcrm-mcp",
        title="sheepCRM",
        # Approvals off or the key sent elsewhere is said in the session's first answer (initialize), in-band.
        instructions="\n".join([*trust_notes(settings), profile.instructions]),
        version=__version__,
        tools=ui.stamp(tools) if ui else tools,
        extensions=[ui.extension] if ui else None,
        middleware=[*([ui.middleware] if ui else []), *_observers(settings, names)],
        token_verifier=oauth.verifier if oauth else None,
        auth=oauth.auth_settings() if oauth else None,
        # One key for every replica (SHEEPCRM_REQUEST_STATE_KEY), else one made for this process.
        request_state_security=RequestStateSecurity(keys=keys) if (keys := settings.request_state_keys()) else None,
    )
    return App(server, upstream, settings, wiring, stores)


def _catalogue_listing(
    registration: Callable[[ToolSpec], Registration],
) -> tuple[tuple[str, ...], list[Listed]]:
    """Every tool of the catalogue as the tool cache lists it for the next start (whatever these settings chose)."""
    from sheepcrm_mcp.server.specs import ReadTool
    from sheepcrm_mcp.tools import catalogue

    return catalogue.TOOLSETS, [
        Listed.of(registration(spec), spec.toolset, not isinstance(spec, ReadTool)) for spec in catalogue.TOOLS
    ]
