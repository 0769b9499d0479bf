"""sheepCRM's API, and nothing of MCP: one scoped client for one bucket.

`transport` sends requests (timeouts, retries for reads, the circuit breaker, the short read
cache); `errors` turns statuses into exceptions a person can act on; `scope` validates every
identifier before it becomes a path; the endpoint modules (`account`, `search`, `contacts`,
`events`, `tasks`, `segments`, `history`) group the calls by domain; `client` composes them into
`SheepReader` (reads only) and `SheepClient` (reads and writes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sheepcrm_mcp.sheepcrm.config import ClientConfig
from sheepcrm_mcp.sheepcrm.errors import (
    AuthError,
    BadRequestError,
    CircuitOpenError,
    ConflictError,
    InvalidRequest,
    NotFoundError,
    PermissionDenied,
    RateLimitedError,
    SheepError,
    UpstreamError,
    UpstreamTimeout,
)
from sheepcrm_mcp.sheepcrm.scope import RecordUri, ScopeError

if TYPE_CHECKING:
    from sheepcrm_mcp.sheepcrm.client import SheepClient, SheepReader


def __getattr__(name: str) -> Any:
    """The client, and every endpoint module behind it, loads when first named: the settings and the error
    classes need only the small modules above."""
    if name in ("SheepClient", "SheepReader"):
        from sheepcrm_mcp.sheepcrm import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AuthError",
    "BadRequestError",
    "CircuitOpenError",
    "ClientConfig",
    "ConflictError",
    "InvalidRequest",
    "NotFoundError",
    "PermissionDenied",
    "RateLimitedError",
    "RecordUri",
    "ScopeError",
    "SheepClient",
    "SheepError",
    "SheepReader",
    "UpstreamError",
    "UpstreamTimeout",
]
