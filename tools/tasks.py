"""list_tasks, get_task and update_task."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from sheepcrm_mcp.server.toolkit import Deps, Input, Output, ReadTool, Refusal, ToolSpec, WriteDeps, WriteTool, paginate
from sheepcrm_mcp.server.writes import NAME_CAP, Change, WritePlan, visible
from sheepcrm_mcp.sheepcrm import NotFoundError
from sheepcrm_mcp.sheepcrm.scope import check_uid
from sheepcrm_mcp.tools.common import Detail, ListOutput, Paged, day, rows, text, today

TaskStatus = Literal["open", "done", "snoozed"]
TaskUid = Annotated[str, Field(min_length=1, max_length=64, description="Task uid.")]


def status_of(t: dict[str, Any], now: datetime | None = None) -> TaskStatus:
    if t.get("completed"):
        return "done"
    until = text(t.get("snoozed_until"))
    if until:
        try:
            if datetime.fromisoformat(until) > (now or datetime.now()):
                return "snoozed"
        except ValueError:
            pass
    return "open"


class TaskBrief(Output):
    uid: str
    title: str
    status: TaskStatus
    due: str | None = None
    assigned_to: str | None = None
    about: str | None = Field(None, description="Name of the record the task is about.")
    about_uri: str | None = None


class Task(TaskBrief):
    text: str | None = None
    snoozed_until: str | None = None
    created: str | None = None
    last_updated: str | None = None


def brief(t: dict[str, Any]) -> TaskBrief:
    return TaskBrief(
        uid=text(t.get("uid")) or "",
        title=text(t.get("display_value")) or text(t.get("title")) or "(untitled)",
        status=status_of(t),
        due=text(t.get("date")),
        assigned_to=text(t.get("assigned_to_display")),
        about=text(t.get("context_display")),
        about_uri=text(t.get("context")),
    )


# ---- list_tasks -------------------------------------------------------------------------


class ListTasksInput(Paged):
    scope: Annotated[Literal["mine", "all"], Field()] = "mine"
    status: Annotated[Literal["open", "done", "snoozed", "any"], Field()] = "open"
    due_before: Annotated[date | None, Field()] = None


class ListTasksOutput(ListOutput):
    tasks: list[TaskBrief]


async def list_tasks(req: ListTasksInput, deps: Deps) -> ListTasksOutput:
    data = await (deps.client.my_tasks() if req.scope == "mine" else deps.client.all_tasks())
    tasks = [brief(t) for t in rows(data, "tasks", "results")]
    if req.status != "any":
        tasks = [t for t in tasks if t.status == req.status]
    if req.due_before:
        tasks = [t for t in tasks if (d := day(t.due)) is not None and d <= req.due_before]
    tasks.sort(key=lambda t: t.due or "9999")
    page = paginate(tasks, req.limit, req.cursor, f"tasks:{req.scope}:{req.status}:{req.due_before}")
    return ListTasksOutput(
        tasks=page.items,
        total=len(tasks),
        next_cursor=page.next_cursor,
        note=page.note or (None if tasks else "No tasks match; try status='any' or scope='all'."),
    )


# ---- get_task ---------------------------------------------------------------------------


class GetTaskInput(Input):
    uid: TaskUid
    detail: Detail = "concise"


async def _task_or_refuse(uid: str, deps: Deps, fresh: bool = False) -> dict[str, Any]:
    try:
        return await deps.client.task(check_uid(uid, "task uid"), fresh=fresh)
    except NotFoundError:
        raise Refusal(f"No task with uid {uid!r}. Find tasks with list_tasks (scope='all', status='any').") from None


async def get_task(req: GetTaskInput, deps: Deps) -> Task:
    t = await _task_or_refuse(req.uid, deps)
    task = Task(**brief(t).model_dump(), text=text(t.get("text_body")))
    if req.detail == "full":
        task.snoozed_until = text(t.get("snoozed_until"))
        task.created = text(t.get("created"))
        task.last_updated = text(t.get("last_updated"))
    return task


# ---- update_task (write, gated) ---------------------------------------------------------

Action = Literal["complete", "reopen", "snooze"]
UPSTREAM = {"complete": "complete", "reopen": "uncomplete", "snooze": "snooze"}


class UpdateTaskInput(Input):
    uid: TaskUid
    action: Annotated[Action, Field()]
    until: Annotated[date | None, Field(description="Snooze to this date.")] = None

    @model_validator(mode="after")
    def _until(self) -> UpdateTaskInput:
        if self.action == "snooze" and self.until is None:
            raise ValueError("snooze needs until, a future date such as 2026-12-31")
        if self.action != "snooze" and self.until is not None:
            raise ValueError("until goes with action='snooze' only")
        if self.until is not None and self.until <= today():
            raise ValueError("until must be a date after today")
        return self


async def update_task(req: UpdateTaskInput, deps: WriteDeps) -> WritePlan:
    t = await _task_or_refuse(req.uid, deps)
    title = visible(text(t.get("display_value")) or req.uid, NAME_CAP)
    target: TaskStatus = {"complete": "done", "reopen": "open", "snooze": "snoozed"}[req.action]  # type: ignore[assignment]

    async def read() -> dict[str, Any]:
        task = await _task_or_refuse(req.uid, deps, fresh=True)
        return {
            "status": status_of(task),
            "due": text(task.get("date")),
            "snoozed_until": text(task.get("snoozed_until")),
            "last_updated": text(task.get("last_updated")),
        }

    def diff(state: dict[str, Any]) -> list[Change]:
        if req.action == "snooze":
            if state["status"] == "done":
                raise Refusal(f"Task '{title}' is done; reopen it before snoozing it.")
            if day(state["snoozed_until"]) == req.until:
                return []
            return [Change("status", "status", f"{state['status']} (due {state['due']})", f"snoozed until {req.until}")]
        if state["status"] == target or (req.action == "reopen" and state["status"] != "done"):
            return []
        return [Change("status", "status", state["status"], target)]

    async def apply(_: list[Change], __: Any) -> None:
        params = {"until": req.until.isoformat()} if req.until else None
        await deps.client.task_action(req.uid, UPSTREAM[req.action], params)

    def undo(applied: list[Change]) -> dict[str, Any] | None:
        if req.action == "complete":
            return {"uid": req.uid, "action": "reopen"}
        if req.action == "reopen":
            return {"uid": req.uid, "action": "complete"}
        return None  # sheepCRM has no un-snooze; snoozing again to an earlier date is the nearest

    return WritePlan(summary=f"{req.action.capitalize()} task '{title}'", read=read, diff=diff, apply=apply, undo=undo)


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="list_tasks",
        title="List tasks",
        toolset="tasks",
        description="My (or all) tasks by status, optionally due on or before a date; soonest first.",
        input=ListTasksInput,
        output=ListTasksOutput,
        handler=list_tasks,
    ),
    ReadTool(
        name="get_task",
        title="Get task",
        toolset="tasks",
        description="One task: title, text, status, due date, assignee, subject.",
        input=GetTaskInput,
        output=Task,
        handler=get_task,
    ),
    WriteTool(
        name="update_task",
        title="Update task",
        toolset="tasks",
        description="Complete, reopen or snooze (until a date) a task. A person approves the preview; returns undo.",
        input=UpdateTaskInput,
        handler=update_task,
        destructive=False,
        idempotent=True,
    ),
]
