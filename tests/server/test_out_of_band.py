"""Only a person can approve a write: nothing a model sees (results, errors, logs, the audit log,
resources) is enough, whatever tools it has. Real client sessions in both protocol eras."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import mcp.client.session as client_session
import mcp_types as types
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import MODES, launch_link, person_decides, puts, task_status

URL = re.compile(r"https?://[^\s\"'<>\\]+")


class Forms(HTMLParser):
    """Every form on a page: its action, its fields, and each submit button's name and value."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}, "buttons": []})
        elif tag in ("input", "button") and self.forms:
            if a.get("type") == "submit" or tag == "button":
                self.forms[-1]["buttons"].append((a.get("name", ""), a.get("value", "")))
            elif a.get("name"):
                self.forms[-1]["fields"][a["name"]] = a.get("value", "")


class ModelWithABrowser:
    """A model that opens every address it was ever shown and submits every form there, same-origin."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.visited: list[str] = []
        self.submitted = 0

    def read(self, *texts: Any) -> None:
        for text in texts:
            self.seen.append(text if isinstance(text, str) else json.dumps(text, default=str))

    def urls(self) -> Iterator[str]:
        for text in self.seen:
            yield from URL.findall(text)

    def attack(self, extra: list[str]) -> None:
        with httpx.Client(follow_redirects=True, timeout=5) as browser:
            for url in [*dict.fromkeys(self.urls()), *extra]:
                self.visited.append(url)
                try:
                    page = browser.get(url)
                except httpx.HTTPError:
                    continue
                parser = Forms()
                parser.feed(page.text)
                origin = re.match(r"https?://[^/]+", str(page.url))
                assert origin
                for form in parser.forms:
                    target = str(page.url.join(form["action"])) if form["action"] else str(page.url)
                    for name, value in form["buttons"] or [("", "")]:
                        data = {**form["fields"], **({name: value} if name else {})}
                        browser.post(target, data=data, headers={"Origin": origin.group(0)})
                        self.submitted += 1


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def server_log() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


async def form_answered_by_the_model(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    """A headless client that claims elicitation and answers its own form."""
    return types.ElicitResult(action="accept", content={"confirm": True})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("setup", ["no-elicitation", "confirm=page"])
async def test_a_model_with_a_browser_cannot_approve_its_own_write(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, server_log: Everything, mode: str, setup: str
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    args = {"uid": uid, "action": "complete"}
    over: dict[str, Any] = {}
    if setup == "confirm=page":
        over = {"confirm": "page", "elicitation": form_answered_by_the_model}
    model = ModelWithABrowser()
    async with connect(sandbox, mode=mode, **over) as client:
        for _ in range(3):  # ask, attack with everything seen so far, repeat the call
            result = await client.call_tool("update_task", args)
            model.read(*[c.text for c in result.content if hasattr(c, "text")], result.structured_content or {})
            resources = await client.list_resources()
            model.read(*[str(r.uri) for r in resources.resources])
            model.read(*server_log.lines)
            audit = tmp_path / "audit.jsonl"
            model.read(audit.read_text() if audit.exists() else "")
            origin = re.match(r"http://127\.0\.0\.1:\d+", client.opened[-1]) if client.opened else None
            # It may even find the page's port by scanning loopback.
            model.attack([origin.group(0) + "/"] if origin else [])
            assert result.structured_content["status"] == "approval_required", result.content
        launched = list(client.opened)
    assert task_status(sandbox, uid) == "open" and puts(sandbox) == 0
    assert model.visited  # it did try something
    assert launched and not any(url in text for url in launched for text in model.seen)
    outcomes = [json.loads(line)["outcome"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert "succeeded" not in outcomes and "attempt" not in outcomes


@pytest.mark.parametrize("mode", MODES)
async def test_confirm_page_sends_every_write_out_of_band(sandbox: SandboxServer, connect: Any, mode: str) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    asked: list[str] = []

    async def model_form(context: Any, params: Any) -> types.ElicitResult:
        asked.append(str(params))
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with connect(sandbox, mode=mode, elicitation=model_form, confirm="page") as client:
        first = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        assert first.structured_content["status"] == "approval_required" and asked == []
        assert person_decides(client.opened[-1]).status_code == 200  # the person, in the opened browser
        second = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert second.structured_content["status"] == "applied" and puts(sandbox) == 1 and asked == []


async def test_url_mode_elicitation_shows_the_link_to_the_person(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client declaring only URL-mode elicitation: the client shows the link to the person (not the
    model); the call waits for the person's decision on the page and then writes once."""
    monkeypatch.setattr(client_session.types, "FormElicitationCapability", lambda: None)
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    shown: list[Any] = []

    async def person(context: Any, params: Any) -> types.ElicitResult:
        shown.append(params)
        assert params.mode == "url" and "requested_schema" not in params.model_dump(exclude_none=True)
        import anyio

        answer = await anyio.to_thread.run_sync(person_decides, params.url)
        assert answer.status_code == 200
        return types.ElicitResult(action="accept")

    async with connect(sandbox, mode="legacy", elicitation=person) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        assert client.opened == []  # the server did not need to open a browser itself
    assert len(shown) == 1 and shown[0].url.startswith("http://127.0.0.1:")
    assert shown[0].url not in json.dumps(result.structured_content) and not result.is_error
    assert result.structured_content["status"] == "applied" and puts(sandbox) == 1
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(e["outcome"], e["channel"]) for e in lines] == [("attempt", "url-elicitation"),
                                                            ("succeeded", "url-elicitation")]


@pytest.mark.parametrize("mode", MODES)
async def test_no_way_to_reach_a_person_fails_closed(sandbox: SandboxServer, connect: Any, mode: str) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, mode=mode) as client:
        client.runtime.page.opener = None  # a hosted server: it cannot open anyone's browser
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.is_error and "elicitation" in result.content[0].text  # type: ignore[union-attr]
    assert "http" not in result.content[0].text  # type: ignore[union-attr]
    assert task_status(sandbox, uid) == "open" and puts(sandbox) == 0


async def test_a_refused_call_leaves_no_approval_to_spend(sandbox: SandboxServer, connect: Any) -> None:
    """The call is refused (no browser could be shown the page), but whoever finds its launch link approves on the
    page afterwards, and the model repeats the call: the approval was withdrawn with the refusal, so nothing is
    approved and nothing is written."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    found: list[str] = []
    async with connect(sandbox, mode="legacy") as client:
        client.runtime.page.opener = lambda target: found.append(launch_link(target)) and False
        refused = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        assert refused.is_error and len(found) == 1
        with httpx.Client(follow_redirects=True, timeout=10) as attacker:  # with the link the refused call left
            page = attacker.get(found[0])
        assert page.status_code == 200 and 'id="status">withdrawn<' in page.text
        assert 'name="csrf"' not in page.text  # no form: nothing to approve
        client.runtime.page.opener = lambda target: found.append(launch_link(target)) is None
        again = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert again.structured_content["status"] == "approval_required"  # a new page for the person, not a write
    assert len(found) == 2 and found[1] != found[0]
    assert task_status(sandbox, uid) == "open" and puts(sandbox) == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "content", [{"confirm": "yes"}, {"confirm": "on"}, {"confirm": 1}, {"confirm": "1"}, {"confirm": "true"},
                {"confirm": True, "also": "x"}],
)
async def test_the_confirm_form_takes_only_a_real_boolean(
    sandbox: SandboxServer, connect: Any, mode: str, content: dict[str, Any]
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]

    async def loose(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content=content)

    async with connect(sandbox, mode=mode, elicitation=loose) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.is_error or result.structured_content["status"] != "applied"
    assert task_status(sandbox, uid) == "open" and puts(sandbox) == 0
