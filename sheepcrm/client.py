"""The composed clients: `SheepReader` can only read; `SheepClient` reads and writes.

Both share one `Http` (connection pool, cache, breaker). Read tools are handed a reader, so
a read tool cannot write even by mistake; only the confirmation gate's write path holds a
`SheepClient`.
"""

from __future__ import annotations

import httpx

from sheepcrm_mcp.sheepcrm.account import AccountReads
from sheepcrm_mcp.sheepcrm.config import ClientConfig
from sheepcrm_mcp.sheepcrm.contacts import ContactReads, ContactWrites
from sheepcrm_mcp.sheepcrm.events import EventReads, EventWrites
from sheepcrm_mcp.sheepcrm.history import HistoryReads
from sheepcrm_mcp.sheepcrm.search import SearchReads
from sheepcrm_mcp.sheepcrm.segments import SegmentReads
from sheepcrm_mcp.sheepcrm.tasks import TaskReads, TaskWrites
from sheepcrm_mcp.sheepcrm.transport import CircuitBreaker, Http


class SheepReader(AccountReads, SearchReads, ContactReads, EventReads, TaskReads, SegmentReads, HistoryReads):
    """Every read endpoint the tools use, scoped to one bucket."""


class SheepClient(SheepReader, ContactWrites, EventWrites, TaskWrites):
    """Every read and write endpoint. Owns the HTTP connection pool; close it with `aclose`."""

    def __init__(self, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = Http(config, transport=transport)
        super().__init__(self.http)

    @property
    def reader(self) -> SheepReader:
        """A read-only view sharing this client's connections, cache and breaker."""
        return SheepReader(self.http)

    @property
    def breaker(self) -> CircuitBreaker:
        return self.http.breaker

    @property
    def calls(self) -> int:
        return self.http.calls

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> SheepClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
