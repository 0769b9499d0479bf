"""Contacts (people and organisations): v1 records, v2 summaries and details, memberships."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sheepcrm_mcp.sheepcrm.base import JSON, Reads, Writes
from sheepcrm_mcp.sheepcrm.scope import CONTACT_TYPES, RecordUri, ScopeError, parse_uri
from sheepcrm_mcp.sheepcrm.transport import Created

LISTABLE = ("person", "organisation", "member", "membership_type")
FILTER_RE = re.compile(r"[a-z_]{1,40}(__(eq|gt|gte|lt|lte|ne|startswith|startswithi))?", re.ASCII)


class ContactReads(Reads):
    def _contact(self, uri: RecordUri) -> str:
        if uri.bucket != self.bucket or uri.type not in CONTACT_TYPES:
            raise ScopeError(f"{uri} is not a contact of bucket {self.bucket}")
        return f"/api/v2{uri}"

    async def record(self, uri: RecordUri, *, fresh: bool = False) -> JSON:
        result: JSON = await self._get(f"/api/v1{uri}", f"record {uri}", api="v1", fresh=fresh)
        return result

    async def resources(
        self, rtype: str, filters: Mapping[str, str], page: int = 1, page_size: int = 25, mode: str = "AND"
    ) -> JSON:
        """v1 resource listing with field filters (v1 notes: `?first_name=james&mode=AND`, modifiers such as
        `end_date__gte`); envelope {results, total, page, pages, page_size}. The paging parameter names are the
        envelope's own (the notes name no request parameters for paging)."""
        if rtype not in LISTABLE or not all(FILTER_RE.fullmatch(k) for k in filters):
            raise ScopeError(f"cannot list {rtype!r} with filters {sorted(filters)}")
        params: dict[str, str | int] = {**filters, "mode": mode, "page": page, "page_size": page_size}
        result: JSON = await self._get(f"/api/v1/{self.bucket}/{rtype}/", f"{rtype} list", params, api="v1")
        return result

    async def connections(self, uri: RecordUri, limit: int = 500) -> JSON:
        """A contact's connections (EVIDENCE.md, connections: `GET /api/v1/{flock}/connections/?uri=<uid>` with
        `limit` -> {connections: [{connection_type, destination, ...}]}; no document describes it)."""
        if uri.bucket != self.bucket or uri.type not in CONTACT_TYPES:
            raise ScopeError(f"{uri} is not a contact of bucket {self.bucket}")
        result: JSON = await self._get(
            f"/api/v1/{self.bucket}/connections/", f"connections of {uri}", {"uri": uri.uid, "limit": limit}, api="v1"
        )
        return result

    async def membership_by_email(self, email: str) -> JSON:
        result: JSON = await self._get(
            f"/api/v1/{self.bucket}/user/membership/",
            "membership by email",
            {"email": email, "realtime": "Y"},
            api="v1",
        )
        return result

    async def contact_summary(self, uri: RecordUri) -> JSON:
        result: JSON = await self._get(f"{self._contact(uri)}summary", f"contact {uri}")
        return result

    async def memberships(self, uri: RecordUri) -> Any:
        return await self._get(f"{self._contact(uri)}membership/all", f"memberships of {uri}")


class ContactWrites(Writes):
    async def update_record(self, uri: RecordUri, fields: Mapping[str, Any]) -> JSON:
        result: JSON = await self._write("PUT", f"/api/v1{uri}", f"update of {uri}", body=dict(fields), api="v1")
        return result

    async def create_contact(self, rtype: str, fields: Mapping[str, Any]) -> Created:
        """POST /api/v1/{flock}/{person|organisation}/ with a JSON packet (v1 notes): 201, the new record's uri in
        the Location header. Sent once; the caller reads back to learn what happened."""
        if rtype not in CONTACT_TYPES:
            raise ScopeError(f"cannot create a {rtype!r}; only {', '.join(CONTACT_TYPES)}")
        return await self._create(f"/api/v1/{self.bucket}/{rtype}/", f"creation of a {rtype}", dict(fields))

    async def delete_record(self, uri: RecordUri) -> JSON:
        """DELETE /api/v1{uri} (v1 notes): sheepCRM's UI can recover the record, its API cannot."""
        if uri.bucket != self.bucket or uri.type not in CONTACT_TYPES:
            raise ScopeError(f"{uri} is not a contact of bucket {self.bucket}")
        result: JSON = await self._write("DELETE", f"/api/v1{uri}", f"deletion of {uri}", api="v1")
        return result


def located(location: str | None, bucket: str, rtype: str) -> RecordUri | None:
    """The record a create's Location header names: the v1 notes say "the URI of the new record", which may come
    as the uri itself or as its v1 address. None when absent or not a record of that type in this bucket."""
    if not location:
        return None
    path = urlsplit(location.strip()).path
    path = path.removeprefix("/api/v1")
    try:
        return parse_uri(path, bucket, (rtype,))
    except ScopeError:
        return None
