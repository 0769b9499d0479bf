"""The two kinds of endpoint group: reads see only the GET path; writes add the send-once path."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sheepcrm.transport import Api, Created, Http, Method, Params

JSON = dict[str, Any]


class Reads:
    """Base of every read group. It holds Http.get only, so a reader cannot write."""

    def __init__(self, http: Http) -> None:
        self._fetch = http.get
        self.bucket = http.config.bucket

    async def _get(
        self, path: str, what: str, params: Params | None = None, *, api: Api = "v2", fresh: bool = False
    ) -> Any:
        return await self._fetch(path, what, params, api=api, fresh=fresh)


class Writes(Reads):
    """Base of every write group: adds Http.write (sent once, never retried)."""

    def __init__(self, http: Http) -> None:
        super().__init__(http)
        self._send = http.write
        self._post_new = http.create

    async def _write(
        self, method: Method, path: str, what: str, params: Params | None = None, body: Any = None,
        *, api: Api = "v2",
    ) -> Any:
        return await self._send(method, path, what, params, body, api=api)

    async def _create(self, path: str, what: str, body: Any) -> Created:
        return await self._post_new(path, what, body, api="v1")
