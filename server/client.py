"""SheepClient: the one async HTTP client for sheepCRM (v2 and the v1 calls used).

Reads (GET) retry on 429/500/502/503/504, timeouts and connection errors with capped,
jittered backoff that honours Retry-After, within a time budget; a small circuit
breaker fails fast while the upstream is down. Writes are sent exactly once: on an
unknown outcome the caller (the gate) reads back to learn what happened.
The API key lives only in the Authorization header; no message or log contains it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

import anyio
import httpx
import stamina

from server import __version__
from server.config import Settings
from server.scope import CONTACT_TYPES, RecordUri, check_uid

log = logging.getLogger("sheepcrm_mcp.client")
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

JSON = dict[str, Any]
Params = Mapping[str, str | int | float | bool | None]
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})  # GETs only; a read is safe to repeat
EVENT_STATES = ("current", "future", "past", "running", "draft", "all")
TASK_ACTIONS = ("complete", "uncomplete", "snooze")


class SheepError(Exception):
    """Base of every upstream failure; the message says what a person can do about it."""

    status: int | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(SheepError):
    """The key was refused (401/403)."""


class NotFoundError(SheepError):
    """404: no such record, or (sheepCRM's v1 habit) credentials it does not accept."""


class ConflictError(SheepError):
    """409: credentials and request are fine but the data values clash."""


class BadRequestError(SheepError):
    """400/422: sheepCRM rejected the request's values."""


class RateLimitedError(SheepError):
    """429 that outlasted the retry budget."""


class UpstreamError(SheepError):
    """5xx, a broken connection or an unreadable answer."""


class UpstreamTimeout(UpstreamError):
    """No answer within the timeout."""


class CircuitOpenError(UpstreamError):
    """Recent calls failed; calls fail fast until the cool-down ends."""


class _Retryable(Exception):
    def __init__(self, error: SheepError, wait: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class CircuitBreaker:
    """Opens after `threshold` consecutive upstream failures; lets one call through after `cooldown`."""

    def __init__(self, threshold: int = 5, cooldown: float = 10.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None

    def check(self) -> None:
        if self.opened_at is None:
            return
        remaining = self.cooldown - (time.monotonic() - self.opened_at)
        if remaining > 0:
            raise CircuitOpenError(
                f"sheepCRM failed {self.failures} times in a row; not calling it for another "
                f"{remaining:.0f}s. Try again shortly; nothing was changed."
            )
        self.opened_at = None  # half-open: let this call probe

    def record(self, ok: bool) -> None:
        if ok:
            self.failures = 0
            self.opened_at = None
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("error_detail", "error", "message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])[:200]
    return ""


def error_for(response: httpx.Response, what: str, write: bool) -> SheepError:
    """Map an upstream status to an exception whose message a person can act on."""
    status = response.status_code
    detail = _error_detail(response)
    suffix = f" (sheepCRM said: {detail})" if detail else ""
    if status in (401, 403):
        return AuthError(
            f"sheepCRM refused the API key for {what} (HTTP {status}). Check SHEEPCRM_API_KEY "
            "and that the key's user may use this bucket; `sheepcrm-mcp doctor` checks both.",
            status,
        )
    if status == 404:
        return NotFoundError(
            f"{what}: not found{suffix}. sheepCRM also answers 404 when it does not accept the "
            "credentials, so if records you know exist are 'not found', run `sheepcrm-mcp doctor`.",
            status,
        )
    if status == 409:
        return ConflictError(
            f"{what}: sheepCRM reported a data conflict (HTTP 409){suffix}. The request was understood "
            "but clashes with the stored data; nothing was changed by this call.",
            status,
        )
    if status in (400, 422):
        return BadRequestError(f"{what}: sheepCRM rejected the request{suffix} (HTTP {status}).", status)
    if status == 429:
        return RateLimitedError(
            f"{what}: sheepCRM is rate limiting this key (HTTP 429). Wait a minute and try again.", status
        )
    outcome = " The change may or may not have been applied." if write else ""
    return UpstreamError(f"{what}: sheepCRM failed (HTTP {status}).{outcome}", status)


class SheepClient:
    """Typed calls for every upstream endpoint the tools use, scoped to one bucket."""

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        settings.require_credentials()
        assert settings.api_key is not None
        self.settings = settings
        self.bucket = settings.bucket
        self._transport = transport
        self._client: httpx.AsyncClient | None = None  # made on first use: see _http
        self._limit = anyio.CapacityLimiter(settings.max_concurrency)
        self._cache: dict[str, tuple[float, Any]] = {}
        self.breaker = CircuitBreaker()
        self.calls = 0  # requests sent, for tests and benchmarks

    @property
    def _http(self) -> httpx.AsyncClient:
        """The httpx client, made on first use: building it loads the TLS trust store (~30 ms), which
        would otherwise delay the server's first answer (initialize) at start-up."""
        if self._client is None:
            s = self.settings
            assert s.api_key is not None
            self._client = httpx.AsyncClient(
                headers={
                    "Authorization": f"Bearer {s.api_key.get_secret_value()}",
                    "User-Agent": f"sheepcrm-mcp/{__version__}",
                    "Accept": "application/json",
                },
                timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
                limits=httpx.Limits(max_connections=s.max_concurrency, max_keepalive_connections=s.max_concurrency),
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def __aenter__(self) -> SheepClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- transport -------------------------------------------------------------------

    def _url(self, api: Literal["v1", "v2"], path: str) -> str:
        base = self.settings.v1_base_url if api == "v1" else self.settings.base_url
        return base + path

    async def _send(self, method: str, url: str, what: str, params: Params | None, body: Any) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        async with self._limit:
            self.calls += 1
            try:
                return await self._http.request(method, url, params=clean, json=body)
            except httpx.TimeoutException:
                raise UpstreamTimeout(
                    f"{what}: sheepCRM did not answer within {self.settings.timeout:g}s."
                    + (" The change may or may not have been applied." if method != "GET" else "")
                ) from None
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    f"{what}: could not talk to sheepCRM ({type(exc).__name__})."
                    + (" The change may or may not have been applied." if method != "GET" else "")
                ) from None

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(f"{what}: sheepCRM sent a reply that is not JSON.") from None

    async def get(
        self,
        path: str,
        what: str,
        params: Params | None = None,
        *,
        api: Literal["v1", "v2"] = "v2",
        fresh: bool = False,
    ) -> Any:
        """GET with retries, the circuit breaker and the short read cache."""
        url = self._url(api, path)
        key = f"{url}?{sorted((k, str(v)) for k, v in (params or {}).items() if v is not None)}"
        ttl = self.settings.cache_ttl
        if ttl and not fresh and (hit := self._cache.get(key)) and hit[0] > time.monotonic():
            return hit[1]
        self.breaker.check()
        s = self.settings

        def backoff(exc: Exception) -> bool | float:
            if not isinstance(exc, _Retryable):
                return False
            if exc.wait is not None:
                return min(exc.wait, s.retry_wait_max)
            return True

        try:
            async for attempt in stamina.retry_context(
                on=backoff,
                attempts=s.retry_attempts,
                timeout=s.retry_budget,
                wait_initial=0.2,
                wait_max=s.retry_wait_max,
                wait_jitter=0.5,
            ):
                with attempt:
                    try:
                        response = await self._send("GET", url, what, params, None)
                    except UpstreamError as exc:
                        raise _Retryable(exc, None) from None
                    if response.status_code in RETRY_STATUSES:
                        raise _Retryable(error_for(response, what, False), _retry_after(response))
        except _Retryable as exc:
            # The breaker counts calls, not attempts; being rate limited is not being down.
            self.breaker.record(isinstance(exc.error, RateLimitedError))
            raise exc.error from None
        self.breaker.record(response.status_code < 500)
        if response.status_code >= 400:
            raise error_for(response, what, False)
        data = self._json(response, what)
        if ttl:
            self._cache[key] = (time.monotonic() + ttl, data)
        return data

    async def write(
        self,
        method: Literal["PUT", "POST"],
        path: str,
        what: str,
        params: Params | None = None,
        body: Any = None,
        *,
        api: Literal["v1", "v2"] = "v2",
    ) -> Any:
        """Send a write exactly once. Never retried: the gate decides what to do on failure."""
        self.breaker.check()
        self._cache.clear()
        response = await self._send(method, self._url(api, path), what, params, body)
        self.breaker.record(response.status_code < 500)
        if response.status_code >= 400:
            raise error_for(response, what, True)
        return self._json(response, what) if response.content else {}

    # ---- v1 --------------------------------------------------------------------------

    async def ping(self) -> JSON:
        result: JSON = await self.get("/api/v1/ping/", "ping", api="v1", fresh=True)
        return result

    async def bucket_info(self) -> JSON:
        result: JSON = await self.get(f"/api/v1/{self.bucket}/", "bucket check", api="v1", fresh=True)
        return result

    async def membership_by_email(self, email: str) -> JSON:
        result: JSON = await self.get(
            f"/api/v1/{self.bucket}/user/membership/",
            "membership by email",
            {"email": email, "realtime": "Y"},
            api="v1",
        )
        return result

    async def record(self, uri: RecordUri, *, fresh: bool = False) -> JSON:
        result: JSON = await self.get(f"/api/v1{uri}", f"record {uri}", api="v1", fresh=fresh)
        return result

    async def update_record(self, uri: RecordUri, fields: Mapping[str, Any]) -> JSON:
        result: JSON = await self.write("PUT", f"/api/v1{uri}", f"update of {uri}", body=dict(fields), api="v1")
        return result

    # ---- search ----------------------------------------------------------------------

    async def search(self, q: str) -> JSON:
        result: JSON = await self.get(f"/search/v2/{self.bucket}", "search", {"q": q})
        return result

    async def search_people(self, **fields: str | None) -> JSON:
        allowed = {"title", "first_name", "last_name", "email", "date_of_birth", "postal_code"}
        params = {k: v for k, v in fields.items() if k in allowed}
        result: JSON = await self.get(f"/search/v2/{self.bucket}/person", "person search", params)
        return result

    async def search_help(self, q: str, limit: int = 10, include_text: bool = False) -> JSON:
        result: JSON = await self.get(
            f"/search/v2/{self.bucket}/help",
            "help search",
            {"q": q, "limit": limit, "include_text": "true" if include_text else None},
        )
        return result

    # ---- contacts --------------------------------------------------------------------

    def _contact(self, uri: RecordUri) -> str:
        if uri.bucket != self.bucket or uri.type not in CONTACT_TYPES:
            raise ValueError(f"{uri} is not a contact of bucket {self.bucket}")
        return f"/api/v2{uri}"

    async def contact_summary(self, uri: RecordUri) -> JSON:
        result: JSON = await self.get(f"{self._contact(uri)}summary", f"contact {uri}")
        return result

    async def contact_communications(self, uri: RecordUri) -> JSON:
        result: JSON = await self.get(f"{self._contact(uri)}communications/detail", f"contact details of {uri}")
        return result

    async def contact_personal(self, uri: RecordUri) -> JSON:
        result: JSON = await self.get(f"{self._contact(uri)}personal/detail", f"personal details of {uri}")
        return result

    async def memberships(self, uri: RecordUri) -> JSON:
        result: JSON = await self.get(f"{self._contact(uri)}membership/all", f"memberships of {uri}")
        return result

    async def record_audit(self, uri: RecordUri, limit: int = 250, since_days: int = 180) -> Any:
        return await self.get(
            f"/api/v2/{self.bucket}/{uri.type}/{check_uid(uri.uid)}/audit",
            f"history of {uri}",
            {"limit": limit, "since_days": since_days},
        )

    # ---- events ----------------------------------------------------------------------

    def _booking(self, uid: str) -> str:
        return f"/events/v2/{self.bucket}/booking/{check_uid(uid, 'event uid')}"

    async def events(self, state: str, page: int = 1, page_size: int = 250) -> Any:
        if state not in EVENT_STATES:
            raise ValueError(f"state must be one of {', '.join(EVENT_STATES)}")
        return await self.get(
            f"/events/v2/{self.bucket}/bookings/{state}", f"{state} events", {"page": page, "page_size": page_size}
        )

    async def event(self, uid: str, *, fresh: bool = False) -> JSON:
        result: JSON = await self.get(self._booking(uid), f"event {uid}", fresh=fresh)
        return result

    async def event_summary(self, uid: str) -> JSON:
        result: JSON = await self.get(f"{self._booking(uid)}/summary", f"summary of event {uid}")
        return result

    async def event_tickets(self, uid: str) -> Any:
        return await self.get(f"{self._booking(uid)}/available_tickets", f"tickets of event {uid}")

    async def attendance(self, uid: str, *, fresh: bool = False) -> Any:
        return await self.get(f"{self._booking(uid)}/attendance/all", f"attendance of event {uid}", fresh=fresh)

    async def set_attendance(self, uid: str, person: RecordUri, status: str) -> JSON:
        result: JSON = await self.write(
            "PUT",
            f"{self._booking(uid)}/attendance",
            f"attendance of {person} at event {uid}",
            {"person_uri": str(person), "status": status},
        )
        return result

    # ---- tasks -----------------------------------------------------------------------

    async def my_tasks(self, page_size: int = 250) -> Any:
        return await self.get(f"/notifications/v2/{self.bucket}/tasks", "my tasks", {"page_size": page_size})

    async def all_tasks(self, page_size: int = 250) -> Any:
        return await self.get(f"/notifications/v2/{self.bucket}/tasks/all", "all tasks", {"page_size": page_size})

    async def task(self, uid: str, *, fresh: bool = False) -> JSON:
        path = f"/notifications/v2/{self.bucket}/task/{check_uid(uid, 'task uid')}"
        result: JSON = await self.get(path, f"task {uid}", fresh=fresh)
        return result

    async def task_action(self, uid: str, action: str, params: Params | None = None) -> JSON:
        if action not in TASK_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(TASK_ACTIONS)}")
        path = f"/notifications/v2/{self.bucket}/task/{check_uid(uid, 'task uid')}/{action}"
        result: JSON = await self.write("PUT", path, f"{action} of task {uid}", params)
        return result

    # ---- segments --------------------------------------------------------------------

    def _segment(self, uid: str) -> str:
        return f"/segments/v2/{self.bucket}/segment/{check_uid(uid, 'segment uid')}"

    async def find_segments(self, name: str, page: int = 1, page_size: int = 50) -> Any:
        return await self.get(
            f"/segments/v2/{self.bucket}/find", "segment search", {"name": name, "page": page, "page_size": page_size}
        )

    async def all_segments(self, page: int = 1, page_size: int = 50) -> Any:
        return await self.get(f"/segments/v2/{self.bucket}/all", "segments", {"page": page, "page_size": page_size})

    async def segment_count(self, uid: str) -> Any:
        return await self.get(f"{self._segment(uid)}/count", f"size of segment {uid}")

    async def segment_members(self, uid: str, page: int = 1, page_size: int = 50, q: str | None = None) -> Any:
        return await self.get(
            f"{self._segment(uid)}/all", f"members of segment {uid}", {"page": page, "page_size": page_size, "q": q}
        )

    async def segment_lookup(self, uid: str, q: str) -> Any:
        return await self.get(f"{self._segment(uid)}/lookup", f"lookup in segment {uid}", {"q": q})
