"""get_record_history end to end: an empty window is not "never changed"."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import answer


async def test_an_empty_window_suggests_a_longer_one(shared_sandbox: SandboxServer, connect: Any) -> None:
    jane = shared_sandbox.store.demo_facts()["jane_uri"]  # she moved house 20 days ago
    result = await answer(connect, shared_sandbox, "get_record_history", {"uri": jane, "since_days": 1})
    body = result.structured_content
    assert body["entries"] == [] and "since_days=4" in body["note"], body
