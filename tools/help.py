"""search_help: sheepCRM's own help articles (how to use sheepCRM), for the organisation's staff."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field

from sheepcrm_mcp.server.paging import fit
from sheepcrm_mcp.server.specs import Deps, Input, Output, ReadTool, ToolSpec
from sheepcrm_mcp.tools.common import Detail, ListOutput, listed, text


class SearchHelpInput(Input):
    query: Annotated[str, Field(min_length=2, max_length=200, description="The question in a few words.")]
    limit: Annotated[int, Field(ge=1, le=20)] = 5
    detail: Detail = "concise"


class HelpArticle(Output):
    title: str
    link: str | None = Field(None, description="Give this link to the person asking.")
    snippet: str | None = None
    text: str | None = Field(None, description="Full text; only with detail='full'.")


class SearchHelpOutput(ListOutput):
    articles: list[HelpArticle]


# EVIDENCE.md (help search): include_text adds the text under keys no document names; `text` is the one read. An
# article without it shows no text: its text is not known, not empty.
TEXT_KEYS = ("text",)


def _text_of(article: dict[str, Any]) -> str | None:
    return next((t for k in TEXT_KEYS if (t := text(article.get(k)))), None)


async def search_help(req: SearchHelpInput, deps: Deps) -> SearchHelpOutput:
    full = req.detail == "full"
    data = await deps.client.search_help(req.query, limit=req.limit, include_text=full)
    # No response schema is documented (EVIDENCE.md: {docs, q, results: [{link, title}]}): results, articles, a bare
    # list or one article; every field optional. Any other shape is "could not read", never "no article".
    found = listed(data, "the help search", "results", "articles", single=("title", "link", "url"))
    articles = [
        HelpArticle(
            title=text(a.get("title")) or text(a.get("display_value")) or "(untitled)",
            link=text(a.get("link")) or text(a.get("url")),
            snippet=text(a.get("snippet")) or text(a.get("summary")),
            text=_text_of(a) if full else None,
        )
        for a in found
    ][: req.limit]
    note = None
    if full and (blind := [a for a in found[: req.limit] if not any(k in a for k in TEXT_KEYS)]):
        keys = sorted({str(k) for a in blind for k in a})[:12]
        note = (f"The text of {len(blind)} article(s) could not be read: sheepCRM's answer holds none of "
                f"{', '.join(TEXT_KEYS)} (keys: {', '.join(keys) or 'none'}). "
                "Give the link instead.")
    keep = fit(articles)
    if keep < len(articles):
        cut = f"Cut after {keep} articles to stay short; ask for fewer with limit or use detail='concise'."
        note = " ".join(filter(None, [note, cut]))
        articles = articles[:keep]
    if articles and (weak := _weak(req.query, articles)):
        note = " ".join(filter(None, [note, weak]))
    if not articles:
        note = "No sheepCRM help article matches; try other words (for example 'refund booking')."
    # The help search has no paging and no total: how many articles there are in all is not known.
    return SearchHelpOutput(articles=articles, note=note)


STOP = frozenset("the and for with how can does what when where why who our your".split())


def _weak(query: str, articles: list[HelpArticle]) -> str | None:
    """A note when no article mentions most of the question's words: the matches may not answer it."""
    words = [w for w in re.findall(r"[a-z0-9]+", query.lower()) if len(w) > 2 and w not in STOP]
    if not words:
        return None

    def covered(a: HelpArticle) -> set[str]:
        seen = f"{a.title} {a.snippet or ''} {a.text or ''}".lower()
        return {w for w in words if w[:5] in seen}

    best = max((covered(a) for a in articles), key=len)
    if len(best) * 2 > len(words):
        return None
    missing = [w for w in words if w not in best]
    return (
        f"Weak matches: no article mentions {', '.join(missing)}; these may not answer the question. Say so "
        "rather than guess, or try other words."
    )


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="search_help",
        toolset="help",
        description="sheepCRM's own help articles (how staff use sheepCRM), not the organisation's member FAQ: "
        "title, link, snippet (full: text).",
        input=SearchHelpInput,
        output=SearchHelpOutput,
        handler=search_help,
        about=(
            "sheepCRM's own help articles (how staff use sheepCRM, not your member FAQ): title, link, snippet; "
            "full text on request; says when matches are weak"
        ),
    ),
]
