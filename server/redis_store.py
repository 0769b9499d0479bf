"""The shared stores in Redis (SHEEPCRM_REDIS_URL), for replicas behind a load balancer.

- Approvals: `approval:{id}` (what was previewed, immutable), `approval:{id}:status`,
  `approval:{id}:launch` (a digest of the one-time launch token, `used:<digest>` once a browser used it),
  `approval:{id}:opened` (when it was first used), `approval:{id}:undo` (after its write, the call that
  reverses it), `approval:{id}:browser` (a digest of the cookie of the
  browser that used it) and an `approval-match:{request}` pointer, all expiring with the approval. No secret
  is kept in clear: read access to Redis gives no launch link, cookie or form token (the form token is derived
  from the cookie). Every change (status, launch, browser) is one Lua script, so two replicas racing to spend
  one approval or one launch link get one success between them; a launch token used a second time marks the
  approval contested in the same script.
- Audit: one stream (`audit`), appended by a script that records each entry id once, so a retried
  append after a lost reply is not a second line. `sheepcrm-mcp audit tail` reads it; `audit archive`
  appends it to the JSONL file, the file's last line being the checkpoint (exactly once).
- Rate limits: fixed windows counted in Redis time, so replicas with skewed clocks agree.
- The ledger: `ledger:{key}` JSON values with their own expiry; a claim is one SET NX.

Every call has explicit socket timeouts, one quick retry (a restarted Redis drops pooled
connections) and an outer deadline; if Redis cannot be reached, StoreUnavailable says so.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import os
import secrets
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import anyio
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from sheepcrm_mcp.server.approvals.pending import (
    TTL_SECONDS,
    ApprovalRequest,
    Contest,
    Pending,
    Status,
    digest,
    refusal,
)
from sheepcrm_mcp.server.audit import AuditEntry, append_lines, entry_line
from sheepcrm_mcp.server.stores import StoreUnavailable
from sheepcrm_mcp.sheepcrm.loopback import TABLES, settled_owner

log = logging.getLogger("sheepcrm_mcp.redis")

PREFIX = "sheepcrm:"
DEADLINE = 2.0  # seconds any one store operation may take, retries included
KEEP = int(2 * TTL_SECONDS)  # an approval's keys outlive it, so that a late use is told "expired"

CREATE = """
local existing = redis.call('GET', KEYS[1])
if existing and redis.call('GET', ARGV[4] .. existing .. ':status') == 'pending' then return existing end
redis.call('SET', ARGV[4] .. ARGV[1], ARGV[2], 'EX', ARGV[3])
redis.call('SET', ARGV[4] .. ARGV[1] .. ':status', 'pending', 'EX', ARGV[3])
redis.call('SET', ARGV[4] .. ARGV[1] .. ':launch', '', 'EX', ARGV[3])
redis.call('SET', ARGV[4] .. ARGV[1] .. ':opened', '0', 'EX', ARGV[3])
redis.call('SET', ARGV[4] .. ARGV[1] .. ':browser', ARGV[5], 'EX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return ARGV[1]
"""

DECIDE = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[4] then return 'browser' end
local status = redis.call('GET', KEYS[1])
if status == 'pending' then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
  if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
  return ARGV[1]
end
return status
"""

WITHDRAW = """
if redis.call('GET', KEYS[1]) == 'pending' then redis.call('SET', KEYS[1], 'withdrawn', 'KEEPTTL') end
return 1
"""

NEW_LAUNCH = """
if not redis.call('GET', KEYS[1]) then return false end
redis.call('SET', KEYS[2], ARGV[1], 'KEEPTTL')
redis.call('SET', KEYS[3], '0', 'PX', math.max(1, redis.call('PTTL', KEYS[1])))
return ARGV[1]
"""

# The first use binds the page to that browser; any later use of the same token is a contest: an approval not yet
# spent (pending or approved) becomes contested here, in the same script, so no decision or spend can slip between.
LAUNCH = """
local token = redis.call('GET', KEYS[1])
if not token or token == '' then return false end
if token == ARGV[1] then
  redis.call('SET', KEYS[1], 'used:' .. ARGV[1], 'KEEPTTL')
  redis.call('SET', KEYS[2], ARGV[2], 'KEEPTTL')
  redis.call('SET', KEYS[4], ARGV[3], 'PX', math.max(1, redis.call('PTTL', KEYS[1])))
  return {'cookie'}
end
if token ~= 'used:' .. ARGV[1] then return false end
local status = redis.call('GET', KEYS[3]) or 'unknown'
if status == 'pending' or status == 'approved' then redis.call('SET', KEYS[3], 'contested', 'KEEPTTL') end
return {'contest', status}
"""

SPEND = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local status = redis.call('GET', ARGV[1] .. id .. ':status')
if status == 'approved' then
  redis.call('SET', ARGV[1] .. id .. ':status', 'used', 'KEEPTTL')
  return {id, status}
end
if status == 'rejected' then
  redis.call('DEL', KEYS[1])
  return {id, status}
end
if status == 'contested' then
  redis.call('SET', ARGV[1] .. id .. ':status', 'cancelled', 'KEEPTTL')
  return {id, status}
end
return false
"""

APPEND = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', 86400) then
  return redis.call('XADD', KEYS[1], '*', 'entry', ARGV[1])
end
return false
"""

HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local slot = math.floor(now / window)
local key = KEYS[1] .. ':' .. slot
local n = redis.call('INCR', key)
if n == 1 then redis.call('PEXPIRE', key, window) end
return {n, (slot + 1) * window - now}
"""


def where(url: str) -> str:
    """host:port of a Redis URL, without its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


class _Owned:
    """A connection to Redis that counts only while the socket at its other end is this user's, checked on every new
    connection before anything (the password included) is sent on it: another local account that binds a loopback
    Redis port while Redis is down (or a Unix socket path) would otherwise be asked for, and answer, approvals."""

    _writer: Any

    async def _check_owner(self) -> None:
        sock = self._writer.transport.get_extra_info("socket")
        if sock is None or (not os.path.exists(TABLES[0]) and getattr(sock, "family", None) != socket.AF_UNIX):
            return  # no socket to look at, or no /proc: see sheepcrm/loopback.py
        if getattr(sock, "family", None) != socket.AF_UNIX and not this_machine(str(sock.getpeername()[0])):
            return  # a Redis elsewhere: its password and TLS identify it (docs/DEPLOY.md)
        if getattr(sock, "family", None) == socket.AF_UNIX:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            owner: int | None = struct.unpack("3i", creds)[1]
        else:
            owner = await settled_owner(sock)
        if owner != os.getuid():
            self._writer.close()
            who = "whose owner could not be read" if owner is None else f"of another local account (uid {owner})"
            log.error("refused the shared store at %s: its socket is %s", getattr(self, "host", "?"), who)
            raise OSError(f"the Redis socket is {who}, not this user's; nothing was sent to it")


class OwnedConnection(_Owned, aredis.Connection):
    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]
        await self._check_owner()


class OwnedSSLConnection(_Owned, aredis.SSLConnection):
    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]
        await self._check_owner()


class OwnedUnixConnection(_Owned, aredis.UnixDomainSocketConnection):
    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]
        await self._check_owner()


@functools.lru_cache(maxsize=256)
def this_machine(address: str) -> bool:
    """Whether an IP address is this machine's: any loopback address (all of 127.0.0.0/8, ::1), the unspecified one
    (0.0.0.0 and :: reach this machine), or an address of one of its interfaces (one a socket can be bound to here).
    Any local account can listen there, so a Redis at such an address counts only while its socket is this user's."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True  # not an address: checked, to be safe
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    ip = mapped or ip
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(ip), 0))  # only an address of this machine can be bound (EADDRNOTAVAIL otherwise)
    except OSError:
        return False
    return True


def owned_connection(url: str) -> type[aredis.connection.AbstractConnection]:
    """The connection class that checks who serves a Redis on this machine before anything is sent on a new
    connection: a Unix socket always; a TCP connection whenever the address it reached is this machine's
    (this_machine: any loopback or unspecified address, or one of the host's own, whatever name the URL gave).
    A Redis elsewhere is identified by its password and TLS (docs/DEPLOY.md)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return OwnedUnixConnection
    return OwnedSSLConnection if parts.scheme == "rediss" else OwnedConnection


def connect(url: str) -> aredis.Redis:
    """One client per process: fail fast (0.5 s socket timeouts, one quick retry, 1 s to get a connection)."""
    owned = owned_connection(url)
    pool = aredis.BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=1.0,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        health_check_interval=30,
        decode_responses=True,
        client_name="sheepcrm-mcp",
    )
    pool.connection_class = owned  # set after from_url, whose URL scheme would choose the plain class over a keyword
    return aredis.Redis(connection_pool=pool)


class RedisStore:
    """The connection and the failure policy the three stores share."""

    def __init__(self, client: aredis.Redis, url: str) -> None:
        self.client = client
        self.where = where(url)

    @contextlib.contextmanager
    def _guard(self, doing: str, consequence: str = "nothing was written to sheepCRM") -> Iterator[None]:
        try:
            with anyio.fail_after(DEADLINE):
                yield
        except (RedisError, TimeoutError, OSError) as exc:
            log.warning("shared store at %s failed while %s: %s", self.where, doing, type(exc).__name__)
            raise StoreUnavailable(
                f"The shared store (Redis at {self.where}) is unreachable while {doing}, so {consequence}. "
                "Reads still work; try the write again once the store is back."
            ) from None


class RedisApprovals(RedisStore):
    """approvals.store.Approvals in Redis."""

    def __init__(self, client: aredis.Redis, url: str) -> None:
        super().__init__(client, url)
        self._create = client.register_script(CREATE)
        self._decide = client.register_script(DECIDE)
        self._spend = client.register_script(SPEND)
        self._new_launch = client.register_script(NEW_LAUNCH)
        self._launch = client.register_script(LAUNCH)
        self._withdraw = client.register_script(WITHDRAW)

    @staticmethod
    def _match(tool: str, args_digest: str, state_digest: str) -> str:
        return f"{PREFIX}approval-match:{digest([tool, args_digest, state_digest])}"

    async def create(self, request: ApprovalRequest) -> Pending:
        item = Pending.new(request)
        body = {
            k: getattr(item, k) for k in ("tool", "args_digest", "state_digest", "summary", "lines", "owner")
        }
        with self._guard("asking for an approval"):
            chosen = await self._create(
                keys=[self._match(item.tool, item.args_digest, item.state_digest)],
                args=[item.id, json.dumps({**body, "wall": item.wall}), KEEP, f"{PREFIX}approval:", item.browser],
            )
        if chosen == item.id:
            return item
        found = await self.get(str(chosen))
        return found or item

    async def get(self, approval_id: str) -> Pending | None:
        key = f"{PREFIX}approval:{approval_id}"
        with self._guard("reading an approval"):
            body, status, launch, browser, by, opened, undo = await self.client.mget(
                [key, f"{key}:status", f"{key}:launch", f"{key}:browser", f"{key}:by", f"{key}:opened", f"{key}:undo"]
            )
        if body is None or status is None or browser is None:
            return None
        data = json.loads(body)
        wall = float(data.pop("wall"))
        created = time.monotonic() - (time.time() - wall)
        return Pending(
            approval_id,
            **data,
            browser=str(browser),  # a digest of the browser cookie, never the cookie
            launch=str(launch) if launch else None,  # a digest of the launch token, never the token
            launched=float(opened or 0),
            undo=str(undo or ""),
            status=cast(Status, status),
            wall=wall,
            created=created,
            approver=json.loads(by) if by else None,
        )

    async def new_launch(self, approval_id: str) -> str:
        key = f"{PREFIX}approval:{approval_id}"
        token = secrets.token_urlsafe(24)
        with self._guard("preparing the approval page"):  # only a digest is stored: compared in Lua
            stored = await self._new_launch(keys=[key, f"{key}:launch", f"{key}:opened"], args=[digest(token)])
        if not stored:
            raise KeyError(approval_id)
        return token

    async def launch(self, approval_id: str, token: str) -> str | Contest | None:
        key = f"{PREFIX}approval:{approval_id}"
        if not token:
            return None
        cookie = secrets.token_urlsafe(24)
        with self._guard("opening the approval page"):  # the token compared, the cookie kept, as digests
            used = await self._launch(
                keys=[f"{key}:launch", f"{key}:browser", f"{key}:status", f"{key}:opened"],
                args=[digest(token), digest(cookie), repr(time.time())],
            )
        if not used:
            return None
        return cookie if used[0] == "cookie" else Contest(str(used[1]))

    async def decision(self, approval_id: str) -> Status | None:
        with self._guard("reading an approval"):
            status = await self.client.get(f"{PREFIX}approval:{approval_id}:status")
        return cast(Status, status) if status is not None else None

    async def applied(self, approval_id: str, undo: str) -> None:
        with self._guard("keeping how to undo a write", "its approval page cannot name the undo"):
            await self.client.set(f"{PREFIX}approval:{approval_id}:undo", undo, ex=KEEP)

    async def withdraw(self, approval_id: str) -> None:
        with self._guard("withdrawing an approval", "it stays pending until it expires"):
            await self._withdraw(keys=[f"{PREFIX}approval:{approval_id}:status"])

    async def decide(
        self, approval_id: str, browser: str | None, approve: bool, by: dict[str, Any] | None = None
    ) -> str:
        refused = refusal(await self.get(approval_id), None)  # unknown or expired; the browser is checked below
        if refused is not None:
            return refused
        key = f"{PREFIX}approval:{approval_id}"
        # In one script: the browser's cookie digest (a newer launch may have replaced it), then the decision and
        # who made it, only if it is the first.
        with self._guard("recording a decision"):
            status = await self._decide(
                keys=[f"{key}:status", f"{key}:by", f"{key}:browser"],
                args=[
                    "approved" if approve else "rejected",
                    json.dumps(by) if by is not None else "",
                    KEEP,
                    digest(browser) if browser is not None else "",
                ],
            )
        return str(status) if status else "unknown"

    async def consume(self, tool: str, args_digest: str, state_digest: str) -> Pending | str | None:
        with self._guard("checking for an approval"):
            spent = await self._spend(keys=[self._match(tool, args_digest, state_digest)], args=[f"{PREFIX}approval:"])
        if not spent:
            return None
        approval_id, status = spent
        if status in ("rejected", "contested"):
            return str(status)
        item = await self.get(str(approval_id))
        if item is None or item.expired():
            return "expired"
        return item


class RedisAudit(RedisStore):
    """stores.Audit in one Redis stream, shared by every replica."""

    STREAM = f"{PREFIX}audit"

    def __init__(self, client: aredis.Redis, url: str, secret: str | None, confirm_mode: str) -> None:
        super().__init__(client, url)
        self._secret, self._confirm_mode = secret, confirm_mode
        self._append = client.register_script(APPEND)

    async def record(self, entry: AuditEntry) -> str:
        entry_id = uuid.uuid4().hex[:12]
        line = entry_line(entry_id, self._secret, self._confirm_mode, entry)
        consequence = (
            "the change WAS made but its outcome is missing from the audit; check the record before repeating"
            if entry.outcome in ("succeeded", "partial", "unknown")
            else "nothing was written to sheepCRM"
        )
        with self._guard("recording the write in the audit", consequence):
            await self._append(keys=[self.STREAM, f"{PREFIX}audit-seen:{entry_id}"], args=[line])
        return entry_id

    @staticmethod
    def _entry(stream_id: str, fields: dict[str, str]) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(fields["entry"])
        entry["seq"] = stream_id
        return entry

    async def entries(self, last: int | None = None) -> list[dict[str, Any]]:
        rows: Any
        with self._guard("reading the audit"):
            if last:
                rows = await self.client.xrevrange(self.STREAM, count=last)
                rows = rows[::-1]
            else:
                rows = await self.client.xrange(self.STREAM)
        return [self._entry(i, f) for i, f in rows]

    async def follow(self, after: str = "$") -> AsyncIterator[dict[str, Any]]:
        """New entries as they are appended (for `audit tail --follow`)."""
        while True:
            found: Any
            with self._guard("reading the audit"):
                found = await self.client.xread({self.STREAM: after}, block=1000, count=100)
            streams = found.items() if isinstance(found, dict) else (found or [])  # RESP3 answers a map
            for _, rows in streams:
                for stream_id, fields in rows:
                    after = stream_id
                    yield self._entry(stream_id, fields)

    async def archive(self, path: Path) -> int:
        """Append entries not yet in the JSONL file at `path` (its last `seq` is the checkpoint); run one at
        a time per file. Returns how many lines were added."""
        last = "0"
        if path.exists():
            with path.open("rb+") as fh:  # a torn last line (a crash mid-write) is cut off first
                data = fh.read()
                keep = data.rfind(b"\n") + 1
                if keep != len(data):
                    fh.truncate(keep)
            lines = data[:keep].splitlines()
            if lines:
                last = json.loads(lines[-1]).get("seq", "0")
        added = 0
        while True:
            rows: Any
            with self._guard("reading the audit"):
                rows = await self.client.xrange(self.STREAM, min=f"({last}", count=500)
            if not rows:
                break
            append_lines(path, [json.dumps(self._entry(i, f), ensure_ascii=True) for i, f in rows])
            last = rows[-1][0]
            added += len(rows)
        return added


class RedisLimiter(RedisStore):
    """stores.Limiter in Redis."""

    def __init__(self, client: aredis.Redis, url: str) -> None:
        super().__init__(client, url)
        self._hit = client.register_script(HIT)

    async def hit(self, user: str, tool: str, limit: int, window: float) -> float:
        with self._guard("counting the call for its rate limit"):
            count, wait_ms = await self._hit(
                keys=[f"{PREFIX}rate:{digest([user, tool])[:24]}"], args=[int(window * 1000)]
            )
        return 0.0 if int(count) <= limit else int(wait_ms) / 1000


class RedisLedger(RedisStore):
    """stores.Ledger in Redis, shared by every replica."""

    @staticmethod
    def _key(key: str) -> str:
        return f"{PREFIX}ledger:{key}"

    async def claim(self, key: str, value: dict[str, Any], ttl: float) -> dict[str, Any] | None:
        with self._guard("remembering a write"):
            if await self.client.set(self._key(key), json.dumps(value), nx=True, px=max(1, int(ttl * 1000))):
                return None
            held = await self.client.get(self._key(key))
        return json.loads(held) if held else {}

    async def put(self, key: str, value: dict[str, Any], ttl: float) -> None:
        with self._guard("remembering a write", "the write's outcome may not be remembered by other replicas"):
            await self.client.set(self._key(key), json.dumps(value), px=max(1, int(ttl * 1000)))

    async def get(self, key: str) -> dict[str, Any] | None:
        with self._guard("reading what this server wrote"):
            held = await self.client.get(self._key(key))
        return json.loads(held) if held else None

    async def forget(self, key: str) -> None:
        with self._guard("forgetting a write", "it is still remembered until it expires"):
            await self.client.delete(self._key(key))


async def check_redis(url: str, public_url: str) -> list[tuple[bool, str]]:
    """doctor's replica checks: Redis answers (named by host and port only: the URL may hold a password) and the
    approval page has a public address."""
    parts = urlsplit(url)
    where = f"{parts.hostname or '?'}:{parts.port or 6379}"
    lines: list[tuple[bool, str]] = []
    client = connect(url)
    try:
        info = await client.info("server")
        lines.append((True, f"Redis at {where} answers (version {info.get('redis_version', '?')}): approvals, "
                            "audit and rate limits are shared by the replicas"))
    except (RedisError, TimeoutError, OSError) as exc:
        lines.append((False, f"Redis at {where} does not answer ({type(exc).__name__}) -> start it or fix "
                             "SHEEPCRM_REDIS_URL; writes are refused until it answers"))
    finally:
        await client.aclose()
    lines.append((bool(public_url), f"approval page at {public_url}/approve/<id>" if public_url else
                  "SHEEPCRM_PUBLIC_URL is not set -> name the address people reach the replicas at"))
    return lines
