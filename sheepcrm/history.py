"""Record history (the audit trail of one record)."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sheepcrm.base import Reads
from sheepcrm_mcp.sheepcrm.scope import RecordUri, check_uid


class HistoryReads(Reads):
    async def record_audit(self, uri: RecordUri, limit: int = 250, since_days: int = 180) -> Any:
        return await self._get(
            f"/api/v2/{self.bucket}/{uri.type}/{check_uid(uri.uid)}/audit",
            f"history of {uri}",
            {"limit": limit, "since_days": since_days},
        )
