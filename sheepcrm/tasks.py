"""Tasks (sheepCRM notifications): my tasks, all tasks, one task, actions on a task."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sheepcrm.base import JSON, Reads, Writes
from sheepcrm_mcp.sheepcrm.errors import InvalidRequest
from sheepcrm_mcp.sheepcrm.scope import check_uid
from sheepcrm_mcp.sheepcrm.transport import Params

TASK_ACTIONS = ("complete", "uncomplete", "snooze")


class TaskReads(Reads):
    def _task(self, uid: str) -> str:
        return f"/notifications/v2/{self.bucket}/task/{check_uid(uid, 'task uid')}"

    async def my_tasks(self, page_size: int = 250) -> Any:
        return await self._get(f"/notifications/v2/{self.bucket}/tasks", "my tasks", {"page_size": page_size})

    async def all_tasks(self, page_size: int = 250) -> Any:
        return await self._get(f"/notifications/v2/{self.bucket}/tasks/all", "all tasks", {"page_size": page_size})

    async def task(self, uid: str, *, fresh: bool = False) -> JSON:
        result: JSON = await self._get(self._task(uid), f"task {uid}", fresh=fresh)
        return result


class TaskWrites(TaskReads, Writes):
    async def task_action(self, uid: str, action: str, params: Params | None = None) -> JSON:
        if action not in TASK_ACTIONS:
            raise InvalidRequest(f"action must be one of {', '.join(TASK_ACTIONS)}")
        result: JSON = await self._write("PUT", f"{self._task(uid)}/{action}", f"{action} of task {uid}", params)
        return result
