"""The in-process stores: rate limits (per user and tool, refusing with the wait, never across windows), the ledger."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from sheepcrm_mcp.server.errors import Refusal
from sheepcrm_mcp.server.stores import MemoryLedger, MemoryLimiter, RateLimit


class Ctx:
    def __init__(self, auth: str | None) -> None:
        self.headers: dict[str, str] | None = {"authorization": auth} if auth else None


async def test_memory_limiter_counts_per_user_and_tool() -> None:
    limiter = MemoryLimiter()
    waits = [await limiter.hit("u1", "get_contact", 3, 60.0) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0] and 0 < waits[3] <= 60
    assert await limiter.hit("u1", "search_contacts", 3, 60.0) == 0.0
    assert await limiter.hit("u2", "get_contact", 3, 60.0) == 0.0


async def test_rate_limit_refuses_with_the_wait_and_keys_on_the_credential() -> None:
    limit = RateLimit(MemoryLimiter(), 2)
    alice: Any = Ctx("Bearer alice-token")
    for _ in range(2):
        await limit.check("get_contact", alice)
    with pytest.raises(Refusal, match=r"at most 2 get_contact calls a minute per user.*try again in \d+ s"):
        await limit.check("get_contact", alice)
    await limit.check("get_contact", Ctx("Bearer bob-token"))  # another user is not held up
    await RateLimit(MemoryLimiter(), 0).check("get_contact", alice)  # 0 = off


def test_an_expected_failure_in_a_task_group_keeps_its_message() -> None:
    """Concurrent reads fail as an ExceptionGroup; the one error path still gives the model the actual reason."""
    from mcp.server.mcpserver.exceptions import ToolError

    from sheepcrm_mcp.server.errors import answering

    with pytest.raises(ToolError, match=r"^tickets of event e1: sheepCRM failed"):
        with answering("list_events"):
            raise ExceptionGroup("reads", [Refusal("tickets of event e1: sheepCRM failed (HTTP 500).")])
    with pytest.raises(ToolError, match="failed unexpectedly"):
        with answering("list_events"):
            raise ExceptionGroup("reads", [KeyError("bug")])


async def test_memory_ledger_claims_once_and_forgets_on_expiry() -> None:
    ledger = MemoryLedger()
    assert await ledger.claim("k", {"state": "sending"}, 60) is None
    assert await ledger.claim("k", {"state": "other"}, 60) == {"state": "sending"}  # the first claim holds
    await ledger.put("k", {"state": "created", "uri": "/demo/person/a/"}, 60)
    assert await ledger.get("k") == {"state": "created", "uri": "/demo/person/a/"}
    await ledger.forget("k")
    assert await ledger.get("k") is None
    await ledger.put("short", {"at": 1}, 0.01)
    await anyio.sleep(0.02)
    assert await ledger.get("short") is None and await ledger.claim("short", {"at": 2}, 60) is None
