"""The stores the gate and the tools share, defined once: the audit, rate limits, the ledger (approvals:
approvals.store).

Each store is one interface with two implementations: on this machine (approvals.store.ApprovalStore,
audit.AuditLog, MemoryLimiter and FileLedger below) for one server, or in Redis (redis_store) when
SHEEPCRM_REDIS_URL is set, so that several replicas behind a balancer share one set of approvals,
one ordered audit, one set of counters and one ledger of what this server created. A shared store that
cannot be reached fails closed for writes (StoreUnavailable, with a message saying so) and open for rate
limits on reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from mcp.server.mcpserver import Context
from pydantic import BaseModel

from sheepcrm_mcp.server.errors import Refusal
from sheepcrm_mcp.server.files import check_private

if TYPE_CHECKING:
    from sheepcrm_mcp.server.audit import AuditEntry
    from sheepcrm_mcp.server.registration import Registration

if sys.platform != "win32":
    import fcntl

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


class FileLedger:
    """The ledger on one machine: a small JSON file of this user's next to the audit log (folder 0700, file 0600,
    never through a symlink), so what a create remembers survives a restart of the server, and every server
    process of this user shares it (a lock file serialises them: one claim wins). Expiry is by the wall clock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(folder / f"{self.path.name}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
        except OSError as exc:
            raise StoreUnavailable(f"The ledger {self.path} could not be opened ({exc.strerror}); nothing was "
                                   "sent to sheepCRM. Check the folder of SHEEPCRM_AUDIT_LOG.") from None
        try:
            with self._lock:
                if sys.platform != "win32":
                    fcntl.flock(fd, fcntl.LOCK_EX)
                yield
        finally:
            os.close(fd)

    def _load(self) -> dict[str, list[Any]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreUnavailable(f"The ledger {self.path} could not be read ({exc.strerror}); nothing was sent "
                                   f"to sheepCRM. Remove it if it is not your own file.") from None
        with os.fdopen(fd, "rb") as fh:
            try:
                check_private(fh.fileno(), self.path, "The ledger", "SHEEPCRM_AUDIT_LOG")
            except PermissionError as exc:
                raise StoreUnavailable(f"{exc}. Nothing was sent to sheepCRM.") from None
            raw = fh.read()
        try:
            items = json.loads(raw) if raw else {}
            if not isinstance(items, dict):
                raise ValueError("not an object")
        except ValueError:
            raise StoreUnavailable(f"The ledger {self.path} is unreadable; nothing was sent to sheepCRM. What it "
                                   "held is unknown: look in sheepCRM for contacts created recently, then "
                                   "remove the file.") from None
        return items

    def _save(self, items: dict[str, list[Any]]) -> None:
        temp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(json.dumps(items, ensure_ascii=True).encode("ascii"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StoreUnavailable(f"The ledger {self.path} could not be written ({exc.strerror}).") from None

    def _change(self, key: str, value: dict[str, Any] | None, ttl: float, only_new: bool) -> dict[str, Any] | None:
        """Under the lock: what `key` holds now (None: nothing live); then, unless `only_new` and something is
        held, `value` is written (None: forgotten). Expired keys are dropped on every change."""
        with self._locked():
            items = self._load()
            now = time.time()
            live = {k: v for k, v in items.items() if isinstance(v, list) and len(v) == 2 and v[0] > now}
            found = live.get(key)
            held = dict(found[1]) if found else None
            if not (only_new and held is not None):
                if value is None:
                    live.pop(key, None)
                else:
                    live[key] = [now + ttl, dict(value)]
            if live != items:
                self._save(live)
            return held

    async def claim(self, key: str, value: dict[str, Any], ttl: float) -> dict[str, Any] | None:
        return await anyio.to_thread.run_sync(self._change, key, value, ttl, True)

    async def put(self, key: str, value: dict[str, Any], ttl: float) -> None:
        await anyio.to_thread.run_sync(self._change, key, value, ttl, False)

    def _get(self, key: str) -> dict[str, Any] | None:
        with self._locked():
            found = self._load().get(key)
        return dict(found[1]) if isinstance(found, list) and len(found) == 2 and found[0] > time.time() else None

    async def get(self, key: str) -> dict[str, Any] | None:
        return await anyio.to_thread.run_sync(self._get, key)

    async def forget(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._change, key, None, 0.0, False)


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
