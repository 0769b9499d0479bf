"""Gated writes over the real transports: the installed binary over stdio, and streamable HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store
from tests.helpers import binary, http_session, sandbox_env, serve_http


async def accept(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    assert '"open" → "done"' in params.message
    return types.ElicitResult(action="accept", content={"confirm": True})


async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="decline")


def done(sb: SandboxServer, uid: str) -> bool:
    task = sb.store.get_record("journal", uid)
    assert task is not None
    return Store.task_status(task) == "done"


@pytest.mark.parametrize(("answer", "applied"), [(accept, True), (decline, False)])
async def test_gated_write_over_stdio(sandbox: SandboxServer, tmp_path: Path, answer: Any, applied: bool) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    params = StdioServerParameters(command=binary(), args=[], env=sandbox_env(sandbox, tmp_path))
    async with Client(params, mode="legacy", elicitation_callback=answer, read_timeout_seconds=30) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.structured_content["status"] == ("applied" if applied else "not_approved")
    assert done(sandbox, uid) == applied
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["outcome"] == ("succeeded" if applied else "declined")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_over_http_the_clients_own_form_answer_is_not_the_persons_approval(
    sandbox: SandboxServer, tmp_path: Path, mode: str
) -> None:
    """Whoever holds the bearer token (published by a cloned repository's config, or read from its file by a model's
    browser) is an HTTP client: its "accept, confirm: true" approves nothing. The person's browser is opened on the
    approval page instead, and nothing is written until the person decides there."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    with serve_http(sandbox, tmp_path) as base:
        async with http_session(base, mode=mode, elicitation_callback=accept) as client:
            result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
            again = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        assert len(base.opened) == 1  # the person's browser, once; the client was handed no link
    assert result.structured_content["status"] == "approval_required"
    assert again.structured_content["status"] == "approval_required"
    assert not done(sandbox, uid) and [r for r in sandbox.request_log if r.method == "PUT"] == []


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_gated_write_over_http_when_the_persons_own_file_lets_the_client_ask(
    sandbox: SandboxServer, tmp_path: Path, mode: str
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    with serve_http(sandbox, tmp_path, http_client_approvals=True) as base:
        async with http_session(base, mode=mode, elicitation_callback=accept) as client:
            result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.structured_content["status"] == "applied" and done(sandbox, uid)
    assert len([r for r in sandbox.request_log if r.method == "PUT"]) == 1
