"""The key and the bucket: v1 ping and bucket description."""

from __future__ import annotations

from sheepcrm_mcp.sheepcrm.base import JSON, Reads


class AccountReads(Reads):
    async def ping(self) -> JSON:
        result: JSON = await self._get("/api/v1/ping/", "ping", api="v1", fresh=True)
        return result

    async def bucket_info(self) -> JSON:
        result: JSON = await self._get(f"/api/v1/{self.bucket}/", "bucket check", api="v1", fresh=True)
        return result
