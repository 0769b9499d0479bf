"""The stores of one machine: rate limits (per user and tool, refusing with the wait, never across windows), the
ledger file (shared by this user's server processes, surviving a restart, refused when not private)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from sheepcrm_mcp.server.errors import Refusal
from sheepcrm_mcp.server.stores import FileLedger, MemoryLimiter, RateLimit, StoreUnavailable


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


async def test_the_ledger_file_claims_once_survives_a_restart_and_forgets_on_expiry(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.json"
    ledger, restarted = FileLedger(path), FileLedger(path)  # another process of this user, or the next one
    assert await ledger.claim("k", {"state": "sending"}, 60) is None
    assert await restarted.claim("k", {"state": "other"}, 60) == {"state": "sending"}  # the first claim holds
    await ledger.put("k", {"state": "created", "uri": "/demo/person/a/"}, 60)
    assert await restarted.get("k") == {"state": "created", "uri": "/demo/person/a/"}
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    await restarted.forget("k")
    assert await ledger.get("k") is None
    await ledger.put("short", {"at": 1}, 0.01)
    await anyio.sleep(0.02)
    assert await restarted.get("short") is None and await restarted.claim("short", {"at": 2}, 60) is None
    assert set(json.loads(path.read_text())) == {"short"}  # expired keys are dropped from the file


async def test_a_ledger_file_others_can_read_or_that_is_unreadable_refuses(tmp_path: Path) -> None:
    """Unknown is not "nothing was created": a ledger that cannot be trusted or read refuses the write."""
    path = tmp_path / "ledger.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    with pytest.raises(StoreUnavailable, match="readable only by you"):
        await FileLedger(path).get("k")
    os.chmod(path, 0o600)
    path.write_text('{"k": [9')
    with pytest.raises(StoreUnavailable, match="unreadable"):
        await FileLedger(path).claim("k", {"state": "sending"}, 60)
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(StoreUnavailable, match="could not be read"):
        await FileLedger(link).get("k")
