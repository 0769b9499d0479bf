"""Edge cases of SheepClient against scripted transports (no network)."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable

import httpx
import pytest

from sheepcrm_mcp.server.settings import Settings
from sheepcrm_mcp.sheepcrm import (
    AuthError,
    BadRequestError,
    CircuitOpenError,
    ClientConfig,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    RateLimitedError,
    ScopeError,
    SheepClient,
    UpstreamError,
    UpstreamTimeout,
)
from sheepcrm_mcp.sheepcrm.contacts import located
from sheepcrm_mcp.sheepcrm.scope import RecordUri
from sheepcrm_mcp.sheepcrm.transport import retry_after

KEY = "canary-key-7f3a9c"


def make(handler: Callable[[httpx.Request], httpx.Response], **over: object) -> tuple[SheepClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    base: dict[str, object] = {
        "api_key": KEY, "bucket": "demo", "base_url": "https://up.test", "v1_base_url": "https://up.test",
        "retry_attempts": 4, "retry_budget": 10.0, "retry_wait_max": 0.05, "cache_ttl": 0,
    }
    base.update(over)
    client = SheepClient(Settings(**base).client_config(), transport=httpx.MockTransport(record))  # type: ignore[arg-type]
    return client, seen


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record stamina's backoff waits instead of sleeping."""
    recorded: list[float] = []

    async def fake_sleep(delay: float) -> None:
        recorded.append(delay)

    monkeypatch.setattr("stamina._core._smart_sleep", fake_sleep)
    return recorded


def sequence(*responses: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    queue = list(responses)

    def handler(_: httpx.Request) -> httpx.Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


OK = httpx.Response(200, json={"results": []})


async def test_retry_after_is_honoured_and_never_cut_short(sleeps: list[float]) -> None:
    client, seen = make(sequence(
        httpx.Response(429, headers={"Retry-After": "0.03"}), httpx.Response(429, headers={"Retry-After": "120"}), OK,
    ))
    with pytest.raises(RateLimitedError, match="asks to wait 120s"):  # longer than retry_wait_max: not asked early
        await client.search("x")
    assert len(seen) == 2
    assert sleeps == [pytest.approx(0.03)]


async def test_x_rate_limit_reset_is_a_wait(sleeps: list[float]) -> None:
    """EVIDENCE.md: sheepCRM sends x-rate-limit-remaining and x-rate-limit-reset, no Retry-After."""
    limited = httpx.Response(429, headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": "0.04, 400;window=60"})
    client, seen = make(sequence(limited, OK))
    assert await client.search("x") == {"results": []}
    assert len(seen) == 2 and sleeps == [pytest.approx(0.04)]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_gets_retry_5xx(status: int, sleeps: list[float]) -> None:
    client, seen = make(sequence(httpx.Response(status), OK))
    await client.search("x")
    assert len(seen) == 2 and len(sleeps) == 1


async def test_get_gives_up_after_attempts(sleeps: list[float]) -> None:
    client, seen = make(sequence(httpx.Response(503)))
    with pytest.raises(UpstreamError, match="HTTP 503"):
        await client.search("x")
    assert len(seen) == 4


async def test_persistent_429_becomes_rate_limited(sleeps: list[float]) -> None:
    client, _ = make(sequence(httpx.Response(429, headers={"Retry-After": "0.01"})))
    with pytest.raises(RateLimitedError, match="rate limiting"):
        await client.search("x")


async def test_timeouts_retry_for_get(sleeps: list[float]) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return OK

    client, _ = make(handler)
    await client.search("x")
    assert calls["n"] == 2


@pytest.mark.parametrize("failure", ["timeout", "drop", "503"])
async def test_put_is_never_retried(failure: str, sleeps: list[float]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if failure == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if failure == "drop":
            raise httpx.RemoteProtocolError("peer closed", request=request)
        return httpx.Response(503)

    client, seen = make(handler)
    with pytest.raises(UpstreamError, match="may or may not have been applied") as info:
        await client.task_action("abc123", "complete")
    assert len(seen) == 1 and sleeps == []
    assert isinstance(info.value, UpstreamTimeout) == (failure == "timeout")


async def test_a_create_is_sent_once_and_answers_its_location(sleeps: list[float]) -> None:
    client, seen = make(lambda r: httpx.Response(201, json={"status": "ok"},
                                                 headers={"Location": "/demo/person/abc123/"}))
    created = await client.create_contact("person", {"first_name": "Jim"})
    assert (created.status, created.location) == (201, "/demo/person/abc123/")
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/api/v1/demo/person/")]
    assert located(created.location, "demo", "person") == RecordUri("demo", "person", "abc123")
    assert located("https://api.sheepcrm.com/api/v1/demo/person/abc123/", "demo", "person") == RecordUri(
        "demo", "person", "abc123")
    for odd in (None, "", "/other/person/abc123/", "/demo/organisation/abc123/", "/demo/person/../x/"):
        assert located(odd, "demo", "person") is None, odd
    with pytest.raises(ScopeError):
        await client.create_contact("membership", {})
    timeout, seen = make(lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)))
    with pytest.raises(UpstreamTimeout, match="may or may not have been applied"):
        await timeout.create_contact("person", {"first_name": "Jim"})
    assert len(seen) == 1 and sleeps == []
    deleting, seen = make(lambda r: httpx.Response(200, json={"status": "ok"}))
    await deleting.delete_record(RecordUri("demo", "person", "abc123"))
    assert [(r.method, r.url.path) for r in seen] == [("DELETE", "/api/v1/demo/person/abc123/")]
    with pytest.raises(ScopeError):
        await deleting.delete_record(RecordUri("other", "person", "abc123"))


async def test_status_mapping_is_honest() -> None:
    for status, kind, words in [
        (401, AuthError, "SHEEPCRM_API_KEY"),
        (403, PermissionDenied, "valid but its user lacks a permission"),
        (404, NotFoundError, "also answers 404 when it does not accept the credentials"),
        (409, ConflictError, "data conflict"),
    ]:
        client, _ = make(sequence(httpx.Response(status, json={"error": "nope"})))
        with pytest.raises(kind, match=words):
            await client.record(RecordUri("demo", "person", "abc"))


async def test_key_never_in_messages_or_repr(sleeps: list[float]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        return httpx.Response(500, json={"error": "boom"})

    client, _ = make(handler)
    with pytest.raises(UpstreamError) as info:
        await client.search("x")
    config = client.http.config
    assert KEY not in str(info.value) and KEY not in repr(config) and KEY not in str(config)
    assert KEY not in repr(client) and KEY not in repr(client.http)


async def test_circuit_opens_then_recovers(sleeps: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"down": True}

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if state["down"] else OK

    client, seen = make(handler, retry_attempts=1)
    for _ in range(client.breaker.threshold):
        with pytest.raises(UpstreamError):
            await client.search("x")
    sent = len(seen)
    with pytest.raises(CircuitOpenError, match="not calling it"):
        await client.search("x")
    assert len(seen) == sent  # failed fast, nothing sent
    state["down"] = False
    client.breaker.opened_at = (client.breaker.opened_at or 0) - client.breaker.cooldown - 1
    assert await client.search("x") == {"results": []}
    assert client.breaker.failures == 0


async def test_reads_are_cached_briefly_and_writes_clear_the_cache() -> None:
    client, seen = make(sequence(OK), cache_ttl=60)
    await client.search("x")
    await client.search("x")
    assert len(seen) == 1
    await client.task_action("abc", "complete")
    await client.search("x")
    assert len(seen) == 3


async def test_query_values_go_through_params_not_paths() -> None:
    client, seen = make(sequence(OK))
    await client.search("a&b=c/../d?e")
    assert seen[0].url.path == "/search/v2/demo"
    assert seen[0].url.params["q"] == "a&b=c/../d?e"


async def test_breaker_counts_calls_not_attempts(sleeps: list[float]) -> None:
    client, seen = make(sequence(httpx.Response(503)))
    for _ in range(client.breaker.threshold - 1):
        with pytest.raises(UpstreamError):
            await client.search("x")
    assert len(seen) == 4 * (client.breaker.threshold - 1)  # every call used all its attempts
    assert client.breaker.opened_at is None


async def test_rate_limiting_does_not_open_the_breaker(sleeps: list[float]) -> None:
    client, _ = make(sequence(httpx.Response(429, headers={"Retry-After": "0"})))
    for _ in range(client.breaker.threshold + 1):
        with pytest.raises(RateLimitedError):
            await client.search("x")
    assert client.breaker.opened_at is None


async def test_403_is_a_missing_permission_in_sheepcrms_words() -> None:
    """Finding 13: 403 is "valid credentials but not enough privileges" (openapi.yaml), not a refused key. Which
    permission is not guessed from the free text: sheepCRM's words are quoted."""
    body = {"error": "forbidden", "description": "requires the booking.orders permission", "type": "forbidden"}
    client, _ = make(sequence(httpx.Response(403, json=body)))
    with pytest.raises(PermissionDenied) as info:
        await client.event("abc")
    assert "sheepCRM said: forbidden: requires the booking.orders permission" in str(info.value)
    assert "'booking.orders'" not in str(info.value)
    assert "SHEEPCRM_API_KEY" not in str(info.value) and not isinstance(info.value, AuthError)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"error": {"param": "bucket", "message": "bucket is required"}}, "bucket is required (parameter bucket)"),
        ({"error": "bad_request", "description": "limit must be a number", "type": "bad"}, "limit must be a number"),
        ({"error_detail": "Username and Password do not match", "error": "Unable to authenticate"}, "do not match"),
    ],
)
async def test_every_documented_error_body_is_read(body: dict[str, object], words: str) -> None:
    """Finding 14: the 2025-02 draft's {"error": {"param", "message"}}, openapi.yaml's description, v1's
    error_detail all reach the message."""
    client, _ = make(sequence(httpx.Response(400, json=body)))
    with pytest.raises(BadRequestError, match=re.escape(words)):
        await client.search("x")


async def test_v1_404_keeps_the_credentials_caveat_and_v2_404_does_not() -> None:
    """Finding 11: only a v1 404 may also mean bad credentials (v1 notes)."""
    client, _ = make(sequence(httpx.Response(404, json={"error": "not found"})))
    with pytest.raises(NotFoundError) as v1:
        await client.record(RecordUri("demo", "person", "abc"))
    assert v1.value.api == "v1" and "v1 API also answers 404" in str(v1.value)
    client, _ = make(sequence(httpx.Response(404, json={"error": "not found"})))
    with pytest.raises(NotFoundError) as v2:
        await client.event("abc")
    assert v2.value.api == "v2" and "credentials" not in str(v2.value)


async def test_history_uses_the_moved_audit_path() -> None:
    """Finding 1: openapi.yaml (2025-04-22) serves record history at /audit/v2/{bucket}/{type}/{uid}/audit."""
    client, seen = make(sequence(httpx.Response(200, json={"results": []})))
    await client.record_audit(RecordUri("demo", "person", "abc"))
    assert seen[0].url.path == "/audit/v2/demo/person/abc/audit"


def test_retry_after_as_an_http_date() -> None:
    """Finding 14: Retry-After may be an HTTP-date."""
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after(httpx.Response(429, headers={"Retry-After": when}))
    assert wait is not None and 25 < wait <= 30


@pytest.mark.parametrize(
    ("url", "ok"),
    [("http://127.0.0.1:8089", True), ("http://localhost:1", True), ("https://sls-api.sheepcrm.com", True),
     ("http://sls-api.sheepcrm.com", False), ("http://10.0.0.1", False), ("ftp://x", False)],
)
def test_plain_http_only_to_loopback(url: str, ok: bool) -> None:
    """Finding 14: the key travels in every request, so plain http:// is for a local sandbox only."""
    if ok:
        assert ClientConfig(api_key="k", bucket="demo", base_url=url).base_url == url
    else:
        with pytest.raises(ValueError, match="https://"):
            ClientConfig(api_key="k", bucket="demo", base_url=url)


async def test_application_header_names_the_client() -> None:
    """docs-dev (EVIDENCE.md): an `APPLICATION: <agency>/<app>/<version>` header identifies the client."""
    from sheepcrm_mcp import __version__
    from sheepcrm_mcp.sandbox.runner import SandboxServer
    from sheepcrm_mcp.server.settings import Settings

    with SandboxServer(key="k-app") as sb:
        settings = Settings(_env_file=None, **sb.settings())  # type: ignore[call-arg]
        async with SheepClient(settings.client_config()) as client:
            await client.bucket_info()
            await client.all_segments()
        assert {r.application for r in sb.request_log} == {f"sheepcrm-mcp/sheepcrm-mcp/{__version__}"}



async def test_a_cookie_sheepcrm_sets_is_never_sent_back() -> None:
    """The client is a key's, not a session's: a Set-Cookie (sheepCRM's or a proxy's) is neither kept nor sent."""
    jar = httpx.Response(200, json={}, headers={"Set-Cookie": "session=abc123; Path=/; Domain=up.test"})
    client, seen = make(sequence(jar, httpx.Response(200, json={})))
    async with client:
        await client.search("austen")
        await client.search("austen again")
    assert len(seen) == 2 and "cookie" not in seen[1].headers, seen[1].headers
    assert "Bearer" in seen[1].headers["authorization"]
