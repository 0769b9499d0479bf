"""get_contact end to end, through the one HTTP client: a wait sheepCRM asks for is honoured, never cut short."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, answer, error_text


async def test_a_longer_wait_than_the_client_may_take_is_not_retried_early(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, faults=["429=30:1.0:/api/v1/demo/person/"]) as sb:
        jane = sb.store.demo_facts()["jane_uri"]
        result = await answer(connect, sb, "get_contact", {"uri": jane}, retry_budget=10.0)
        asked = [r for r in sb.request_log if r.path == f"/api/v1{jane}"]
    text = error_text(result)
    assert "wait 30s" in text and len(asked) == 1, (text, len(asked))
