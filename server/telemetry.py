"""Seeing a running server: Prometheus metrics (SHEEPCRM_METRICS=1, served at /metrics) and OpenTelemetry traces
(SHEEPCRM_OTEL=1). Both are off by default.

`METRICS` is the one recorder. Until `enable_metrics()` its methods do nothing and prometheus_client is not
imported, so stdio never pays for it. Labels are tool names, profiles, outcomes, error classes and event names,
never anything about a person (no subject, email, uri, argument or address).

Spans come from opentelemetry-api, which the MCP SDK already loads (it wraps every request in a span). Without a
tracer provider they cost nothing; `enable_tracing()` installs the SDK's provider with the OTLP exporter
(configured by the standard OTEL_* variables). Span attributes follow the same rule as labels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

log = logging.getLogger("sheepcrm_mcp.telemetry")
tracer = trace.get_tracer("sheepcrm-mcp")

APPROVAL_EVENTS = ("asked", "approved", "rejected", "expired")  # approvals on the page (see CountedApprovals)
UPSTREAM_EVENTS = ("rate_limited", "retry")
SIGN_IN_EVENTS = ("started", "completed", "refused")


class Metrics:
    """The server's counters. No-ops until `enable` (then prometheus_client objects on a registry of their own)."""

    def __init__(self) -> None:
        self.on = False
        self.registry: Any = None

    def enable(self) -> None:
        if self.on:
            return
        try:
            import prometheus_client as prom
        except ImportError as exc:
            from sheepcrm_mcp.server.settings import ConfigError

            raise ConfigError("SHEEPCRM_METRICS=1 needs prometheus-client: pip install 'sheepcrm-mcp[metrics]'") \
                from exc
        registry = prom.CollectorRegistry()
        self._calls = prom.Counter("sheepcrm_mcp_tool_calls", "Tool calls answered, by tool, profile and outcome",
                                   ["tool", "profile", "outcome"], registry=registry)
        self._seconds = prom.Histogram("sheepcrm_mcp_tool_call_seconds", "Time to answer a tool call",
                                       ["tool", "profile"], registry=registry,
                                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self._errors = prom.Counter("sheepcrm_mcp_tool_errors", "Tool calls answered with an error, by kind",
                                    ["tool", "kind"], registry=registry)
        self._upstream = prom.Counter("sheepcrm_mcp_upstream_events",
                                      "sheepCRM answers 429 (rate_limited) and reads tried again (retry)",
                                      ["event"], registry=registry)
        self._approvals = prom.Counter("sheepcrm_mcp_approvals", "Approvals asked, approved, rejected, expired",
                                       ["event"], registry=registry)
        self._sign_ins = prom.Counter("sheepcrm_mcp_sign_ins", "Approval page sign-ins started, completed, refused",
                                      ["event"], registry=registry)
        self._store = prom.Counter("sheepcrm_mcp_store_failures", "Shared store (Redis) operations that failed",
                                   ["operation"], registry=registry)
        from sheepcrm_mcp.sheepcrm import transport

        transport.OBSERVERS.append(self.upstream)
        for event in UPSTREAM_EVENTS:  # every series exists from the start, so rate() and absent() work at once
            self._upstream.labels(event)
        for event in APPROVAL_EVENTS:
            self._approvals.labels(event)
        for event in SIGN_IN_EVENTS:
            self._sign_ins.labels(event)
        self.registry, self.on = registry, True

    def call(self, tool: str, profile: str, seconds: float, outcome: str) -> None:
        """outcome: ok, error, or input_required (a round that asks the person; the call comes again)."""
        if self.on:
            self._calls.labels(tool, profile, outcome).inc()
            if outcome != "input_required":
                self._seconds.labels(tool, profile).observe(seconds)

    def error(self, tool: str, kind: str) -> None:
        if self.on:
            self._errors.labels(tool, kind).inc()

    def upstream(self, event: str) -> None:
        if self.on and event in UPSTREAM_EVENTS:
            self._upstream.labels(event).inc()

    def approval(self, event: str) -> None:
        if self.on and event in APPROVAL_EVENTS:
            self._approvals.labels(event).inc()

    def sign_in(self, event: str) -> None:
        if self.on and event in SIGN_IN_EVENTS:
            self._sign_ins.labels(event).inc()

    def store_failed(self, operation: str) -> None:
        if self.on:
            self._store.labels(operation).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


METRICS = Metrics()


class CallMetrics:
    """SDK middleware: each tools/call counted by tool and the caller's profile ("local" without one), timed. A
    name the server does not have is counted as "?" (a client cannot add label values)."""

    def __init__(self, tools: frozenset[str]) -> None:
        from sheepcrm_mcp.server.caller import current_caller  # not at import: errors.py imports this module

        self.tools = tools
        self.current_caller = current_caller

    async def __call__(self, ctx: ServerRequestContext[Any, Any],
                       call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[Any]]) -> Any:
        if ctx.method != "tools/call" or not METRICS.on:
            return await call_next(ctx)
        name = ctx.params.get("name") if ctx.params else None
        tool = name if isinstance(name, str) and name in self.tools else "?"
        caller = self.current_caller()
        profile = caller.profile if caller is not None else "local"
        kinds: list[str] = []
        started, outcome = time.perf_counter(), "error"
        token = _kinds.set(kinds)
        try:
            result = await call_next(ctx)
            outcome = _outcome(result)
            return result
        finally:
            _kinds.reset(token)
            METRICS.call(tool, profile, time.perf_counter() - started, outcome)
            if outcome == "error":  # refused before the tool ran (unknown or malformed arguments): the SDK's
                METRICS.error(tool, kinds[-1] if kinds else "invalid_arguments")


# The error kinds noted while one tool call is answered (a list, so the handler's context can add to it).
_kinds: ContextVar[list[str] | None] = ContextVar("sheepcrm_error_kinds", default=None)


def error_kind(kind: str) -> None:
    """Note why the tool call being answered failed: an exception's class name, never its text."""
    kinds = _kinds.get()
    if kinds is not None:
        kinds.append(kind)


def _outcome(result: Any) -> str:
    def get(name: str) -> Any:
        return result.get(name) if isinstance(result, dict) else getattr(result, name, None)

    if "input_required" in (get("result_type"), get("resultType")):
        return "input_required"
    return "error" if True in (get("isError"), get("is_error")) else "ok"


class CountedAudit:
    """The audit store, counting the lines it failed to write."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def record(self, *args: Any, **kwargs: Any) -> str:
        try:
            entry: str = await self.inner.record(*args, **kwargs)
        except Exception:
            METRICS.store_failed("audit")
            raise
        return entry


class CountedApprovals:
    """The approvals store, counting approvals asked for (new ones, not the same request asked again), decided
    (approved, rejected) and found expired (when a decision or the repeated call comes too late)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        before = time.time()
        try:
            item = await self.inner.create(*args, **kwargs)
        except Exception:
            METRICS.store_failed("approvals")
            raise
        if item.wall >= before:  # made by this call: an earlier request's approval is older than the call
            METRICS.approval("asked")
        return item

    async def decide(self, approval_id: str, *args: Any, **kwargs: Any) -> Any:
        before = await self.inner.decision(approval_id)
        verdict = await self.inner.decide(approval_id, *args, **kwargs)
        if before == "pending" and verdict in ("approved", "rejected", "expired"):
            METRICS.approval(str(verdict))
        return verdict

    async def consume(self, *args: Any, **kwargs: Any) -> Any:
        used = await self.inner.consume(*args, **kwargs)
        if used == "expired":
            METRICS.approval("expired")
        return used


def _is_error(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("isError") is True
    return getattr(result, "is_error", False) is True


def enable_tracing() -> None:
    """Install OpenTelemetry's SDK tracer provider with the OTLP exporter (SHEEPCRM_OTEL=1)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        from sheepcrm_mcp.server.settings import ConfigError

        raise ConfigError("SHEEPCRM_OTEL=1 needs the OpenTelemetry SDK: pip install 'sheepcrm-mcp[otel]'") from exc
    provider = TracerProvider(resource=Resource.create({"service.name": "sheepcrm-mcp"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.warning("traces are exported by OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)")
