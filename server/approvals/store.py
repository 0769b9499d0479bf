"""Where approvals are kept: the `Approvals` interface, and `ApprovalStore`, its implementation in this process.

With replicas behind a balancer, `redis_store.RedisApprovals` keeps them in Redis instead, so any replica
spends an approval another one created.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any, Protocol

from sheepcrm_mcp.server.approvals.pending import (
    TTL_SECONDS,
    ApprovalRequest,
    Contest,
    Pending,
    Status,
    _token,
    digest,
    refusal,
)


class Approvals(Protocol):
    """Pending approvals: bound to tool, arguments and previewed state; single-use; they expire."""

    async def create(self, request: ApprovalRequest) -> Pending:
        """The pending approval for `request`: the one already waiting for the same request, or a new one."""
        ...

    async def get(self, approval_id: str) -> Pending | None: ...

    async def new_launch(self, approval_id: str) -> str:
        """A fresh one-time launch token (the previous one stops working)."""
        ...

    async def launch(self, approval_id: str, token: str) -> str | Contest | None:
        """Use a launch token. The first time: the new browser cookie value (the page is bound to that browser). Any
        later time, from any browser: a Contest, and in the same step an approval not yet spent (pending or approved)
        becomes contested, so it is never spent. None when the token is not (or no longer) this approval's."""
        ...

    async def decide(
        self, approval_id: str, browser: str | None, approve: bool, by: dict[str, Any] | None = None
    ) -> str:
        """Record a person's decision, if `browser` (the cookie it presented) is the one that holds the page (None:
        the page checked who decides); `by` names them on a hosted server (it is audited with the write). Returns
        the status, or 'unknown' / 'browser' / 'expired'."""
        ...

    async def decision(self, approval_id: str) -> Status | None: ...

    async def applied(self, approval_id: str, undo: str) -> None:
        """Keep, with an approval whose write was made, the call that reverses it (said to a later browser)."""
        ...

    async def withdraw(self, approval_id: str) -> None:
        """An approval still pending whose call ended without it: withdrawn, so no one approves it afterwards."""
        ...

    async def consume(self, tool: str, args_digest: str, state_digest: str) -> Pending | str | None:
        """Use an approval matching exactly this request and state, once: the approval, or 'expired' / 'rejected' /
        'contested' (said once: it is then cancelled) when the matching one is, or None."""
        ...


class ApprovalStore:
    """Approvals in this process (one server)."""

    def __init__(self) -> None:
        self._items: dict[str, Pending] = {}
        self._told: set[str] = set()  # rejected approvals whose rejection the caller has been told
        self._lock = threading.Lock()

    async def create(self, request: ApprovalRequest) -> Pending:
        with self._lock:
            self._purge()
            for item in self._items.values():  # the same request again: reuse its page
                if (
                    item.matches(request.tool, request.args_digest, request.state_digest)
                    and item.status == "pending"
                    and not item.expired()
                ):
                    return item
            item = Pending.new(request)
            self._items[item.id] = item
            return item

    async def get(self, approval_id: str) -> Pending | None:
        with self._lock:
            return self._items.get(approval_id)

    async def new_launch(self, approval_id: str) -> str:
        """A fresh one-time launch token for the approval (the previous one stops working)."""
        with self._lock:
            item = self._items[approval_id]
            token = _token()
            item.launch = digest(token)  # like the shared store: only a digest is kept
            item.launched = 0.0  # not yet used: its first browser is the one the page answers
            return token

    async def launch(self, approval_id: str, token: str) -> str | Contest | None:
        """Use a launch token: the browser cookie value the first time, a Contest after (see Approvals.launch)."""
        with self._lock:
            item = self._items.get(approval_id)
            if item is None or item.launch is None or not secrets.compare_digest(item.launch, digest(token)):
                return None
            if item.launched:  # the token again: two browsers hold the launch link
                before = item.status
                if before in ("pending", "approved"):
                    item.status = "contested"
                return Contest(before)
            item.launched = time.time()
            cookie = _token()  # a new launch hands the page to the newly opened browser only
            item.browser = digest(cookie)
            return cookie

    async def decide(
        self, approval_id: str, browser: str | None, approve: bool, by: dict[str, Any] | None = None
    ) -> str:
        """Record a person's decision (and, on a hosted server, who they are); returns what the page should say."""
        with self._lock:
            item = self._items.get(approval_id)
            refused = refusal(item, browser)
            if refused is not None or item is None:
                return refused or "unknown"
            if item.status != "pending":
                return item.status
            item.status = "approved" if approve else "rejected"
            item.approver = by
            return item.status

    async def decision(self, approval_id: str) -> Status | None:
        with self._lock:
            item = self._items.get(approval_id)
            return item.status if item is not None else None

    async def applied(self, approval_id: str, undo: str) -> None:
        with self._lock:
            if (item := self._items.get(approval_id)) is not None:
                item.undo = undo

    async def withdraw(self, approval_id: str) -> None:
        with self._lock:
            item = self._items.get(approval_id)
            if item is not None and item.status == "pending":
                item.status = "withdrawn"

    async def consume(self, tool: str, args_digest: str, state_digest: str) -> Pending | str | None:
        """Use an approval matching exactly this request and state, once (see Approvals.consume)."""
        with self._lock:
            found: Pending | str | None = None
            for item in self._items.values():
                if not item.matches(tool, args_digest, state_digest):
                    continue
                if item.status == "approved" and not item.expired():
                    item.status = "used"
                    return item
                if item.status == "approved":  # approved too late: report it once, then it is spent
                    item.status = "used"
                    found = "expired"
                elif item.status == "rejected" and item.id not in self._told:  # it stays rejected (the page says so)
                    self._told.add(item.id)
                    found = "rejected"
                elif item.status == "contested":  # said once; the next request asks the person again
                    item.status = "cancelled"
                    found = "contested"
            return found

    def _purge(self) -> None:
        now = time.monotonic()
        for key in [k for k, v in self._items.items() if now - v.created > 2 * TTL_SECONDS]:
            del self._items[key]
            self._told.discard(key)
