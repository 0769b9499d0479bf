"""Record history (the audit trail of one record) and record names (/display)."""

from __future__ import annotations

import re
from typing import Any

from sheepcrm_mcp.sheepcrm.base import Reads
from sheepcrm_mcp.sheepcrm.scope import RecordUri, check_uid

TYPE_RE = re.compile(r"[a-z_]{1,40}", re.ASCII)


class HistoryReads(Reads):
    async def record_audit(self, uri: RecordUri, limit: int = 250, since_days: int = 180) -> Any:
        """openapi.yaml (2025-04-22): /audit/v2/{bucket}/{resource_type}/{uid}/audit (moved from /api/v2/...)."""
        return await self._get(
            f"/audit/v2/{self.bucket}/{uri.type}/{check_uid(uri.uid)}/audit",
            f"history of {uri}",
            {"limit": limit, "since_days": since_days},
        )

    async def display(self, rtype: str, uid: str) -> str | None:
        """A record's display value via /api/v2/{bucket}/{resource_type}/{uid}/display (openapi.yaml), or None."""
        if not TYPE_RE.fullmatch(rtype):
            return None
        data = await self._get(f"/api/v2/{self.bucket}/{rtype}/{check_uid(uid)}/display", f"name of {rtype} {uid}")
        value = data.get("display_value") if isinstance(data, dict) else None
        return value if isinstance(value, str) and value else None
