"""list_tasks end to end: sheepCRM's `total` (the 2025-02 draft) decides whether the list is whole."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import mcp_types as types
import pytest

from sheepcrm_mcp.sandbox.records import fmt_dt, now_utc, parse_dt
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store
from sheepcrm_mcp.sheepcrm.tasks import TASK_PAGE
from sheepcrm_mcp.tools import tasks
from sheepcrm_mcp.tools.tasks import ListTasksInput, list_tasks
from tests.helpers import (
    CANARY_KEY,
    MODES,
    Readers,
    answer,
    answer_body,
    answer_sized,
    approve,
    audit_lines,
    clone_records,
    error_text,
    read,
    scripted,
)


async def test_a_full_page_that_sheepcrm_says_is_all_is_whole(sandbox: SandboxServer, connect: Any) -> None:
    store = sandbox.store
    open_ = [t for t in store.tasks() if not t.data.get("completed")]
    clone_records(sandbox, open_[0].uri, TASK_PAGE - len(open_))  # exactly one full page of open tasks
    result = await answer(connect, sandbox, "list_tasks", {"scope": "all", "limit": 5})
    body = result.structured_content
    assert body["total"] == TASK_PAGE and "cut" not in (body.get("note") or ""), body


async def test_a_snooze_that_moved_the_date_by_another_amount_is_applied_differently(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sheepCRM documents +24 hours; a snooze that moved the due date by 12 is read back as it is: applied
    differently (the date did move), not 'the write failed, nothing was changed'."""

    def twelve_hours(store: Store, uid: str) -> Any:
        task = store.require("journal", uid)
        return store.update(task.uri, {"date": fmt_dt(parse_dt(task.data["date"]) + timedelta(hours=12))},
                            message="task snoozed")

    monkeypatch.setattr(Store, "snooze_task", twelve_hours)  # before the sandbox builds its routes
    with SandboxServer(key=CANARY_KEY) as sb:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        result = await answer(connect, sb, "update_task", {"uid": uid, "action": "snooze"}, elicitation=approve)
        task = sb.store.get_record("journal", uid)
    body = result.structured_content
    assert not result.is_error and body["status"] == "partial", result.content
    assert task is not None and body["changes"][0]["result"] == "different"
    assert body["changes"][0]["now"] == task.data["date"] and "applied differently" in body["message"]



async def test_two_due_dates_that_disagree_are_both_shown_and_a_due_filter_says_so(connect: Any) -> None:
    """Variant snooze-due-date: a snooze moves the draft's `due_date` and the 2024-12 `date` keeps the old one.
    Which one sheepCRM goes by is not documented: get_task and list_tasks show both, named by key, and a due
    filter that one passes and the other fails lists the task as "whether due is unknown", never silently by one."""
    with SandboxServer(key=CANARY_KEY, variant="snooze-due-date") as sb:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        old = sb.store.require("journal", uid).data["date"]
        snoozed = await answer_body(connect, sb, "update_task", {"uid": uid, "action": "snooze"}, elicitation=approve)
        new = sb.store.require("journal", uid).data["due_date"]
        task = await answer_body(connect, sb, "get_task", {"uid": uid})
        due = await answer_body(connect, sb, "list_tasks", {"due_before": old[:10], "limit": 50})
    assert snoozed["status"] in ("applied", "partial") and new[:10] > old[:10], (snoozed, old, new)
    assert task["due"] == f"{old} (date) / {new} (due_date): sheepCRM's two due dates disagree", task
    [listed] = [t for t in due["tasks"] if t["uid"] == uid]
    assert listed["due"] == task["due"], listed
    assert "1 task(s) here carry two due dates that disagree" in due["note"], due
    assert "1 of them are listed because one of the two is due" in due["note"], due


@pytest.mark.parametrize("mode", MODES)
async def test_list_tasks(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    mine = [t for t in store.tasks(assigned_to=store.api_user) if Store.task_status(t) == "open"]
    due = (datetime.now(UTC) + timedelta(days=7)).date()
    body = await read(readers, "list_tasks", {"limit": 50, "due_before": due.isoformat()}, mode=mode)
    expected = {t.uid for t in mine if date.fromisoformat(t.data["date"][:10]) <= due}
    assert {t["uid"] for t in body["tasks"]} == expected
    assert store.demo_facts()["my_open_task_uid"] in expected
    every = await read(readers, "list_tasks", {"scope": "all", "status": "any", "limit": 1}, mode=mode
    )
    assert every["total"] == len(store.tasks())  # finding 4: include_completed=true is sent for status='any'
    done = await read(readers, "list_tasks", {"scope": "all", "status": "done", "limit": 1}, mode=mode
    )
    assert done["total"] == sum(1 for t in store.tasks() if t.data["completed"]) > 0


async def test_tasks_in_the_draft_shape_and_as_one_object() -> None:
    draft = {
        "tasks": [
            {
                "uid": "j1",
                "uri": "/demo/journal/j1/",
                "title": "Call",
                "due_date": "2030-01-01T10:00:00",
                "allocated_to_display": "Priya",
                "completed": False,
            }
        ],
        "total": 1,
    }
    body = await list_tasks(ListTasksInput(), scripted({"/notifications/v2/demo/tasks": draft}))
    assert [(t.uid, t.due, t.assigned_to) for t in body.tasks] == [("j1", "2030-01-01T10:00:00", "Priya")]
    one = {"tasks": {"uid": "j2", "title": "Write", "date": "2030-01-02T10:00:00", "assigned_to_display": "Tom"}}
    body = await list_tasks(ListTasksInput(), scripted({"/notifications/v2/demo/tasks": one}))
    assert [(t.uid, t.assigned_to) for t in body.tasks] == [("j2", "Tom")]


async def test_a_full_task_page_is_said_to_be_cut() -> None:
    full = {"tasks": [{"uid": f"t{i}", "title": "x", "date": "2030-01-01"} for i in range(250)]}
    body = await list_tasks(ListTasksInput(), scripted({"/notifications/v2/demo/tasks": full}))
    assert body.total is None and "cut short" in (body.note or "")


async def test_tasks_about_a_contact_and_overdue(shared_sandbox: SandboxServer, connect: Any) -> None:
    store = shared_sandbox.store
    tasks = [t for t in store.tasks() if t.data.get("record_state") != "deleted"]
    subject = max(
        {t.data["context"] for t in tasks if not t.data["completed"]},
        key=lambda c: sum(1 for t in tasks if t.data["context"] == c),
    )
    body, size = await answer_sized(connect, shared_sandbox, "list_tasks", {"about": subject})
    expected = {t.uid for t in tasks if t.data["context"] == subject and not t.data["completed"]}
    assert {t["uid"] for t in body["tasks"]} == expected and expected
    assert size <= 2_000
    title = tasks[0].data["title"]
    worded = await answer_body(
        connect, shared_sandbox, "list_tasks", {"scope": "all", "status": "any", "query": title.lower(), "limit": 50}
    )
    assert {t["uid"] for t in worded["tasks"]} == {t.uid for t in tasks if title.lower() in t.data["title"].lower()}
    overdue = await answer_body(connect, shared_sandbox, "list_tasks", {"overdue": True, "limit": 50})
    now = now_utc()
    mine = [t for t in store.tasks(store.api_user) if t.data.get("record_state") != "deleted"]
    assert {t["uid"] for t in overdue["tasks"]} == {
        t.uid for t in mine if not t.data["completed"] and parse_dt(t.data["date"]) < now
    }
    assert overdue["as_of"].startswith(now.date().isoformat()[:7])


async def test_overdue_and_due_before_keep_tasks_whose_due_date_or_status_is_unknown(connect: Any) -> None:
    """A due date sheepCRM sent but that cannot be read, or a task that does not say whether it is completed, is
    listed and said, never dropped as "not due"."""
    with SandboxServer(key=CANARY_KEY) as sb:
        store = sb.store
        now = now_utc()
        mine = [t for t in store.tasks(store.api_user) if t.data.get("record_state") != "deleted"]
        open_ = [t for t in mine if not t.data["completed"]]
        unreadable, unsaid = open_[0], open_[1]
        store.replace_data(unreadable.uri, {**unreadable.data, "date": "next Tuesday"})
        past = fmt_dt(now - timedelta(days=3))
        store.replace_data(unsaid.uri, {**{k: v for k, v in unsaid.data.items() if k != "completed"}, "date": past})
        overdue = await answer_body(connect, sb, "list_tasks", {"overdue": True, "limit": 50})
        before = await answer_body(
            connect, sb, "list_tasks", {"due_before": (now + timedelta(days=1)).date().isoformat(), "limit": 50}
        )
    got = {t["uid"]: t for t in overdue["tasks"]}
    assert got[unreadable.uid]["due"] == "next Tuesday" and got[unsaid.uid]["status"] == "unknown", overdue
    assert "could not be read" in overdue["note"] and "status unknown" in overdue["note"], overdue
    assert unreadable.uid in {t["uid"] for t in before["tasks"]} and "could not be read" in before["note"], before


@pytest.mark.parametrize("mode", MODES)
async def test_get_task(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    task = store.get_record("journal", store.demo_facts()["my_open_task_uid"])
    assert task is not None
    body = await read(readers, "get_task", {"uid": task.uid}, mode=mode)
    assert body["title"] == task.display_value and body["status"] == Store.task_status(task)
    assert body["text"] == task.data["text_body"]


@pytest.mark.parametrize(
    ("action", "drift", "unsaid"),
    [
        ("complete", "renamed-field=completed", "whether the task is completed"),
        ("snooze", "renamed-field=date", "the task's due date"),  # variant tasks-2024: no due_date either
    ],
)
async def test_a_write_to_a_field_sheepcrm_does_not_send_has_an_unknown_outcome(
    connect: Any, tmp_path: Any, action: str, drift: str, unsaid: str
) -> None:
    """sheepCRM's task answer without `completed` (or, for a snooze, without its due date) and nothing else that
    moves: before and after are both unknown, so the write's outcome is unknown (audited so), never "the write
    failed and nothing was changed" -- the sandbox did apply it."""
    with SandboxServer(key=CANARY_KEY, drift=[drift, "renamed-field=last_updated"], variant="tasks-2024") as sb:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        before = sb.store.require("journal", uid).data
        result = await answer(connect, sb, "update_task", {"uid": uid, "action": action}, elicitation=approve)
        after = sb.store.require("journal", uid).data
    assert after != before  # the write did happen upstream
    assert not result.is_error, result.content
    body = result.structured_content
    assert body["status"] == "partial" and body["changes"][0]["result"] == "unknown", body
    assert f"sheepCRM accepted the request but its answer does not say {unsaid}: check in sheepCRM" in body["message"]
    assert "nothing was changed" not in body["message"]
    assert [line["outcome"] for line in audit_lines(tmp_path)] == ["attempt", "unknown"]


async def test_task_confirmation_names_subject_and_due_and_snooze_says_no_undo(
    sandbox: SandboxServer, connect: Any
) -> None:
    store = sandbox.store
    uid = store.demo_facts()["my_open_task_uid"]
    task = store.require("journal", uid)
    asked: list[str] = []

    async def approve(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "snooze"})
    assert not result.is_error, result.content
    assert task.data["context_display"] in asked[0] and parse_dt(task.data["date"]).strftime("%d %b %Y") in asked[0]
    assert asked[0].startswith(f"Snooze task {uid} \"")  # exactly which task: its uid, then its title
    assert "version" not in asked[0]
    body = result.structured_content
    assert body["status"] == "applied" and "undo" not in body and "cannot be undone" in body["message"]


async def test_a_long_title_and_subject_never_push_the_uid_or_due_date_out_of_the_confirmation(
    sandbox: SandboxServer, connect: Any
) -> None:
    store = sandbox.store
    uid = store.demo_facts()["my_open_task_uid"]
    task = store.require("journal", uid)
    long = {**task.data, "display_value": "Call " + "very " * 60 + "urgently", "title": "Call " + "very " * 60,
            "context_display": "Someone " + "with a long name " * 20}
    store.replace_data(store.uri("journal", uid), long)
    asked: list[str] = []

    async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    async with connect(sandbox, elicitation=decline) as client:
        await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    summary = asked[0].splitlines()[0]
    assert summary.startswith(f"Complete task {uid} \"Call very") and "…" in summary
    assert summary.endswith(parse_dt(task.data["date"]).strftime("due %d %b %Y %H:%M UTC)")), summary


async def test_snooze_is_24_hours_and_verified_by_the_new_due_date(sandbox: SandboxServer, connect: Any) -> None:
    """Finding 2: sheepCRM's snooze takes no parameters (+24 h, or 24 h from now if overdue). The gate must see
    the moved due date as success, send no `until`, and refuse an `until` argument."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    before = sandbox.store.get_record("journal", uid)
    assert before is not None
    async with connect(sandbox, elicitation=approve) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "snooze"})
        assert result.structured_content["status"] == "applied", result.structured_content
        dated = await client.call_tool("update_task", {"uid": uid, "action": "snooze", "until": "2099-01-31"})
        assert dated.is_error and "until" in dated.content[0].text  # type: ignore[union-attr]
    task = sandbox.store.get_record("journal", uid)
    expected = max(parse_dt(before.data["date"]), now_utc()) + timedelta(hours=24)
    assert task is not None and abs((parse_dt(task.data["date"]) - expected).total_seconds()) < 60
    snoozes = [r for r in sandbox.request_log if r.path.endswith("/snooze")]
    assert len(snoozes) == 1 and snoozes[0].query == ""


# ---- the pure mappers ----------------------------------------------------------------------


def test_status_and_due_of_either_shape() -> None:
    assert tasks.status_of({"completed": True}) == "done" and tasks.status_of({}) == "unknown"
    assert tasks.due_of({"date": "2030-01-01", "due_date": "2031-01-01"}) == "2030-01-01"
    assert tasks.due_of({"due_date": "2031-01-01"}) == "2031-01-01" and tasks.due_of({}) is None


async def test_done_tasks_are_unknown_when_sheepcrm_sends_no_completed_one(connect: Any) -> None:
    """The 2024-12 list has no include_completed (variant tasks-2024: it sends open tasks only): status='done' is
    "unknown here, not none", never "no tasks match"; open tasks are never listed as done."""
    with SandboxServer(key=CANARY_KEY, variant="tasks-2024") as sb:
        done = await answer_body(connect, sb, "list_tasks", {"status": "done", "limit": 50})
        every = await answer_body(connect, sb, "list_tasks", {"status": "any", "limit": 50})
    assert done["tasks"] == [] and "not none" in done["note"] and "No tasks match" not in done["note"], done
    assert every["tasks"] and {t["status"] for t in every["tasks"]} == {"open"} and "not none" in every["note"]


async def test_a_completed_value_that_is_not_a_boolean_is_unknown_never_done(connect: Any) -> None:
    """`completed` sent as another type (drift; a truthy list holding false): every task is unknown, none counted
    done, and the note says why. A string "false" is read the same way."""
    assert tasks.status_of({"completed": "false"}) == "unknown"
    with SandboxServer(key=CANARY_KEY, drift=["retyped-field=completed"]) as sb:
        body = await answer_body(connect, sb, "list_tasks", {"status": "open"})
    assert body["tasks"] and {t["status"] for t in body["tasks"]} == {"unknown"}, body
    assert "boolean `completed`" in body["note"], body


async def test_a_2024_list_without_a_total_is_never_called_all(connect: Any) -> None:
    """The 2024-12 list sends no total and its page size is not known (variant tasks-2024: at most 100 a page
    whatever page_size asks): a page of 100 is not the whole list, and fewer than 250 is no proof either; the
    answer gives no total and says there may be more."""
    with SandboxServer(key=CANARY_KEY, variant="tasks-2024") as sb:
        store = sb.store
        open_ = [t for t in store.tasks() if not t.data.get("completed")]
        clone_records(sb, open_[0].uri, 120 - len(open_))
        body = await answer_body(connect, sb, "list_tasks", {"scope": "all", "limit": 5})
        few = [t for t in store.tasks(store.api_user) if not t.data.get("completed")]
    assert len(open_) < 120 and body.get("total") is None and "there may be more" in body["note"], body
    assert len(few) >= tasks.DEFAULT_PAGE


async def test_tasks_without_a_due_date_are_counted_never_silently_left_out(sandbox: SandboxServer,
                                                                            connect: Any) -> None:
    """A task with no due information at all (no `date`, no `due_date`) is neither overdue nor not: an overdue or
    due_before list leaves it out and says how many were left out."""
    store = sandbox.store
    mine = [t for t in store.tasks(store.api_user) if not t.data.get("completed")]
    store.replace_data(mine[0].uri, {**mine[0].data, "date": None})
    overdue = await answer_body(connect, sandbox, "list_tasks", {"overdue": True, "limit": 50})
    due = await answer_body(connect, sandbox, "list_tasks", {"due_before": "2100-01-01", "limit": 50})
    for body in (overdue, due):
        assert "1 task(s) of this list have no due date" in body["note"], body
        assert mine[0].uri not in {t.get("uri") for t in body["tasks"]}


async def test_a_task_due_before_its_creation_is_overdue_never_left_out(connect: Any) -> None:
    """The 2025-02 draft's `due_date` is "null if due date < created date": an open task sent that way (the draft's
    names only: `date` respelled by drift) was due before it was created, so it is overdue: listed, saying its due
    date was before its creation, never left out as having no due date."""
    with SandboxServer(key=CANARY_KEY, drift=["renamed-field=date:/notifications/v2/"]) as sb:
        store = sb.store
        task = next(t for t in store.tasks(store.api_user) if not t.data.get("completed"))
        early = fmt_dt(parse_dt(task.data["created"]) - timedelta(days=3))
        store.replace_data(task.uri, {**task.data, "date": early})
        overdue = await answer_body(connect, sb, "list_tasks", {"overdue": True, "limit": 50})
    listed = {t.get("uri"): t for t in overdue["tasks"]}
    assert task.uri in listed and listed[task.uri]["due"] == tasks.BEFORE_CREATED, overdue
    assert "were due before they were created" in overdue["note"], overdue
    assert "have no due date" not in overdue["note"], overdue


async def test_no_match_suggests_only_what_the_caller_has_not_tried(shared_sandbox: SandboxServer,
                                                                    connect: Any) -> None:
    """An empty answer to scope='all', status='any' suggests neither again."""
    body = await answer_body(connect, shared_sandbox, "list_tasks",
                             {"scope": "all", "status": "any", "query": "zzqx nothing like this"})
    assert body["tasks"] == [] and "No tasks match" in body["note"], body
    assert "scope='all'" not in body["note"] and "status='any'" not in body["note"], body


async def test_a_task_answer_without_a_tasks_keys_is_could_not_read(connect: Any) -> None:
    """A single task's answer holding none of a task's keys (drift: each respelled) is "could not read", never a
    task "(untitled)" of unknown status."""
    path = ":/notifications/v2/demo/task/"
    drift = [f"renamed-field={k}{path}" for k in ("uid", "display_value", "title", "completed", "date", "due_date")]
    with SandboxServer(key=CANARY_KEY, drift=drift) as sb:
        result = await answer(connect, sb, "get_task", {"uid": sb.store.demo_facts()["my_open_task_uid"]})
    said = error_text(result)
    assert "Could not read sheepCRM's answer to the task" in said and "(untitled)" not in said, said


async def test_a_snooze_that_moved_another_field_says_what_changed(connect: Any) -> None:
    """Which field a snooze moves is unstated (EVIDENCE.md): one that moves the draft's `due_date` and leaves the
    2024-12 `date` (variant snooze-due-date) is judged against the task read before it: applied differently, naming
    the keys that changed, never "nothing was changed"."""
    with SandboxServer(key=CANARY_KEY, variant="snooze-due-date") as sb:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        result = await answer(connect, sb, "update_task", {"uid": uid, "action": "snooze"}, elicitation=approve)
        task = sb.store.get_record("journal", uid)
    body = result.structured_content
    assert task is not None and task.data.get("due_date"), task  # the snooze was made
    assert not result.is_error and body["status"] == "partial", result.content
    assert "applied differently" in body["message"] and "nothing was changed" not in body["message"], body
    [line] = body["changes"]
    assert line["result"] == "different" and "sheepCRM changed due_date" in line["now"], line
