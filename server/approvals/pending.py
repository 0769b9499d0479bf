"""One approval: what was asked (`ApprovalRequest`) and where it stands (`Pending`), the same for every store."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

TTL_SECONDS = 600.0
Status = Literal["pending", "approved", "rejected", "used"]


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
    csrf: str = field(default_factory=_token)
    browser: str = field(default_factory=_token)  # the cookie of the one browser that opened the launch link
    launch: str | None = None  # the current one-time launch link token (None once used)
    created: float = field(default_factory=time.monotonic)
    status: Status = "pending"
    wall: float = field(default_factory=time.time)  # when it was created, for stores shared between processes
    owner: dict[str, Any] | None = None  # hosted mode: who asked for the write (sub, email, profile)
    approver: dict[str, Any] | None = None  # hosted mode: who decided on the page (sub, email, name)

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

    def matches(self, tool: str, args_digest: str, state_digest: str) -> bool:
        return (self.tool, self.args_digest, self.state_digest) == (tool, args_digest, state_digest)

    def expired(self, now: float | None = None) -> bool:
        return (now or time.monotonic()) - self.created > TTL_SECONDS


def refusal(item: Pending | None, csrf: str) -> str | None:
    """Why a decision on `item` cannot be taken ('unknown', 'csrf', 'expired'), or None: the same for every store."""
    if item is None:
        return "unknown"
    if not secrets.compare_digest(item.csrf, csrf):
        return "csrf"
    if item.expired():
        return "expired"
    return None
