"""Search: global search, exact person search, sheepCRM's help articles."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sheepcrm.base import Reads

PERSON_FIELDS = frozenset({"title", "first_name", "last_name", "email", "date_of_birth", "postal_code"})


class SearchReads(Reads):
    async def search(self, q: str) -> Any:
        return await self._get(f"/search/v2/{self.bucket}", "search", {"q": q})

    async def search_people(self, **fields: str | None) -> Any:
        params = {k: v for k, v in fields.items() if k in PERSON_FIELDS}
        return await self._get(f"/search/v2/{self.bucket}/person", "person search", params)

    async def search_help(self, q: str, limit: int = 10, include_text: bool = False) -> Any:
        return await self._get(
            f"/search/v2/{self.bucket}/help",
            "help search",
            {"q": q, "limit": limit, "include_text": "true" if include_text else None},
        )
