"""Segments: find by name, list, size, members, lookup."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sheepcrm.base import Reads
from sheepcrm_mcp.sheepcrm.scope import check_uid


class SegmentReads(Reads):
    def _segment(self, uid: str) -> str:
        return f"/segments/v2/{self.bucket}/segment/{check_uid(uid, 'segment uid')}"

    async def find_segments(self, name: str, page: int = 1, page_size: int = 50) -> Any:
        return await self._get(
            f"/segments/v2/{self.bucket}/find", "segment search", {"name": name, "page": page, "page_size": page_size}
        )

    async def all_segments(self, page: int = 1, page_size: int = 50) -> Any:
        return await self._get(f"/segments/v2/{self.bucket}/all", "segments", {"page": page, "page_size": page_size})

    async def segment_count(self, uid: str) -> Any:
        return await self._get(f"{self._segment(uid)}/count", f"size of segment {uid}")

    async def segment_members(self, uid: str, page: int = 1, page_size: int = 50, q: str | None = None) -> Any:
        return await self._get(
            f"{self._segment(uid)}/all", f"members of segment {uid}", {"page": page, "page_size": page_size, "q": q}
        )

    async def segment_lookup(self, uid: str, q: str) -> Any:
        """openapi.yaml segmentLookup: "Lookup a record within a segment using a simple single search term". Its
        `q` is typed there as a uid (schemas/uid), which contradicts that description: the term (a name or an email)
        is sent as it is, never checked as a uid."""
        return await self._get(f"{self._segment(uid)}/lookup", f"lookup in segment {uid}", {"q": q})
