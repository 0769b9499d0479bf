"""Search: global search, exact person search, sheepCRM's help articles."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sheepcrm.base import Reads

PERSON_FIELDS = frozenset({"title", "first_name", "last_name", "email", "date_of_birth", "postal_code"})
# The fields sheepCRM's person search matches on, and nothing less (EVIDENCE.md, person search: "email; first+last+
# date of birth; first+last+postcode; title+last+postcode"); other combinations are answered 404.
PERSON_MATCHES = (
    frozenset({"email"}),
    frozenset({"first_name", "last_name", "date_of_birth"}),
    frozenset({"first_name", "last_name", "postal_code"}),
    frozenset({"title", "last_name", "postal_code"}),
)


def person_matchable(**fields: str | None) -> bool:
    """Whether the given fields hold one of the combinations sheepCRM's person search matches on."""
    given = {k for k, v in fields.items() if v}
    return any(match <= given for match in PERSON_MATCHES)


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
