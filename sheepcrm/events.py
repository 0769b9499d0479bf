"""Events (sheepCRM "bookings"): lists by state, one event, tickets, attendance."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sheepcrm.base import JSON, Reads, Writes
from sheepcrm_mcp.sheepcrm.errors import InvalidRequest
from sheepcrm_mcp.sheepcrm.scope import RecordUri, check_uid

EVENT_STATES = ("current", "future", "past", "running", "draft", "all")


class EventReads(Reads):
    def _booking(self, uid: str) -> str:
        return f"/events/v2/{self.bucket}/booking/{check_uid(uid, 'event uid')}"

    async def events(self, state: str, page: int = 1, page_size: int = 250) -> Any:
        if state not in EVENT_STATES:
            raise InvalidRequest(f"state must be one of {', '.join(EVENT_STATES)}")
        return await self._get(
            f"/events/v2/{self.bucket}/bookings/{state}", f"{state} events", {"page": page, "page_size": page_size}
        )

    async def event(self, uid: str, *, fresh: bool = False) -> JSON:
        result: JSON = await self._get(self._booking(uid), f"event {uid}", fresh=fresh)
        return result

    async def event_summary(self, uid: str) -> JSON:
        """Reduced fields, "for accounts without access to the full event details" (openapi.yaml)."""
        result: JSON = await self._get(f"{self._booking(uid)}/summary", f"event summary {uid}")
        return result

    async def event_tickets(self, uid: str) -> Any:
        return await self._get(f"{self._booking(uid)}/available_tickets", f"tickets of event {uid}")

    async def attendance(self, uid: str, *, fresh: bool = False) -> Any:
        return await self._get(f"{self._booking(uid)}/attendance/all", f"attendance of event {uid}", fresh=fresh)

    async def person_orders(self, uid: str) -> Any:
        """openapi.yaml getEventOrdersForContact: {contact_uri, orders: [{booking_display, booking_uri}]}."""
        return await self._get(
            f"/events/v2/{self.bucket}/person/{check_uid(uid, 'person uid')}/orders", f"event orders of person {uid}"
        )


class EventWrites(EventReads, Writes):
    async def set_attendance(self, uid: str, person: RecordUri, status: str) -> JSON:
        result: JSON = await self._write(
            "PUT",
            f"{self._booking(uid)}/attendance",
            f"attendance of {person} at event {uid}",
            {"person_uri": str(person), "status": status},
        )
        return result
