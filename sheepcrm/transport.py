"""Sending requests to sheepCRM: the one httpx client, retries, the circuit breaker and the read cache.

Reads (GET) retry on 429/500/502/503/504, timeouts and connection errors with capped,
jittered backoff that honours Retry-After, within a time budget; the breaker fails fast
while the upstream is down. Writes are sent exactly once: on an unknown outcome the caller
reads back to learn what happened. The API key lives only in the Authorization header.
"""

from __future__ import annotations

import functools
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import anyio
import certifi
import httpx
from opentelemetry import trace

from sheepcrm_mcp.sheepcrm import loopback
from sheepcrm_mcp.sheepcrm.config import ClientConfig, is_loopback
from sheepcrm_mcp.sheepcrm.errors import (
    CircuitOpenError,
    RateLimitedError,
    SheepError,
    UntrustedUpstream,
    UpstreamError,
    UpstreamTimeout,
    error_for,
    throttled,
)

log = logging.getLogger("sheepcrm_mcp.client")
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

Params = Mapping[str, str | int | float | bool | None]
Api = Literal["v1", "v2"]
Method = Literal["PUT", "POST", "DELETE"]
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})  # GETs only; a read is safe to repeat
# Told of upstream events, "rate_limited" (a 429) and "retry" (a read tried again): the server's metrics
# register here when they are on. Spans of each request go to OpenTelemetry (a no-op without a provider).
OBSERVERS: list[Callable[[str], None]] = []
_tracer = trace.get_tracer("sheepcrm-mcp")


@functools.lru_cache(maxsize=64)
def _base_host(base: str) -> str:
    return httpx.URL(base).host


_loopback_host = functools.lru_cache(maxsize=64)(is_loopback)


def _extensions(url: str) -> dict[str, Any] | None:
    """A request's extensions: to a loopback host, the trace hook that checks who serves each new connection
    before anything is sent on it (loopback.guard); to any other host, none."""
    return {"trace": loopback.guard} if _loopback_host(_host(url)) else None


def _host(url: str) -> str:
    """The URL's host, parsed once per scheme and authority (httpx's URL parsing is a hot spot per call)."""
    scheme, _, rest = url.partition("://")
    return _base_host(f"{scheme}://{rest.split('/', 1)[0]}")


def _tracing() -> bool:
    """Whether spans go anywhere: a tracer provider has been installed (SHEEPCRM_OTEL=1, or a test's)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _observe(event: str) -> None:
    for observer in OBSERVERS:
        observer(event)


class _NoCookies(httpx.Cookies):
    """Cookies that are never kept: sheepCRM is called with a key, not a session."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Client(httpx.AsyncClient):
    """httpx's client without its cookie jar: a cookie sheepCRM (or anything between) sets is neither kept nor sent
    back, and no response pays for reading Set-Cookie (~40 us of each upstream call: httpx builds urllib request and
    response stand-ins for http.cookiejar on every response)."""

    def __init__(self, **kwargs: Any) -> None:
        self._none = _NoCookies()
        super().__init__(**kwargs)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return None


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


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: Retry-After (delta-seconds or an HTTP-date), else sheepCRM's x-rate-limit-reset (seconds
    until the limit resets, EVIDENCE.md "throttling") when x-rate-limit-remaining says none are left."""
    value = response.headers.get("retry-after")
    if value is None:
        reset = response.headers.get("x-rate-limit-reset", "").split(",")[0].strip()
        remaining = response.headers.get("x-rate-limit-remaining", "").split(",")[0].strip()
        if reset and (remaining == "0" or response.status_code == 429):
            try:
                return max(0.0, float(reset))
            except ValueError:
                return None
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def _whole(content: bytes) -> Any:
    yield content


class Http:
    """The one HTTP client: a GET path with retries and cache, a write path that sends exactly once."""

    def __init__(self, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._clients: dict[str, httpx.AsyncClient] = {}  # one per API host, made on first use: see _http
        self._tls: ssl.SSLContext | None = None  # shared by them
        self._limit = anyio.CapacityLimiter(config.max_concurrency)
        self._cache: dict[str, tuple[float, Any]] = {}
        self.breaker = CircuitBreaker()
        self.calls = 0  # requests sent, for tests and benchmarks

    def _http(self, api: Api) -> httpx.AsyncClient:
        """The client for one API host (v2 or v1; one for both when they are the same). Each keeps at most
        max_concurrency connections to its own host: in one pool for both hosts, reads of both closed each other's
        idle connections (a new TLS handshake each), and every request's pool bookkeeping walked the other host's
        connections too. The limiter caps requests in flight at max_concurrency for both together.

        Made on first use: building it loads the TLS trust store (~30 ms), which would otherwise
        delay the server's first answer (initialize) at start-up.

        It trusts nothing from the environment (trust_env=False): HTTPS_PROXY, ALL_PROXY, SSL_CERT_FILE and
        SSL_CERT_DIR, which a client's config (a cloned repository's .mcp.json) can set, would send the key through
        a proxy or let a certificate authority of theirs read it. It verifies with certifi's CA bundle, named
        explicitly (OpenSSL's default paths follow SSL_CERT_FILE), and uses a proxy only when the person's own
        settings file names one (SHEEPCRM_HTTPS_PROXY)."""
        c = self.config
        base = c.v1_base_url if api == "v1" else c.base_url
        client = self._clients.get(base)
        if client is None:
            self._tls = self._tls or ssl.create_default_context(cafile=certifi.where())
            client = self._clients[base] = _Client(
                headers={
                    "Authorization": f"Bearer {c.api_key}",
                    "User-Agent": c.user_agent,
                    "APPLICATION": c.application,  # docs-dev: identifies the client (EVIDENCE.md)
                    "Accept": "application/json",
                },
                timeout=httpx.Timeout(c.timeout, connect=c.connect_timeout),
                limits=httpx.Limits(max_connections=c.max_concurrency, max_keepalive_connections=c.max_concurrency),
                transport=self._transport,
                follow_redirects=False,
                trust_env=False,
                verify=self._tls,
                proxy=c.proxy,
            )
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    def url(self, api: Api, path: str) -> str:
        base = self.config.v1_base_url if api == "v1" else self.config.base_url
        return base + path

    async def _send(
        self, method: str, api: Api, url: str, what: str, params: Params | None, body: Any
    ) -> httpx.Response:
        """One request in a span naming only the method, the API host and the status (never the path: it holds
        record ids); a 429 is told to the observers."""
        if not _tracing():  # no provider installed (SHEEPCRM_OTEL off): a span would be built only to be dropped
            response = await self._send_once(method, api, url, what, params, body)
        else:
            attributes = {"http.request.method": method, "server.address": _host(url)}
            with _tracer.start_as_current_span(f"sheepcrm {method}", kind=trace.SpanKind.CLIENT,
                                               attributes=attributes, record_exception=False) as span:
                response = await self._send_once(method, api, url, what, params, body)
                span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code == 429 or throttled(response):
            _observe("rate_limited")
        return response

    async def _send_once(
        self, method: str, api: Api, url: str, what: str, params: Params | None, body: Any
    ) -> httpx.Response:
        """One request, its whole answer read within `timeout` seconds (a drip-fed answer cannot outlast it)
        and refused once it passes `max_body` bytes (counted as it streams in, never held whole)."""
        # None rather than an empty dict: httpx parses a request's URL a second time to merge even empty params.
        clean = ({k: v for k, v in params.items() if v is not None} or None) if params else None
        maybe = " The change may or may not have been applied." if method != "GET" else ""
        c = self.config
        http = self._http(api)
        async with self._limit:
            self.calls += 1
            try:
                with anyio.fail_after(c.timeout + c.connect_timeout):
                    request = http.build_request(
                        method, url, params=clean, json=body, extensions=_extensions(url)
                    )
                    response = await http.send(request, stream=True)
                    try:
                        chunks, size = [], 0
                        # an in-memory answer (a test transport) is already whole: count it the same way
                        source = _whole(response.content) if response.is_stream_consumed else response.aiter_raw()
                        async for chunk in source:
                            size += len(chunk)
                            if size > c.max_body:
                                raise UpstreamError(
                                    f"{what}: sheepCRM's answer was larger than {c.max_body} bytes, so it was "
                                    f"refused.{maybe}"
                                )
                            chunks.append(chunk)
                    finally:
                        await response.aclose()
                return httpx.Response(
                    response.status_code, headers=response.headers, content=b"".join(chunks), request=request
                )
            except UntrustedUpstream as exc:
                raise UntrustedUpstream(f"{what}: {exc}.") from None
            except (httpx.TimeoutException, TimeoutError):
                raise UpstreamTimeout(
                    f"{what}: sheepCRM did not answer within {c.timeout + c.connect_timeout:g}s.{maybe}"
                ) from None
            except httpx.HTTPError as exc:
                raise UpstreamError(f"{what}: could not talk to sheepCRM ({type(exc).__name__}).{maybe}") from None

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(f"{what}: sheepCRM sent a reply that is not JSON.") from None

    async def get(
        self, path: str, what: str, params: Params | None = None, *, api: Api = "v2", fresh: bool = False
    ) -> Any:
        """GET with retries, the circuit breaker and the short read cache."""
        url = self.url(api, path)
        key = f"{url}?{sorted((k, str(v)) for k, v in (params or {}).items() if v is not None)}"
        c = self.config
        if c.cache_ttl and not fresh and (hit := self._cache.get(key)) and hit[0] > time.monotonic():
            return hit[1]
        self.breaker.check()

        def backoff(exc: Exception) -> bool | float:
            if not isinstance(exc, _Retryable):
                return False
            if exc.wait is not None:
                # sheepCRM's wait is honoured in full, never cut to retry_wait_max (which caps this client's own
                # backoff): asking sooner would only be refused again. A wait longer than the whole retry budget
                # is not waited for; the error says how long it is.
                return exc.wait if exc.wait <= c.retry_budget else False
            return True

        async def attempt_once() -> httpx.Response:
            try:
                response = await self._send("GET", api, url, what, params, None)
            except UpstreamError as exc:
                raise _Retryable(exc, None) from None
            if response.status_code in RETRY_STATUSES or throttled(response):
                raise _Retryable(error_for(response, what, False, api), retry_after(response))
            return response

        started = time.monotonic()
        try:
            try:
                response = await attempt_once()  # most reads: one try, without the retry machinery's cost
            except _Retryable as first:
                left = c.retry_budget - (time.monotonic() - started)
                response = await self._retry(first, attempt_once, backoff, left)
        except _Retryable as exc:
            # The breaker counts calls, not attempts; being rate limited is not being down.
            self.breaker.record(isinstance(exc.error, RateLimitedError))
            if exc.wait is not None and exc.wait > c.retry_wait_max:
                throttling = "sheepCRM is throttling this key: it" if isinstance(exc.error, RateLimitedError) else (
                    "sheepCRM")
                raise type(exc.error)(
                    f"{what}: {throttling} asks to wait {math.ceil(exc.wait)}s before the next call "
                    f"(HTTP {exc.error.status}); it was not asked again sooner. Try again after that.",
                    exc.error.status,
                ) from None
            raise exc.error from None
        self.breaker.record(response.status_code < 500)
        if response.status_code >= 400:
            raise error_for(response, what, False, api)
        data = self._json(response, what)
        if c.cache_ttl:
            self._cache[key] = (time.monotonic() + c.cache_ttl, data)
        return data

    async def _retry(
        self,
        first: _Retryable,
        attempt_once: Callable[[], Awaitable[httpx.Response]],
        backoff: Callable[[Exception], bool | float],
        budget: float,
    ) -> httpx.Response:
        """The tries after a failed first one, with stamina's capped, jittered backoff: the first try counts as
        stamina's attempt 1 (so the schedule, the attempts and the budget are those of one retry loop)."""
        if budget <= 0 or self.config.retry_attempts <= 1:
            raise first
        import stamina  # loaded on the first read that is retried, not at start-up

        async for attempt in stamina.retry_context(
            on=backoff,
            attempts=self.config.retry_attempts,
            timeout=budget,
            wait_initial=0.2,
            wait_max=self.config.retry_wait_max,
            wait_jitter=0.5,
        ):
            with attempt:
                if attempt.num == 1:
                    raise first
                _observe("retry")
                return await attempt_once()
        raise AssertionError("unreachable: stamina returns or raises")  # pragma: no cover

    async def write(
        self,
        method: Method,
        path: str,
        what: str,
        params: Params | None = None,
        body: Any = None,
        *,
        api: Api = "v2",
    ) -> Any:
        """Send a write exactly once. Never retried: the caller decides what to do on failure."""
        response = await self._write(method, path, what, params, body, api)
        return self._json(response, what) if response.content else {}

    async def create(self, path: str, what: str, body: Any, *, api: Api = "v1") -> Created:
        """POST a new record exactly once; the answer's status and Location header (where sheepCRM names the
        new record, v1 notes) come back with it, so the caller can tell a named record from an unnamed one."""
        response = await self._write("POST", path, what, None, body, api)
        return Created(response.status_code, response.headers.get("location"))

    async def _write(
        self, method: Method, path: str, what: str, params: Params | None, body: Any, api: Api
    ) -> httpx.Response:
        self.breaker.check()
        self._cache.clear()
        response = await self._send(method, api, self.url(api, path), what, params, body)
        self.breaker.record(response.status_code < 500)
        if response.status_code >= 400:
            raise error_for(response, what, True, api)
        return response


@dataclass(frozen=True)
class Created:
    """What sheepCRM said to a create: its status (201 documented) and the Location header (None when absent)."""

    status: int
    location: str | None
