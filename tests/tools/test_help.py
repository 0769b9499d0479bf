"""search_help end to end: an answer in a shape it cannot read is said to be unreadable, and a page length is
never given as a total."""

from __future__ import annotations

from typing import Any

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.tools import help
from sheepcrm_mcp.tools.catalogue import select
from sheepcrm_mcp.tools.help import SearchHelpInput, search_help
from sheepcrm_mcp.tools.prompts import helpdesk_answer
from tests.helpers import CANARY_KEY, MODES, Readers, answer, answer_body, error_text, read, scripted


async def test_a_help_answer_in_another_shape_is_could_not_read(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, variant="other-wrappers") as sb:
        result = await answer(connect, sb, "search_help", {"query": "refund booking"})
    text = error_text(result)
    assert "Could not read sheepCRM's answer to the help search" in text and "hits" in text, text


async def test_the_help_search_gives_no_total(shared_sandbox: SandboxServer, connect: Any) -> None:
    result = await answer(connect, shared_sandbox, "search_help", {"query": "event", "limit": 2})
    body = result.structured_content
    assert len(body["articles"]) == 2 and "total" not in body, body



@pytest.mark.parametrize("mode", MODES)
async def test_search_help(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    refund = store.get_record("help", store.demo_facts()["refund_help_uid"])
    assert refund is not None
    body = await read(readers, "search_help", {"query": "refund booking"}, mode=mode)
    assert body["articles"][0]["title"] == refund.display_value
    assert "text" not in body["articles"][0]
    full = await read(readers, "search_help", {"query": "refund booking", "detail": "full"}, mode=mode
    )
    assert full["articles"][0]["text"] == refund.data["text"]


async def test_help_search_tolerates_a_bare_list_and_says_whose_help_it_is() -> None:
    deps = scripted({"/search/v2/demo/help": [{"title": "Refunds", "url": "https://help.example/r"}]})
    body = await search_help(SearchHelpInput(query="refund"), deps)
    assert [(a.title, a.link) for a in body.articles] == [("Refunds", "https://help.example/r")]
    tool = next(t for t in select(("help",), True) if t.name == "search_help")
    assert "sheepCRM's own help" in tool.description and "not the organisation's member FAQ" in tool.description
    assert "not our organisation's member FAQ" in helpdesk_answer("How do I refund?")


async def test_help_says_when_matches_are_weak(shared_sandbox: SandboxServer, connect: Any) -> None:
    body = await answer_body(connect, shared_sandbox, "search_help", {"query": "change the currency to euros"})
    assert body["articles"] and "Weak matches" in body["note"]
    title = shared_sandbox.store.help_articles()[0].data["title"]
    good = await answer_body(connect, shared_sandbox, "search_help", {"query": title})
    assert "Weak" not in (good.get("note") or "")


# ---- the pure mappers ----------------------------------------------------------------------


def test_weak_names_the_words_no_article_mentions() -> None:
    articles = [help.HelpArticle(title="Refunds for bookings", link="https://help.example/r")]
    assert help._weak("refund booking", articles) is None
    note = help._weak("gift aid declaration export", articles)
    assert note is not None and "gift" in note and "declaration" in note


async def test_full_help_text_under_a_key_not_known_is_could_not_read(connect: Any) -> None:
    """detail='full' with the article text under another key (drift: `text` respelled): the note says the text
    could not be read, naming the keys sheepCRM sent, never an article silently without text."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=text:/search/v2/demo/help"]) as sb:
        body = await answer_body(connect, sb, "search_help", {"query": "refund booking", "detail": "full"})
    assert body["articles"] and all(a.get("text") is None for a in body["articles"]), body
    assert "could not be read" in body["note"] and "keys: " in body["note"], body
