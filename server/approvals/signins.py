"""Where the approval page keeps its sign-ins in progress and its page sessions: in this process, or in the Redis
the replicas share (SHEEPCRM_REDIS_URL), so that any replica serves any step of a sign-in and a restart loses
nothing.

Only digests of secrets are kept: a sign-in under the SHA-256 of its `state`, a page session under the SHA-256 of
its cookie, the browser's own cookie as its SHA-256. The PKCE verifier and the nonce are not kept at all: they
are derived from the state with the page's key (HMAC), which every replica holds and the store does not. A sign-in
is taken once (atomically); when its state comes back a second time it is marked contested and the session it
gave, if any, is withdrawn. Everything expires: a sign-in after LOGIN_TTL, a session after SESSION_TTL.

Starting a sign-in needs no credential, so the sign-ins in progress are capped: PENDING_PER_APPROVAL per approval
(a new one drops the oldest) and PENDING_PER_CLIENT per client address (past it a new one is refused until one
is taken or expires), so repeated starts cannot fill the store.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

CONTESTED = "-"  # a spent sign-in that came back a second time: it gives no session
PENDING_PER_APPROVAL = 5  # sign-ins in progress kept per approval: a sixth drops the oldest
PENDING_PER_CLIENT = 20  # and per client address: a 21st is refused


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class SignInRecord:
    """A sign-in in progress, as stored: which approval, when it began (wall clock), which cookie of the browser
    that began it holds its secret, and that secret's digest."""

    approval: str
    started: float
    cookie: str
    browser: str  # sha256 of the browser's secret
    client: str = ""  # sha256 of the address the start came from


@dataclass(frozen=True)
class SessionRecord:
    """Who signed in on the page, for which approval, until when (wall clock)."""

    approval: str
    sub: str
    email: str | None
    name: str | None
    roles: tuple[str, ...]
    until: float


class SignIns(Protocol):
    async def begin(self, state: str, record: SignInRecord, ttl: float) -> bool:
        """Keep the sign-in (dropping its approval's oldest past PENDING_PER_APPROVAL); False, keeping nothing,
        when its client already has PENDING_PER_CLIENT in progress."""
        ...

    async def take(self, state: str, ttl: float) -> SignInRecord | str | None:
        """The sign-in, once; afterwards the state is spent. A spent state coming back: it is marked contested
        and the digest of the session it gave ("" if none yet) is returned. Unknown: None."""
        ...

    async def open_session(self, state: str, sid: str, record: SessionRecord, ttl: float) -> bool:
        """Give the sign-in its page session, unless its state was contested meanwhile."""
        ...

    async def session(self, sid: str) -> SessionRecord | None: ...

    async def end(self, sid: str) -> None: ...


class MemorySignIns:
    """In this process (one server, no Redis)."""

    def __init__(self) -> None:
        self._sign_ins: dict[str, tuple[float, SignInRecord]] = {}  # digest(state) -> (expires, record)
        self._spent: dict[str, tuple[float, str]] = {}  # digest(state) -> (expires, digest(sid) | "" | CONTESTED)
        self._sessions: dict[str, SessionRecord] = {}  # digest(sid) -> record

    def _purge(self) -> None:
        now = time.time()
        for table in (self._sign_ins, self._spent):
            for key in [k for k, (until, _) in table.items() if until < now]:
                del table[key]
        for key in [k for k, s in self._sessions.items() if s.until < now]:
            del self._sessions[key]

    async def begin(self, state: str, record: SignInRecord, ttl: float) -> bool:
        self._purge()
        if sum(r.client == record.client for _, r in self._sign_ins.values()) >= PENDING_PER_CLIENT:
            return False
        same = sorted((until, key) for key, (until, r) in self._sign_ins.items() if r.approval == record.approval)
        for _, key in same[: max(0, len(same) + 1 - PENDING_PER_APPROVAL)]:
            del self._sign_ins[key]
        self._sign_ins[digest(state)] = (time.time() + ttl, record)
        return True

    async def take(self, state: str, ttl: float) -> SignInRecord | str | None:
        key = digest(state)
        held = self._sign_ins.pop(key, None)
        if held is not None and held[0] >= time.time():
            self._spent[key] = (time.time() + ttl, "")
            return held[1]
        spent = self._spent.get(key)
        if spent is None:
            return None
        self._spent[key] = (spent[0], CONTESTED)
        if spent[1] not in ("", CONTESTED):
            self._sessions.pop(spent[1], None)
        return spent[1]

    async def open_session(self, state: str, sid: str, record: SessionRecord, ttl: float) -> bool:
        key = digest(state)
        spent = self._spent.get(key)
        if spent is None or spent[1] == CONTESTED:
            return False
        self._spent[key] = (spent[0], digest(sid))
        self._sessions[digest(sid)] = record
        return True

    async def session(self, sid: str) -> SessionRecord | None:
        held = self._sessions.get(digest(sid))
        if held is not None and held.until < time.time():
            self._sessions.pop(digest(sid), None)
            return None
        return held

    async def end(self, sid: str) -> None:
        self._sessions.pop(digest(sid), None)


PREFIX = "sheepcrm:signin:"

_BEGIN = """
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return 0 end
local over = redis.call('ZCARD', KEYS[2]) + 1 - tonumber(ARGV[4])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do redis.call('DEL', ARGV[7] .. old[i]) end
end
local ends = now + tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ends, ARGV[6])
redis.call('ZADD', KEYS[3], ends, ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
"""

_TAKE = """
local rec = redis.call('GET', KEYS[1])
if rec then
  redis.call('DEL', KEYS[1])
  local held = cjson.decode(rec)
  redis.call('ZREM', ARGV[3] .. 'pending:approval:' .. held['approval'], ARGV[4])
  redis.call('ZREM', ARGV[3] .. 'pending:client:' .. (held['client'] or ''), ARGV[4])
  redis.call('SET', KEYS[2], '', 'EX', ARGV[1])
  return {1, rec}
end
local spent = redis.call('GET', KEYS[2])
if spent then
  redis.call('SET', KEYS[2], ARGV[2], 'KEEPTTL')
  if spent ~= '' and spent ~= ARGV[2] then redis.call('DEL', ARGV[3] .. 'session:' .. spent) end
  return {2, spent}
end
return {0, ''}
"""

_OPEN = """
local spent = redis.call('GET', KEYS[1])
if not spent or spent == ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""


class RedisSignIns:
    """In the Redis the replicas share: every step is one atomic command or script."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._begin = client.register_script(_BEGIN)
        self._take = client.register_script(_TAKE)
        self._open = client.register_script(_OPEN)

    async def begin(self, state: str, record: SignInRecord, ttl: float) -> bool:
        key = digest(state)
        kept = await self._begin(
            keys=[f"{PREFIX}state:{key}", f"{PREFIX}pending:approval:{record.approval}",
                  f"{PREFIX}pending:client:{record.client}"],
            args=[json.dumps(asdict(record)), int(ttl), time.time(), PENDING_PER_APPROVAL, PENDING_PER_CLIENT, key,
                  f"{PREFIX}state:"],
        )
        return int(kept) == 1

    async def take(self, state: str, ttl: float) -> SignInRecord | str | None:
        key = digest(state)
        kind, body = await self._take(keys=[f"{PREFIX}state:{key}", f"{PREFIX}spent:{key}"],
                                      args=[int(ttl), CONTESTED, PREFIX, key])
        text = body.decode() if isinstance(body, bytes) else str(body)
        if int(kind) == 1:
            return SignInRecord(**json.loads(text))
        return text if int(kind) == 2 else None

    async def open_session(self, state: str, sid: str, record: SessionRecord, ttl: float) -> bool:
        data = asdict(record)
        opened = await self._open(keys=[f"{PREFIX}spent:{digest(state)}", f"{PREFIX}session:{digest(sid)}"],
                                  args=[digest(sid), json.dumps(data), max(1, int(ttl)), CONTESTED])
        return int(opened) == 1

    async def session(self, sid: str) -> SessionRecord | None:
        body = await self.client.get(f"{PREFIX}session:{digest(sid)}")
        if body is None:
            return None
        data = json.loads(body)
        record = SessionRecord(**{**data, "roles": tuple(data["roles"])})
        return record if record.until >= time.time() else None

    async def end(self, sid: str) -> None:
        await self.client.delete(f"{PREFIX}session:{digest(sid)}")
