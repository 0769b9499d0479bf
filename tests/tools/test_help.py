"""search_help end to end: an answer in a shape it cannot read is said to be unreadable, and a page length is
never given as a total."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, answer, error_text


async def test_a_help_answer_in_another_shape_is_could_not_read(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, variant="other-wrappers") as sb:
        result = await answer(connect, sb, "search_help", {"query": "refund booking"})
    text = error_text(result)
    assert "Could not read sheepCRM's answer to the help search" in text and "hits" in text, text


async def test_the_help_search_gives_no_total(shared_sandbox: SandboxServer, connect: Any) -> None:
    result = await answer(connect, shared_sandbox, "search_help", {"query": "event", "limit": 2})
    body = result.structured_content
    assert len(body["articles"]) == 2 and "total" not in body, body
