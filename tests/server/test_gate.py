"""The confirmation gate through real client sessions, in both protocol eras, with the sandbox checked directly.

Each test gets a fresh sandbox, so writes never leak between tests.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import MODES, answering, approve, audit_lines, task_status, writes


@pytest.mark.parametrize("mode", MODES)
async def test_accept_changes_once_and_audits(sandbox: SandboxServer, connect: Any, tmp_path: Path, mode: str) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    seen: list[str] = []
    async with connect(sandbox, mode=mode, elicitation=answering("accept", {"confirm": True}, seen)) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    body = result.structured_content
    assert not result.is_error and body["status"] == "applied"
    assert task_status(sandbox, uid) == "done"
    assert len(writes(sandbox)) == 1
    assert len(seen) == 1 and '"open" → "done"' in seen[0]
    assert body["undo"] == {"tool": "update_task", "arguments": {"uid": uid, "action": "reopen"}}
    attempt, line = audit_lines(tmp_path)
    assert attempt["outcome"] == "attempt" and attempt["before"]["status"] == "open"
    assert attempt["arguments"] == line["arguments"]
    assert line["outcome"] == "succeeded" and line["channel"] == "elicitation" and line["tool"] == "update_task"
    assert line["before"]["status"] == "open" and line["after"]["status"] == "done"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", [answering("decline"), answering("cancel"), answering("accept", {"confirm": False})])
async def test_decline_cancel_or_unticked_change_nothing(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, mode: str, answer: Any
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, mode=mode, elicitation=answer) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.structured_content["status"] == "not_approved"
    assert "nothing was changed" in result.structured_content["message"]
    assert task_status(sandbox, uid) == "open" and writes(sandbox) == []
    assert audit_lines(tmp_path)[-1]["outcome"] in ("declined", "cancelled")


async def test_elicitation_timeout_changes_nothing(sandbox: SandboxServer, connect: Any, tmp_path: Path) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]

    async def slow(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        await anyio.sleep(5)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with connect(sandbox, mode="legacy", elicitation=slow, confirm_timeout=0.3) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.structured_content["status"] == "not_approved"
    assert "in time" in result.structured_content["message"]
    assert task_status(sandbox, uid) == "open" and writes(sandbox) == []
    assert audit_lines(tmp_path)[-1]["outcome"] == "timeout"


@pytest.mark.parametrize("mode", MODES)
async def test_client_without_elicitation_fails_closed(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, mode: str
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, mode=mode) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        opened = list(client.opened)
    body = result.structured_content
    assert body["status"] == "approval_required" and "approval_url" not in body
    assert "http" not in result.content[0].text  # type: ignore[union-attr]
    assert len(opened) == 1 and opened[0].startswith("http://127.0.0.1:")  # the person's browser got it
    assert "Nothing was changed" in body["message"] and "same arguments" in body["message"]
    assert task_status(sandbox, uid) == "open" and writes(sandbox) == []
    assert audit_lines(tmp_path)[-1]["outcome"] == "approval_required"


@pytest.mark.parametrize("mode", MODES)
async def test_no_op_asks_nothing(sandbox: SandboxServer, connect: Any, mode: str) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    seen: list[str] = []
    async with connect(sandbox, mode=mode, elicitation=answering("accept", {"confirm": True}, seen)) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "reopen"})
    assert result.structured_content["status"] == "no_change" and seen == [] and writes(sandbox) == []


async def test_record_changed_between_preview_and_commit_is_a_conflict(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    facts = sandbox.store.demo_facts()
    jane = facts["jane_uri"]

    async def meddle(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        sandbox.store.update(jane, {"postal_code": "ZZ1 1ZZ"}, message="changed by someone else")
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with connect(sandbox, mode="legacy", elicitation=meddle) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "phone": "+44 20 7946 0000"})
    assert result.is_error
    assert "changed after the preview" in result.content[0].text  # type: ignore[union-attr]
    record = sandbox.store.get(jane)
    assert record is not None and "+44 20 7946 0000" not in record.data["telephone"]
    assert writes(sandbox) == []
    assert audit_lines(tmp_path)[-1]["outcome"] == "conflict"


async def test_modern_era_re_asks_when_the_record_moved(sandbox: SandboxServer, connect: Any) -> None:
    """On 2026-07-28 the answer is bound to the question, whose schema carries the record's version (the text a
    person reads carries no fingerprint)."""
    jane = sandbox.store.demo_facts()["jane_uri"]
    seen: list[str] = []

    async def meddle_once(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert "version" not in params.message and "Apply this change?" in params.message
        seen.append(json.dumps(params.model_dump(mode="json", exclude_none=True), sort_keys=True))
        if len(seen) == 1:
            sandbox.store.update(jane, {"postal_code": "ZZ1 1ZZ"}, message="changed by someone else")
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with connect(sandbox, mode="auto", elicitation=meddle_once) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "phone": "+44 20 7946 0001"})
    assert len(seen) == 2  # the answer to the first question was not reused for the moved record
    assert result.structured_content["status"] == "applied"
    assert len(writes(sandbox)) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_replayed_strings_as_extra_arguments_are_refused(
    sandbox: SandboxServer, connect: Any, mode: str
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, mode=mode) as client:
        first = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        assert first.structured_content["status"] == "approval_required"
        url = client.opened[-1]
        for extra in ({"approval_url": url}, {"approval_id": url.rsplit("/", 3)[-3]}, {"confirm": True},
                      {"confirmation": {"confirm": True}}):
            result = await client.call_tool("update_task", {"uid": uid, "action": "complete", **extra})
            assert result.is_error, extra
            assert "unknown argument" in result.content[0].text  # type: ignore[union-attr]
    assert task_status(sandbox, uid) == "open" and writes(sandbox) == []


@pytest.mark.parametrize(
    ("fault", "applied"),
    [("500:1.0", False), ("drop:1.0", False), ("500@after:1.0", True), ("timeout=3@after:1.0", True)],
)
async def test_write_faults_are_attempted_once_and_reported_honestly(
    connect: Any, tmp_path: Path, fault: str, applied: bool
) -> None:
    with SandboxServer(faults=[f"{fault}:/complete$"], key="k") as sb:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        async with connect(sb, elicitation=approve, timeout=1.0) as client:
            result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        assert len([r for r in writes(sb) if r.path.endswith("/complete")]) == 1
        assert task_status(sb, uid) == ("done" if applied else "open")
        line = audit_lines(tmp_path)[-1]
        if applied:
            assert result.structured_content["status"] == "applied"
            assert "not sent again" in result.structured_content["message"]
            assert line["outcome"] == "succeeded" and line["detail"]
        else:
            assert result.is_error
            assert "nothing was changed" in result.content[0].text  # type: ignore[union-attr]
            assert line["outcome"] == "failed"


async def test_conflict_409_on_write_changes_nothing(connect: Any, tmp_path: Path) -> None:
    with SandboxServer(faults=["409:1.0:/complete$"], key="k") as sb:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        async with connect(sb, elicitation=approve) as client:
            result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        assert result.is_error and "conflict" in result.content[0].text  # type: ignore[union-attr]
        assert task_status(sb, uid) == "open"
        assert audit_lines(tmp_path)[-1]["outcome"] == "failed"


async def test_read_only_mode_removes_write_tools(sandbox: SandboxServer, connect: Any) -> None:
    async with connect(sandbox, read_only=True) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("update_task", {"uid": "abc", "action": "complete"})
    assert names.isdisjoint({"update_contact", "set_attendance", "update_task"}) and "get_task" in names
    assert result.is_error


async def test_confirm_none_is_recorded_in_every_audit_line(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, confirm="none") as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.structured_content["status"] == "applied"
    lines = audit_lines(tmp_path)
    assert [line["outcome"] for line in lines] == ["attempt", "succeeded"]
    assert all(line["confirm_mode"] == "none" and line["channel"].startswith("none") for line in lines)


@pytest.mark.parametrize("mode", MODES)
async def test_batch_reports_progress(sandbox: SandboxServer, connect: Any, mode: str) -> None:
    store = sandbox.store
    uid = store.demo_facts()["past_event_uid"]
    targets = [a.data["person_ref"] for a in store.attendance(store.uri("booking", uid))
               if a.data["status"] != "declined"][:4]
    seen: list[tuple[float, float | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total))

    async with connect(sandbox, mode=mode, elicitation=approve) as client:
        result = await client.call_tool("set_attendance", {"uid": uid, "person_uris": targets, "status": "declined"},
                                        progress_callback=progress)
    assert result.structured_content["status"] == "applied"
    assert seen == [(n, 4) for n in range(1, 5)]


async def test_writes_are_reachable_only_while_the_gate_applies(sandbox: SandboxServer) -> None:
    from sheepcrm_mcp.server.specs import GatedWrites
    from sheepcrm_mcp.sheepcrm import SheepClient
    from tests.helpers import settings_for

    client = SheepClient(settings_for(sandbox, Path(tempfile.gettempdir())).client_config())
    writes = GatedWrites(client)
    with pytest.raises(RuntimeError, match=r"only inside WritePlan\.apply"):
        _ = writes.client  # building or previewing a plan: no writes
    with writes.opened():
        assert writes.client is client
    with pytest.raises(RuntimeError):
        _ = writes.client  # closed again after apply
    reader = client.reader
    assert not any(hasattr(reader, m) for m in ("task_action", "set_attendance", "update_record"))
    await client.aclose()


async def test_tools_cannot_build_a_client_of_their_own(sandbox: SandboxServer, tmp_path: Path) -> None:
    """A tool is handed a read-only client and settings without secrets: no key to build a writing client with."""
    from mcp import Client
    from pydantic import BaseModel

    from sheepcrm_mcp.assembly import build_app
    from sheepcrm_mcp.server.settings import ConfigError
    from sheepcrm_mcp.server.specs import Deps, ReadTool
    from sheepcrm_mcp.tools.profiles import STAFF, Profile
    from tests.helpers import settings_for

    class Nothing(BaseModel):
        pass

    class Found(BaseModel):
        secrets: list[str]
        built: bool

    async def snoop(_: Nothing, deps: Deps) -> Found:
        held = [name for name, value in deps.settings if value is not None and "Secret" in type(value).__name__]
        try:
            deps.settings.client_config()
        except ConfigError:
            return Found(secrets=held, built=False)
        return Found(secrets=held, built=True)

    spec = ReadTool(name="snoop", description="d", toolset="contacts", input=Nothing, output=Found,
                    handler=snoop)
    settings = settings_for(sandbox, tmp_path, mcp_token="t" * 40, api_key_helpdesk="k" * 20)
    profile = Profile("snoop", lambda: "", lambda s: [spec], STAFF.install)
    built = build_app(settings, profile=profile)
    async with Client(built.server) as client:  # type: ignore[arg-type]
        found = (await client.call_tool("snoop", {})).structured_content
    await built.aclose()
    assert settings.api_key is not None and settings.mcp_token is not None  # the server itself holds them
    assert found == {"secrets": [], "built": False}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "answer",
    [answering("accept", {"confirm": "true"}), answering("accept"), answering("accept", {"confirm": True, "x": 1})],
)
async def test_a_malformed_approval_is_not_approved_without_a_traceback(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, mode: str, answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A form answer that is not a valid approval (a string for the tick, no content, an extra field) writes
    nothing and is answered as not approved, not as a failure of the tool."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, mode=mode, elicitation=answer) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert not result.is_error, result.content
    body = result.structured_content
    assert body["status"] == "not_approved" and "not a valid approval" in body["message"]
    assert task_status(sandbox, uid) == "open" and writes(sandbox) == []
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]


@pytest.mark.parametrize("mode", MODES)
async def test_accept_without_the_tick_says_the_box_was_not_ticked(
    sandbox: SandboxServer, connect: Any, mode: str
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, mode=mode, elicitation=answering("accept", {"confirm": False})) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    message = result.structured_content["message"]
    assert "the confirmation box was not ticked" in message and "declined" not in message


async def test_a_fault_of_ours_after_the_put_is_judged_by_the_read_back(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error after the write was sent (a bug of ours, not sheepCRM's answer) must not become
    'failed unexpectedly; nothing was changed': the record is read back; the write is said and audited as applied."""
    from sheepcrm_mcp.sheepcrm.tasks import TaskWrites

    sent = TaskWrites.task_action

    async def sends_then_breaks(self: TaskWrites, uid: str, action: str) -> Any:
        await sent(self, uid, action)
        raise RuntimeError("a fault after the PUT")

    monkeypatch.setattr(TaskWrites, "task_action", sends_then_breaks)
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    body = result.structured_content
    assert task_status(sandbox, uid) == "done" and len(writes(sandbox)) == 1
    assert not result.is_error and body["status"] == "applied", result.content
    assert "nothing was changed" not in json.dumps(body)
    assert [e["outcome"] for e in audit_lines(tmp_path)][-1] == "succeeded"
