"""One approval: what was asked (`ApprovalRequest`) and where it stands (`Pending`), the same for every store."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

TTL_SECONDS = 600.0
# contested: its launch link came a second time, from any browser, before the write: it can never be spent.
# cancelled: a contested approval whose caller has been told (the next request asks the person again).
# withdrawn: its call was refused or answered without the page (no browser could be opened for a person; the client
# declined or dropped its link; nobody answered in time): it can never be approved, so never spent by a later call.
Status = Literal["pending", "approved", "rejected", "used", "contested", "cancelled", "withdrawn"]


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class ApprovalRequest:
    """What the gate asks a person to approve: one tool call, on one previewed state, by one caller."""

    tool: str
    args_digest: str  # the tool's arguments and who asked (caller or session)
    state_digest: str  # the state the preview was read from
    summary: str
    lines: list[str]
    owner: dict[str, Any] | None = None  # hosted mode: who asked for the write (sub, email, profile, name)


@dataclass
class Pending:
    id: str
    tool: str
    args_digest: str
    state_digest: str
    summary: str
    lines: list[str]
    browser: str = ""  # a digest of the cookie of the one browser that opened the launch link ("" = none yet)
    launch: str | None = None  # a digest of the current one-time launch token (None when there is none)
    launched: float = 0.0  # when (wall clock) a browser first used the launch token (0: not yet)
    created: float = field(default_factory=time.monotonic)
    status: Status = "pending"
    wall: float = field(default_factory=time.time)  # when it was created, for stores shared between processes
    owner: dict[str, Any] | None = None  # hosted mode: who asked for the write (sub, email, profile)
    approver: dict[str, Any] | None = None  # hosted mode: who decided on the page (sub, email, name)
    undo: str = ""  # after its write: the call that reverses it, for a browser that opens its launch link late

    @classmethod
    def new(cls, request: ApprovalRequest) -> Pending:
        """A fresh approval for `request`, with its own id, CSRF token and browser cookie."""
        return cls(
            secrets.token_urlsafe(16),
            request.tool,
            request.args_digest,
            request.state_digest,
            request.summary,
            request.lines,
            owner=request.owner,
        )

    @property
    def opened(self) -> bool:
        """A browser holds this approval's page (its launch link was used): opening another would replace it."""
        return bool(self.browser)

    def held_by(self, cookie: str) -> bool:
        """Whether `cookie` is the one browser cookie this approval's page answers (compared as digests)."""
        return bool(cookie) and bool(self.browser) and secrets.compare_digest(digest(cookie), self.browser)

    def matches(self, tool: str, args_digest: str, state_digest: str) -> bool:
        return (self.tool, self.args_digest, self.state_digest) == (tool, args_digest, state_digest)

    def expired(self, now: float | None = None) -> bool:
        return (now or time.monotonic()) - self.created > TTL_SECONDS


@dataclass(frozen=True)
class Contest:
    """A launch token presented a second time, by any browser: two browsers hold this approval's launch link. The
    approval stood at `before`; one still pending or approved (not yet spent) is now contested and never spent."""

    before: str


def csrf_for(secret: str, approval_id: str) -> str:
    """The form token of one approval's page in one browser: derived from the secret that admitted that browser
    (its cookie), so no store keeps it and reading a store gives no one a form token."""
    return hmac.new(secret.encode(), f"csrf:{approval_id}".encode(), hashlib.sha256).hexdigest()


def refusal(item: Pending | None, browser: str | None) -> str | None:
    """Why a decision on `item` cannot be taken ('unknown', 'browser', 'expired'), or None: the same for every
    store. `browser` is the cookie the deciding browser presented (None: the page checked who decides itself)."""
    if item is None:
        return "unknown"
    if browser is not None and not item.held_by(browser):
        return "browser"
    if item.expired():
        return "expired"
    return None
