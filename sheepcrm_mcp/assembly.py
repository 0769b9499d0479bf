"""Assembles the MCP server from the catalogue: toolsets, read-only mode, the gate, resources, prompts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.request_state import RequestStateSecurity

from sheepcrm_mcp.server import __version__, logs
from sheepcrm_mcp.server.approvals.store import Approvals, ApprovalStore
from sheepcrm_mcp.server.audit import AuditLog
from sheepcrm_mcp.server.registration import (
    LazyTool,
    Listed,
    Registration,
    build_tools,
    read_listing,
    read_registration,
    tool_cache_file,
)
from sheepcrm_mcp.server.settings import ConfigError, Settings, trust_notes
from sheepcrm_mcp.server.specs import Deps, GatedWrites, ReadTool, ToolSpec, WriteDeps
from sheepcrm_mcp.server.stores import Audit, FileLedger, Ledger, Limiter, MemoryLimiter, RateLimit
from sheepcrm_mcp.sheepcrm import SheepClient
from sheepcrm_mcp.tools import apps
from sheepcrm_mcp.tools.outline import choose_toolsets
from sheepcrm_mcp.tools.profiles import STAFF, Profile

if TYPE_CHECKING:
    from mcp.server.mcpserver.tools import Tool

    from sheepcrm_mcp.server.approvals.page import ApprovalPage
    from sheepcrm_mcp.server.auth import OAuth
    from sheepcrm_mcp.server.gate import Gate


@dataclass
class App:
    """A built server and what it holds besides the SDK's state (for the CLI, transports, tests, benchmarks)."""

    server: MCPServer
    client: SheepClient
    settings: Settings
    wiring: Wiring  # the approval page and the gate, made when first needed
    audit: Audit
    shared: Any = None  # the Redis client when the stores are shared (SHEEPCRM_REDIS_URL)

    @property
    def gate(self) -> Gate:
        return self.wiring.gate

    @property
    def page(self) -> ApprovalPage:
        return self.wiring.page

    async def aclose(self) -> None:
        self.wiring.close()
        await self.client.aclose()
        if self.shared is not None:
            await self.shared.aclose()


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


@dataclass
class Stores:
    approvals: Approvals
    audit: Audit
    limiter: Limiter
    ledger: Ledger
    shared: Any = None


def open_stores(settings: Settings) -> Stores:
    """In this process, or in Redis when SHEEPCRM_REDIS_URL is set (replicas share them); counted for /metrics
    when SHEEPCRM_METRICS=1."""
    stores = _open_stores(settings)
    if settings.metrics:
        from sheepcrm_mcp.server.telemetry import METRICS, CountedApprovals, CountedAudit

        METRICS.enable()
        stores.approvals = cast("Approvals", CountedApprovals(stores.approvals))
        stores.audit = cast("Audit", CountedAudit(stores.audit))
    return stores


def _open_stores(settings: Settings) -> Stores:
    secret = settings.api_key.get_secret_value() if settings.api_key else None
    if settings.redis_url is None:
        return Stores(
            ApprovalStore(),
            AuditLog(settings.audit_log, secret, settings.confirm),
            MemoryLimiter(),
            FileLedger(settings.audit_log.parent / "ledger.json"),
        )
    from sheepcrm_mcp.server import redis_store

    url = settings.redis_url.get_secret_value()
    client = redis_store.connect(url)
    return Stores(
        redis_store.RedisApprovals(client, url),
        redis_store.RedisAudit(client, url, secret, settings.confirm),
        redis_store.RedisLimiter(client, url),
        redis_store.RedisLedger(client, url),
        client,
    )


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
    sheep = client or SheepClient(settings.client_config())
    reader = sheep.reader  # read tools, resources and prompts get a client that cannot write
    seen = settings.without_secrets()  # and settings without the keys, so they cannot build another client

    def read_deps(ctx: Context) -> Deps:
        return Deps(client=reader, settings=seen, ctx=ctx)

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
    stores = stores or open_stores(settings)
    ledger = stores.ledger
    limit = RateLimit(stores.limiter, settings.rate_limit) if settings.rate_limit else None

    def wired(offered: frozenset[str]) -> tuple[Wiring, Callable[[ToolSpec], Registration]]:
        def write_deps(ctx: Context) -> WriteDeps:
            return WriteDeps(client=reader, settings=seen, ctx=ctx, writes=GatedWrites(sheep), ledger=ledger,
                             offered=offered)

        wiring = Wiring(settings, stores, page, limit, offered)  # offered: an undo is offered only among them

        def registration(spec: ToolSpec) -> Registration:
            if isinstance(spec, ReadTool):
                reg = read_registration(spec, read_deps)
                return limit.wrap(reg) if limit else reg
            return wiring.gate.registration(spec, write_deps)

        return wiring, registration

    tools: list[Tool]
    if listing is not None:
        names = [t.name for t in ahead]
        wiring, registration = wired(frozenset(names))

        @functools.cache
        def specs() -> dict[str, ToolSpec]:
            return {spec.name: spec for spec in profile.tools(settings)}  # the catalogue loads here

        def make(name: str) -> Registration:
            spec = specs().get(name)  # chosen again from the catalogue itself: the cache only listed it
            if spec is None:
                raise ConfigError(f"{name} is not among this server's tools")
            return registration(spec)

        tools = [
            LazyTool.ahead(t.name, t.description, t.annotations, p[0], p[1], functools.partial(make, t.name))
            for t, p in zip(ahead, published, strict=True) if p is not None
        ]
    else:
        specs_now = profile.tools(settings)
        names = [spec.name for spec in specs_now]
        wiring, registration = wired(frozenset(names))
        registrations = [registration(spec) for spec in specs_now]
        tools = build_tools(registrations, cache, _catalogue_listing(registration) if profile is STAFF else None)
    ui = apps.for_tools(names)  # MCP Apps for the tools this caller gets (none: no extension)
    server: MCPServer = MCPServer(
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
    profile.install(server, Deps(client=reader, settings=seen), seen, chosen)
    return App(server, sheep, settings, wiring, stores.audit, stores.shared)


def _catalogue_listing(
    registration: Callable[[ToolSpec], Registration],
) -> tuple[tuple[str, ...], list[Listed]]:
    """Every tool of the catalogue as the tool cache lists it for the next start (whatever these settings chose)."""
    from sheepcrm_mcp.tools import catalogue

    return catalogue.TOOLSETS, [
        Listed.of(registration(spec), spec.toolset, not isinstance(spec, ReadTool)) for spec in catalogue.TOOLS
    ]
