"""Tasks (sheepCRM notifications): my tasks, all tasks, one task, actions on a task."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sheepcrm.base import JSON, Reads, Writes
from sheepcrm_mcp.sheepcrm.errors import InvalidRequest
from sheepcrm_mcp.sheepcrm.scope import check_uid
from sheepcrm_mcp.sheepcrm.transport import Params

TASK_ACTIONS = ("complete", "uncomplete", "snooze")
TASK_PAGE = 250  # the task lists have no `page` (2024-12 cut and 2025-02 draft): one big page, and a full one is cut


def _params(page_size: int, include_completed: bool) -> Params:
    """page_size (2024-12 cut); include_completed only when wanted (2025-02 draft, default false)."""
    return {"page_size": page_size, "include_completed": "true" if include_completed else None}


class TaskReads(Reads):
    def _task(self, uid: str) -> str:
        return f"/notifications/v2/{self.bucket}/task/{check_uid(uid, 'task uid')}"

    async def my_tasks(self, page_size: int = TASK_PAGE, include_completed: bool = False) -> Any:
        return await self._get(
            f"/notifications/v2/{self.bucket}/tasks", "my tasks", _params(page_size, include_completed)
        )

    async def all_tasks(self, page_size: int = TASK_PAGE, include_completed: bool = False) -> Any:
        return await self._get(
            f"/notifications/v2/{self.bucket}/tasks/all", "all tasks", _params(page_size, include_completed)
        )

    async def task(self, uid: str, *, fresh: bool = False) -> JSON:
        result: JSON = await self._get(self._task(uid), f"task {uid}", fresh=fresh)
        return result


class TaskWrites(TaskReads, Writes):
    async def task_action(self, uid: str, action: str) -> Any:
        """complete, uncomplete or snooze: no parameters (snooze is +24 h, or 24 h from now if overdue)."""
        if action not in TASK_ACTIONS:
            raise InvalidRequest(f"action must be one of {', '.join(TASK_ACTIONS)}")
        return await self._write("PUT", f"{self._task(uid)}/{action}", f"{action} of task {uid}")
