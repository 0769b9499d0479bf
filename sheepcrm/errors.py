"""Every upstream failure as one of the client's own exceptions, with a message a person can act on."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx  # the client's; the error classes load without it (a start lists the tools before any call)



class SheepError(Exception):
    """Base of every failure the client reports; the message says what a person can do about it."""

    status: int | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidRequest(SheepError):
    """The caller asked for something the client will not send (a value outside the allowed set)."""


class AuthError(SheepError):
    """401: the key was refused."""


class PermissionDenied(SheepError):
    """403: valid credentials without the privilege this call needs (openapi.yaml: "valid credentials but not
    enough privileges"). sheepCRM's own words (`detail`, cleaned), if any, are quoted; no permission name is parsed
    out of them."""

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message, status)
        self.detail = detail


class NotFoundError(SheepError):
    """404: no such record, or (sheepCRM's v1 habit) credentials it does not accept. `api` says which."""

    def __init__(self, message: str, status: int | None = None, api: str = "v2", detail: str = "") -> None:
        super().__init__(message, status)
        self.api = api
        self.detail = detail  # sheepCRM's words, cleaned (error_detail): tells a documented "no match" from others


# The v1 notes: 404 is "not found, also returned on bad user credentials". Said wherever a v1 404 becomes "no such".
V1_404_CAVEAT = (
    "sheepCRM's v1 API also answers 404 when it does not accept the credentials: if records you know exist are "
    "'not found', run `sheepcrm-mcp doctor`."
)


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


class UntrustedUpstream(SheepError):
    """A new connection to a loopback upstream that another local account serves: closed before anything was sent
    (sheepcrm/loopback.py). Not an upstream failure: it is not retried and says that nothing was sent."""


class CircuitOpenError(UpstreamError):
    """Recent calls failed; calls fail fast until the cool-down ends."""


DETAIL_CAP = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9 .,:;()'/_@+-]")
_TOKENISH = re.compile(r"(?i)\b(bearer|basic|token|key|authorization)\b\s*[:=]?\s*\S+|[A-Za-z0-9_\-]{24,}")


def error_detail(response: httpx.Response) -> str:
    """The human part of an error body, in any of the documented shapes (openapi.yaml `error`
    {"error", "description", "type"}; the 2025-02 draft {"error": {"param", "message"}}; v1
    {"error_detail", "error"} and {"error"}), never verbatim: the key scrubbed, credential-looking words
    and long tokens dropped, only plain characters kept, and cut short. A hostile upstream may echo anything."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    err = body.get("error")
    if isinstance(err, dict):
        message, param = err.get("message"), err.get("param")
        if isinstance(message, str):
            parts.append(f"{message} (parameter {param})" if isinstance(param, str) and param else message)
    elif isinstance(err, str):
        parts.append(err)
    for key in ("description", "error_detail", "message", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
    text = ": ".join(parts)
    if not text:
        return ""
    auth = response.request.headers.get("authorization", "") if _has_request(response) else ""
    secret = auth.partition(" ")[2].strip()
    if secret:
        text = text.replace(secret, "")
    text = _TOKENISH.sub("[removed]", text)
    text = " ".join(_UNSAFE.sub(" ", text).split())
    return text[:DETAIL_CAP]


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 - raises when the response was built without one
    except RuntimeError:
        return False
    return True


def throttled(response: httpx.Response) -> bool:
    """A 403 that says no calls are left (`x-rate-limit-remaining: 0`): sheepCRM's throttling (EVIDENCE.md,
    throttling: the headers are named, the status code is not), not a missing permission."""
    remaining = response.headers.get("x-rate-limit-remaining", "").split(",")[0].strip()
    return response.status_code == 403 and remaining == "0"


def error_for(response: httpx.Response, what: str, write: bool, api: str = "v2") -> SheepError:
    """Map an upstream status to an exception whose message a person can act on."""
    status = response.status_code
    detail = error_detail(response)
    suffix = f" (sheepCRM said: {detail})" if detail else ""
    if status == 401:
        return AuthError(
            f"sheepCRM refused the API key for {what} (HTTP 401). Check SHEEPCRM_API_KEY "
            "and that the key's user may use this bucket; `sheepcrm-mcp doctor` checks both.",
            status,
        )
    if throttled(response):
        reset = response.headers.get("x-rate-limit-reset", "").split(",")[0].strip()
        wait = f" for {reset}s" if reset.replace(".", "", 1).isdigit() else ""
        return RateLimitedError(
            f"{what}: sheepCRM is throttling this key (HTTP 403 with x-rate-limit-remaining: 0): no calls are left"
            f"{wait}. Wait and try again; this is not a missing permission.",
            status,
        )
    if status == 403:  # which permission is never guessed from sheepCRM's free text: its words are quoted
        return PermissionDenied(
            f"{what}: the API key is valid but its user lacks a permission this call needs (HTTP 403){suffix}. "
            "Ask a sheepCRM administrator to grant it to the key's user.",
            status,
            detail,
        )
    if status == 404:
        caveat = f" {V1_404_CAVEAT}" if api == "v1" else ""
        return NotFoundError(f"{what}: not found{suffix}.{caveat}", status, api, detail)
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
