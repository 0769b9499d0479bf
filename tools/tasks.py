"""list_tasks, get_task and update_task."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field

from sheepcrm_mcp.server.approvals.pending import digest
from sheepcrm_mcp.server.caller import current_caller
from sheepcrm_mcp.server.errors import Refusal, or_refuse
from sheepcrm_mcp.server.paging import as_of, list_page
from sheepcrm_mcp.server.specs import Deps, Input, Output, ReadTool, ToolSpec, WriteDeps, WriteTool
from sheepcrm_mcp.server.writes import NAME_CAP, Change, WritePlan, record_label, visible
from sheepcrm_mcp.sheepcrm.tasks import TASK_PAGE
from sheepcrm_mcp.tools.common import (
    ContactRef,
    Detail,
    Paged,
    TimedListOutput,
    UidOrUri,
    an_object,
    day,
    flag,
    listed,
    moment,
    ref,
    text,
    uid_in,
    uid_or_uri,
    unreadable,
)

TaskStatus = Literal["open", "done"]
TaskUid = Annotated[UidOrUri, uid_or_uri("list_tasks(query=...)")]
TASK_TYPES = ("journal", "task")
DEFAULT_PAGE = 7  # the task lists' page_size default (2024-12 cut); no upper limit is documented


ShownStatus = Literal["open", "done", "unknown"]
UNKNOWN_STATUS = (
    "sheepCRM did not say whether {n} of these tasks are completed (no boolean `completed` value): status unknown."
)
UNDATED = (
    "The due date of {n} of these tasks could not be read (`due` shows what sheepCRM sent): they are listed because "
    "whether they are due is unknown, not no."
)
DATELESS = (
    "{n} task(s) of this list have no due date (sheepCRM sent no `date` and no `due_date` for them): neither overdue "
    "nor due by a date, so they are left out here, not counted as not due; list_tasks without overdue/due_before "
    "shows them."
)
BEFORE_CREATED = "before its creation (sheepCRM sends none)"
TWO_DUES = (
    "{n} task(s) here carry two due dates that disagree (`date`, of the 2024-12 cut, and `due_date`, of the 2025-02 "
    "draft; which one sheepCRM goes by is not documented): `due` shows both."
)
TWO_DUES_SPLIT = (
    " {n} of them are listed because one of the two is due by this filter and the other is not: whether they are due "
    "is unknown."
)
EARLY = (
    "{n} task(s) here were due before they were created: sheepCRM sends no due date for them (`due_date` null, "
    "which the 2025-02 draft says means a due date earlier than the creation date), so an open one is overdue."
)
NO_COMPLETED = (
    "sheepCRM's answer holds no completed task: it may not send them (include_completed is only in the 2025-02 "
    "draft), so which tasks are done is unknown here, not none."
)


def status_of(t: dict[str, Any]) -> ShownStatus:
    # No document names a field that records a snooze: a snoozed task is an open task with a later due date.
    # A task that does not say whether it is completed (no value, or not a boolean: "false") is unknown, never
    # "open" or "done".
    done = flag(t.get("completed"))
    return "unknown" if done is None else "done" if done else "open"


def due_of(t: dict[str, Any]) -> str | None:
    """`date` (2024-12 cut) or `due_date` (2025-02 draft; null when earlier than the creation date)."""
    return text(t.get("date")) or text(t.get("due_date"))


def due_dates(t: dict[str, Any]) -> list[tuple[str, str]]:
    """The due dates a task carries, by key: `date` (2024-12 cut) and `due_date` (2025-02 draft), one of them when
    they agree. Two that disagree are both kept: which one sheepCRM goes by is not documented."""
    found = [(k, v) for k in ("date", "due_date") if (v := text(t.get(k)))]
    if len(found) == 2 and (found[0][1] == found[1][1] or (
            (m := moment(found[0][1])) is not None and m == moment(found[1][1]))):
        return found[:1]
    return found


def shown_due(t: dict[str, Any]) -> str | None:
    """The due date as a task shows it: both, named by key, when `date` and `due_date` disagree."""
    dues = due_dates(t)
    if len(dues) > 1:
        return " / ".join(f"{v} ({k})" for k, v in dues) + ": sheepCRM's two due dates disagree"
    return dues[0][1] if dues else BEFORE_CREATED if due_before_created(t) else None


def due_before_created(t: dict[str, Any]) -> bool:
    """The draft's shape: `due_date` sent as null, which it says means the due date was before the creation date
    (not "no due date": a task with no due information at all sends neither key)."""
    return due_of(t) is None and "due_date" in t and t["due_date"] is None


class TaskBrief(Output):
    uid: str
    uri: str | None = None
    title: str
    status: ShownStatus
    due: str | None = None
    assigned_to: str | None = None
    about: str | None = Field(None, description="Name of the record the task is about.")
    about_uri: str | None = None


class Task(TaskBrief):
    text: str | None = None
    created: str | None = None
    last_updated: str | None = None


def brief(t: dict[str, Any]) -> TaskBrief:
    return TaskBrief(
        uid=text(t.get("uid")) or "",
        uri=text(t.get("uri")),
        title=text(t.get("display_value")) or text(t.get("title")) or "(untitled)",
        status=status_of(t),
        due=shown_due(t),
        assigned_to=text(t.get("assigned_to_display")) or text(t.get("allocated_to_display"))
        or ref(t.get("assigned_to")) or ref(t.get("allocated_to")),
        about=text(t.get("context_display")),
        about_uri=ref(t.get("context")),
    )


# ---- list_tasks -------------------------------------------------------------------------


class ListTasksInput(Paged):
    scope: Annotated[Literal["mine", "all"] | None, Field(description="Default mine; all with about.")] = None
    status: Annotated[Literal["open", "done", "any"], Field()] = "open"
    due_before: Annotated[date | None, Field()] = None
    overdue: Annotated[bool | None, Field(description="Open, due before now.")] = None
    about: Annotated[ContactRef | None, Field(description="Contact uri.")] = None
    query: Annotated[str | None, Field(max_length=100, description="Words in the title.")] = None


class ListTasksOutput(TimedListOutput):
    tasks: list[TaskBrief]


def _one_task(data: Any) -> bool:
    """The 2024-12 cut types the list's `tasks` as one object."""
    return isinstance(data, dict) and isinstance(data.get("tasks"), dict)


async def list_tasks(req: ListTasksInput, deps: Deps) -> ListTasksOutput:
    completed = req.status != "open"
    scope = req.scope or ("all" if req.about else "mine")
    fetch = deps.client.my_tasks if scope == "mine" else deps.client.all_tasks
    data = await fetch(TASK_PAGE, include_completed=completed)
    found = listed(data, "the task list", "tasks", single=("uid",)) if not _one_task(data) else [data["tasks"]]
    pairs = [(brief(t), t) for t in found if text(t.get("record_state")) != "deleted"]
    tasks = [b for b, _ in pairs]
    # Due before it was created (the draft's null due_date): overdue, and due by any date from its creation on.
    early = {id(b): moment(t.get("created")) for b, t in pairs if b.due == BEFORE_CREATED}
    # Two due dates that disagree: a due filter is passed when both pass, failed when both fail, and otherwise
    # unknown (kept, and said).
    two = {id(b): [moment(v) for _, v in dues] for b, t in pairs if len(dues := due_dates(t)) > 1}
    split: set[int] = set()

    def both(t: TaskBrief, test: Callable[[datetime], bool]) -> bool:
        said = {test(m) if m is not None else None for m in two[id(t)]}
        if said == {False}:
            return False
        if said != {True}:
            split.add(id(t))
        return True
    if req.status != "any":
        tasks = [t for t in tasks if t.status in (req.status, "unknown")]  # unknown is shown, never dropped
    # A due date that cannot be read, or a status sheepCRM does not say, is kept and said, never read as "not due".
    undated = [t for t in tasks if t.due is not None and id(t) not in early and id(t) not in two
               and moment(t.due) is None]
    # A task without a due date is neither due nor not: left out of a due list, and counted in the note.
    dateless = sum(1 for t in tasks if t.due is None and t.status in ("open", "unknown")) if (
        req.due_before or req.overdue) else 0
    if req.due_before:
        last = req.due_before
        tasks = [t for t in tasks if (both(t, lambda m: m.date() <= last) if id(t) in two else
            t in undated or ((d := day(t.due)) is not None and d <= last)
            or (id(t) in early and ((c := early[id(t)]) is None or c.date() <= last)))]
    if req.overdue:
        now = datetime.now(UTC)
        tasks = [t for t in tasks if t.status in ("open", "unknown") and (
            both(t, lambda m: m < now) if id(t) in two
            else t in undated or id(t) in early or ((m := moment(t.due)) is not None and m < now))]
    if req.about:
        about = req.about.rstrip("/") + "/"
        tasks = [t for t in tasks if t.about_uri == about]
    if req.query:
        words = req.query.lower().split()
        tasks = [t for t in tasks if all(w in t.title.lower() for w in words)]
    tasks.sort(key=lambda t: "" if id(t) in early else t.due or "9999")
    key = f"tasks:{scope}:{req.status}:{req.due_before}:{req.overdue}:{req.about}:{req.query}"
    # Asked for completed tasks and none came: sheepCRM may ignore include_completed, so "none done" is not known.
    blind = completed and not any(t.get("completed") is True for t in found)
    items, envelope = list_page(
        tasks, req.limit, req.cursor, key,
        NO_COMPLETED if blind else _none_match(req, scope),
        cut=_cut(data, len(found)),
    )
    if blind and items:
        envelope["note"] = " ".join(filter(None, [NO_COMPLETED, envelope["note"]]))
    if scope == "mine" and (caller := current_caller()) is not None:
        shared = (
            f"'mine' means the tasks of the sheepCRM user this server's {caller.profile} key belongs to, shared by "
            f"everyone using the {caller.profile} profile: not the tasks of the signed-in person."
        )
        envelope["note"] = " ".join(filter(None, [shared, envelope["note"]]))
    if unknown := sum(t.status == "unknown" for t in tasks):
        envelope["note"] = " ".join(filter(None, [UNKNOWN_STATUS.format(n=unknown), envelope["note"]]))
    if (req.due_before or req.overdue) and (odd := sum(t in undated for t in tasks)):
        envelope["note"] = " ".join(filter(None, [UNDATED.format(n=odd), envelope["note"]]))
    if dateless:
        envelope["note"] = " ".join(filter(None, [DATELESS.format(n=dateless), envelope["note"]]))
    if twice := sum(id(t) in two for t in tasks):
        unsure = sum(id(t) in split for t in tasks)
        said = TWO_DUES.format(n=twice) + (TWO_DUES_SPLIT.format(n=unsure) if unsure else "")
        envelope["note"] = " ".join(filter(None, [said, envelope["note"]]))
    if shown := sum(id(t) in early for t in tasks):
        envelope["note"] = " ".join(filter(None, [EARLY.format(n=shown), envelope["note"]]))
    return ListTasksOutput(tasks=items, as_of=as_of(), **envelope)


def _none_match(req: ListTasksInput, scope: str) -> str:
    """"No tasks match", with only the widenings the caller has not made already."""
    tries = [f"{k}='{v}'" for k, v, now in (("status", "any", req.status), ("scope", "all", scope)) if now != v]
    if req.overdue or req.due_before or req.query:
        tries.append("fewer filters")
    return "No tasks match" + (f"; try {' or '.join(tries)}." if tries else ".")


def _cut(data: Any, sent: int) -> str | None:
    """Why the task list may not be everything: sheepCRM's `total` (2025-02 draft) when it sends one. Without one
    (the 2024-12 list), the size of sheepCRM's page is not known (it documents only a default of DEFAULT_PAGE and no
    upper limit, and may send fewer than asked): an answer of DEFAULT_PAGE tasks or more may be a full page, so the
    list may be cut short, never "all". The lists have no next page."""
    total = data.get("total") if isinstance(data, dict) else None
    if isinstance(total, int) and not isinstance(total, bool):
        if total > sent:
            return f"sheepCRM has {total} tasks in this list but sent {sent} and offers no next page: the list is cut."
        return None
    if sent >= TASK_PAGE:
        return f"sheepCRM sent a full page of {TASK_PAGE} tasks and offers no next page, so the list may be cut short."
    if sent >= DEFAULT_PAGE or _one_task(data):
        return (
            f"sheepCRM sent {sent} task(s) and no total, and its page size is not known (it may send fewer than "
            f"asked for): there may be more tasks than these, and no next page is offered."
        )
    return None


# ---- get_task ---------------------------------------------------------------------------


class GetTaskInput(Input):
    uid: TaskUid
    detail: Detail = "concise"


TASK_KEYS = ("uid", "display_value", "title", "completed", "date", "due_date")  # the task item's names (both cuts)


async def _task_or_refuse(uid: str, deps: Deps, fresh: bool = False) -> dict[str, Any]:
    """The task; an answer that is not an object holding any of a task's keys could not be read (never a task
    "(untitled)" of unknown status)."""
    task = an_object(await or_refuse(
        deps.client.task(uid, fresh=fresh),
        f"No task with uid {uid!r}. Find tasks with list_tasks (scope='all', status='any').",
    ), "the task")
    if not any(k in task for k in TASK_KEYS):
        raise unreadable("the task", task, f"a task object (any of {', '.join(TASK_KEYS)})")
    return task


async def get_task(req: GetTaskInput, deps: Deps) -> Task:
    t = await _task_or_refuse(uid_in(req.uid, deps.client.bucket, TASK_TYPES), deps)
    task = Task(**brief(t).model_dump(), text=text(t.get("text_body")))
    if req.detail == "full":
        task.created = text(t.get("created"))
        task.last_updated = text(t.get("last_updated"))
    return task


# ---- update_task (write, gated) ---------------------------------------------------------

Action = Literal["complete", "reopen", "snooze"]
UPSTREAM = {"complete": "complete", "reopen": "uncomplete", "snooze": "snooze"}


class UpdateTaskInput(Input):
    uid: TaskUid
    action: Annotated[Action, Field(description="snooze: due 24 h later (24 h from now if overdue).")]


SNOOZE = timedelta(hours=24)
ABOUT_CAP = NAME_CAP // 2
SUMMARY_ROOM = 2 * NAME_CAP - 8  # the gate cuts a summary at 2 * NAME_CAP; a little to spare for escapes
SLACK = timedelta(minutes=1)


async def update_task(req: UpdateTaskInput, deps: WriteDeps) -> WritePlan:
    uid = uid_in(req.uid, deps.client.bucket, TASK_TYPES)
    t = await _task_or_refuse(uid, deps)
    named = text(t.get("display_value")) or text(t.get("title"))
    title = visible(named or uid, NAME_CAP)
    # What a person needs to tell two same-titled tasks apart: its uid, whom it is about and when it is due. The
    # uid and the due date are never cut; subject and title share what room is left, so all fit in the summary.
    head = f"{req.action.capitalize()} task {uid} "
    due = moment(due_of(t))
    when = f"due {due:%d %b %Y %H:%M} UTC" if due else None
    room = SUMMARY_ROOM - len(head) - (len(when) + 4 if when else 0)
    about = text(t.get("context_display")) or ref(t.get("context"))
    about = visible(about, max(12, min(ABOUT_CAP, room // 3))) if about else None
    detail = ", ".join(filter(None, [f"about {about}" if about else None, when]))
    shown = record_label(uid, visible(named, max(12, room - len(detail) - 2)) if named else None)
    target: TaskStatus = "done" if req.action == "complete" else "open"
    # sheepCRM's snooze takes no parameters: "+24 hours, or 24 hours from now if overdue", and which field moves is
    # unstated (EVIDENCE.md). The preview shows the due date it is to reach; the outcome is judged by the task read
    # back against the task read first: a due date elsewhere, or other keys changed, is "applied differently".
    snoozed_due: datetime | None = None
    first: dict[str, Any] | None = None

    async def read() -> dict[str, Any]:
        task = await _task_or_refuse(uid, deps, fresh=True)
        return {"status": status_of(task), "due": due_of(task), "last_updated": text(task.get("last_updated")),
                "keys": {str(k): digest(v)[:16] for k, v in task.items()}}  # each key's value, by its digest only

    def diff(state: dict[str, Any]) -> list[Change]:
        nonlocal snoozed_due, first
        if req.action == "snooze":
            if state["status"] == "done":
                raise Refusal(f"Task '{title}' is done; reopen it before snoozing it.")
            due = moment(state["due"])
            if first is None:
                first = state
                snoozed_due = max(due or datetime.now(UTC), datetime.now(UTC)) + SNOOZE
            assert snoozed_due is not None
            if due is not None and abs(due - snoozed_due) <= SLACK:
                return []  # where the snooze was to put it (a due date elsewhere is read back as it is)
            now = state["due"]
            before, after = first["keys"], state["keys"]
            moved = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
            if now == first["due"] and moved:  # the due date stayed, other keys did not: said, never "nothing"
                now = f"{now or '(no due date)'} (due date unchanged; sheepCRM changed {', '.join(moved[:8])})"
            return [Change("due", "due", now, f"{snoozed_due:%Y-%m-%d %H:%M} UTC (snoozed 24 hours)",
                           unread=None if due is not None else "the task's due date")]
        if state["status"] == target:
            return []
        return [Change("status", "status", state["status"], target,
                       unread="whether the task is completed" if state["status"] == "unknown" else None)]

    async def apply(_: list[Change], __: Any) -> None:
        await deps.writes.client.task_action(uid, UPSTREAM[req.action])

    def undo(applied: list[Change]) -> dict[str, Any] | None:
        if req.action == "complete":
            return {"uid": uid, "action": "reopen"}
        if req.action == "reopen":
            return {"uid": uid, "action": "complete"}
        return None  # sheepCRM has no un-snooze and no way to name a due date

    summary = f"{req.action.capitalize()} task {shown}" + (f" ({detail})" if detail else "")
    return WritePlan(
        summary=summary, read=read, diff=diff, apply=apply, undo=undo,
        no_undo="A snooze cannot be undone: sheepCRM has no un-snooze and no way to set a due date."
        if req.action == "snooze" else None,
    )


TOOLS: list[ToolSpec] = [
    ReadTool(
        name="list_tasks",
        toolset="tasks",
        description="My (or all) tasks by status, due date, overdue, contact or title words; soonest first.",
        input=ListTasksInput,
        output=ListTasksOutput,
        handler=list_tasks,
        about=(
            "mine or sheepCRM's \"all tasks\"; open, done or any; due before a date, `overdue` (open, due before "
            "now), `about` a contact, words in the title; with the time it was read; says when sheepCRM's one "
            "page may have cut the list"
        ),
    ),
    ReadTool(
        name="get_task",
        toolset="tasks",
        description="One task: title, text, status, due date, assignee, subject.",
        input=GetTaskInput,
        output=Task,
        handler=get_task,
        about="one task (uid or uri)",
    ),
    WriteTool(
        name="update_task",
        toolset="tasks",
        description="Complete, reopen or snooze (24 hours; no undo) a task. A person approves the preview; returns "
        "undo.",
        input=UpdateTaskInput,
        handler=update_task,
        about=(
            "complete, reopen, or snooze (sheepCRM moves the due date 24 hours on, or to 24 hours from now if "
            "overdue; it takes no date, and a snooze cannot be undone); the confirmation names the subject and "
            "due date"
        ),
        destructive=False,
        idempotent=False,  # a snooze moves the due date again each time
    ),
]
