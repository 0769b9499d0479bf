"""The stores the gate and the tools share, defined once: the audit, rate limits, the ledger (approvals:
approvals.store).

Each store is one interface with two implementations: in this process (approvals.store.ApprovalStore,
audit.AuditLog, MemoryLimiter and MemoryLedger below) for one server, or in Redis (redis_store) when
SHEEPCRM_REDIS_URL is set, so that several replicas behind a balancer share one set of approvals,
one ordered audit, one set of counters and one ledger of what this server created. A shared store that
cannot be reached fails closed for writes (StoreUnavailable, with a message saying so) and open for rate
limits on reads.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from mcp.server.mcpserver import Context
from pydantic import BaseModel

from sheepcrm_mcp.server.audit import AuditEntry
from sheepcrm_mcp.server.errors import Refusal
from sheepcrm_mcp.server.registration import Registration

log = logging.getLogger("sheepcrm_mcp.stores")


class StoreUnavailable(Refusal):
    """The shared store did not answer: the write was refused before anything was sent to sheepCRM."""


class Audit(Protocol):
    """Every write attempt and outcome, once each, in order; a failure to record is raised, never swallowed."""

    async def record(self, entry: AuditEntry) -> str:
        """Append `entry`; returns its id."""
        ...

    async def entries(self, last: int | None = None) -> list[dict[str, Any]]: ...


class Limiter(Protocol):
    """Fixed-window counters per user and tool. hit() returns the seconds to wait, or 0 when allowed."""

    async def hit(self, user: str, tool: str, limit: int, window: float) -> float: ...


class MemoryLimiter:
    """Counters in this process (one server)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    async def hit(self, user: str, tool: str, limit: int, window: float) -> float:
        now = time.time()
        slot = math.floor(now / window)
        with self._lock:
            for key in [k for k in self._counts if k[2] < slot]:
                del self._counts[key]
            count = self._counts.get((user, tool, slot), 0) + 1
            self._counts[(user, tool, slot)] = count
        return 0.0 if count <= limit else (slot + 1) * window - now


class Ledger(Protocol):
    """What writes must remember across calls and replicas for a while (create_contact: which call created which
    record, and when, so a repeated call never creates twice and only a fresh creation may be deleted).
    Values are small JSON objects; each key expires after the `ttl` seconds it was written with."""

    async def claim(self, key: str, value: dict[str, Any], ttl: float) -> dict[str, Any] | None:
        """Write `value` only if `key` holds nothing: None when written, else what `key` already holds."""
        ...

    async def put(self, key: str, value: dict[str, Any], ttl: float) -> None: ...

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def forget(self, key: str) -> None: ...


class MemoryLedger:
    """The ledger in this process (one server)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> dict[str, Any] | None:
        for old in [k for k, (until, _) in self._items.items() if until <= now]:
            del self._items[old]
        found = self._items.get(key)
        return dict(found[1]) if found else None

    async def claim(self, key: str, value: dict[str, Any], ttl: float) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            held = self._live(key, now)
            if held is None:
                self._items[key] = (now + ttl, dict(value))
            return held

    async def put(self, key: str, value: dict[str, Any], ttl: float) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + ttl, dict(value))

    async def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._live(key, time.monotonic())

    async def forget(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


def user_of(ctx: Context) -> str:
    """Who is calling, for rate limits: a digest of the credential the request carried, never the credential."""
    headers = ctx.headers or {}
    credential = headers.get("authorization") or ""
    return hashlib.sha256(credential.encode()).hexdigest()[:16] if credential else "anonymous"


class RateLimit:
    """At most `per_minute` calls of each tool per user, counted in `limiter`. A limiter that cannot be
    reached lets calls through (writes are refused anyway when the shared store is down; reads go on)."""

    def __init__(self, limiter: Limiter, per_minute: int) -> None:
        self.limiter, self.per_minute = limiter, per_minute

    async def check(self, tool: str, ctx: Context) -> None:
        if self.per_minute <= 0:
            return
        try:
            wait = await self.limiter.hit(user_of(ctx), tool, self.per_minute, 60.0)
        except StoreUnavailable as exc:
            log.warning("rate limit not checked: %s", exc)
            return
        if wait > 0:
            raise Refusal(
                f"Rate limit: at most {self.per_minute} {tool} calls a minute per user. Nothing was done; "
                f"try again in {math.ceil(wait)} s."
            )

    def wrap(self, reg: Registration) -> Registration:
        """The same read tool, checked first (write tools are checked by the gate before their preview)."""
        inner: Callable[[BaseModel, Context, dict[str, Any]], Awaitable[BaseModel]] = reg.call

        async def call(request: BaseModel, ctx: Context, extras: dict[str, Any]) -> BaseModel:
            await self.check(reg.name, ctx)
            return await inner(request, ctx, extras)

        reg.call = call
        return reg
