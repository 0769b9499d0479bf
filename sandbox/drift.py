"""Drift: the sandbox answering the way a changed upstream would, so that `sheepcrm-mcp doctor --contract` can be
shown to notice. Unlike a variant (sandbox/variants.py), a drift is NOT what the documents allow.

Spec: `KIND[=ARG][:PATH_REGEX]` (the regex is searched in the request path; without it, every path):
  renamed-field[=NAME]   NAME (default display_value) renamed everywhere in the answer (to displayValue,
                         Completed, ...: the same word, another spelling)
  other-wrapper[=KEY]    the records of a list answer move from KEY (default: the first known wrapper) to `items`
  extra-nulls            every scalar of every listed record becomes null
  retyped-field[=NAME]   every value of NAME, anywhere in the answer (without NAME: the whole answer), is sent as a
                         one-item list holding it (a flag, a count, an object as another type than documented)
  number-field=NAME      every value of NAME sent as a number (a date 2026-12-07 as 20261207; other text as 0)
  string-field=NAME      every value of NAME sent as a JSON string of it (a list as "[...]")
  object-field=NAME      every value of NAME sent as an object holding it ({"value": ...})
  null-item[=KEY]        a null added to the records of a list answer (under KEY, default: the first known
                         wrapper; or a bare list): an item no client can read
  moved-path             404 {"error": "not found"}: the path is gone
  rejected-param=NAME    400 when the request carries the query parameter NAME
  echoed-key=ENC[+N]     the request's Authorization header value (from its character N: +7 is the key alone)
                         appended, encoded, to every `title` and `display_value` in the answer (a proxy leaking
                         the key): ENC is one of plain, base64, base64url, hex, HEX, percent (every byte %xx),
                         PERCENT (%XX), quoted (reserved characters only), reversed
  other-location=URI     a create (POST) answered with `Location: URI`, another record than the one it made
  bare-id                every `id` given as a uri (/bucket/type/uid/) sent as the bare uid, and `uri` keys left out
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Send

KINDS = (
    "renamed-field", "other-wrapper", "extra-nulls", "moved-path", "rejected-param", "retyped-field", "null-item",
    "number-field", "string-field", "object-field", "echoed-key", "other-location", "bare-id",
)
REWRITES = ("renamed-field", "other-wrapper", "extra-nulls", "retyped-field", "null-item", "number-field",
            "string-field", "object-field", "echoed-key", "bare-id")
ENCODINGS: dict[str, Callable[[bytes], str]] = {
    "plain": lambda b: b.decode("latin-1"),
    "base64": lambda b: base64.b64encode(b).decode(),
    "base64url": lambda b: base64.urlsafe_b64encode(b).decode(),
    "hex": bytes.hex,
    "HEX": lambda b: b.hex().upper(),
    "percent": lambda b: "".join(f"%{c:02x}" for c in b),
    "PERCENT": lambda b: "".join(f"%{c:02X}" for c in b),
    "quoted": lambda b: urllib.parse.quote(b, safe=""),
    "reversed": lambda b: b.decode("latin-1")[::-1],
}
WRAPPERS = ("bookings", "segments", "results", "tasks", "sessions", "memberships", "available_tickets", "orders")


@dataclass(frozen=True)
class DriftRule:
    kind: str
    arg: str | None = None
    path: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, spec: str) -> DriftRule:
        head, _, path = spec.partition(":")
        kind, _, arg = head.partition("=")
        if kind not in KINDS:
            raise ValueError(f"unknown drift {kind!r}; choose from {', '.join(KINDS)}")
        if kind in ("rejected-param", "number-field", "string-field", "object-field", "echoed-key",
                    "other-location") and not arg:
            raise ValueError(f"{kind} needs =ARG")
        enc, plus, start = arg.partition("+")
        if kind == "echoed-key" and (enc not in ENCODINGS or (plus and not start.isdigit())):
            raise ValueError(f"echoed-key={arg}: choose ENC[+N] with ENC from {', '.join(ENCODINGS)}")
        if kind == "moved-path" and not path:
            raise ValueError("moved-path needs :PATH_REGEX")
        return cls(kind, arg or None, re.compile(path) if path else None)

    def applies(self, path: str) -> bool:
        return self.path is None or self.path.search(path) is not None


def parse(specs: frozenset[str] | list[str]) -> tuple[DriftRule, ...]:
    return tuple(DriftRule.parse(s) for s in sorted(specs))


def refusal(rules: tuple[DriftRule, ...], path: str, query: dict[str, str]) -> tuple[int, str] | None:
    """(status, message) when a moved-path or rejected-param rule refuses the request."""
    for rule in rules:
        if not rule.applies(path):
            continue
        if rule.kind == "moved-path":
            return 404, f"no endpoint {path}"
        if rule.kind == "rejected-param" and rule.arg in query:
            return 400, f"unknown parameter {rule.arg}"
    return None


def rewriting(rules: tuple[DriftRule, ...], path: str, send: Send, authorization: str = "") -> Send:
    """`send`, with a 200 JSON answer rewritten by the rules that apply to `path` (`authorization`: the request's
    Authorization header, for echoed-key)."""
    chosen = [r for r in rules if r.kind in REWRITES and r.applies(path)]
    if not chosen:
        return send

    def change(status: int, data: Any) -> Any:
        if status == 200:
            for rule in chosen:
                data = _echo(data, echoed(rule, authorization)) if rule.kind == "echoed-key" else rewrite(rule, data)
        return data

    return json_rewriting(send, change)


def echoed(rule: DriftRule, authorization: str) -> str:
    """The Authorization header's value as an echoed-key rule encodes it."""
    name, _, start = (rule.arg or "plain").partition("+")
    return ENCODINGS[name](authorization[int(start or 0):].encode("latin-1"))


def relocating(rules: tuple[DriftRule, ...], path: str, send: Send) -> Send:
    """`send`, with the Location header of an answer replaced by an other-location rule's uri."""
    rule = next((r for r in rules if r.kind == "other-location" and r.applies(path)), None)
    if rule is None:
        return send

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and any(k.lower() == b"location" for k, _ in
                                                               message.get("headers", [])):
            headers = [(k, v) for k, v in message["headers"] if k.lower() != b"location"]
            message = {**message, "headers": [*headers, (b"location", str(rule.arg).encode())]}
        await send(message)

    return wrapped


def _echo(value: Any, echo: str) -> Any:
    if isinstance(value, dict):
        return {k: (f"{v} {echo}" if k in ("title", "display_value") and isinstance(v, str) else _echo(v, echo))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_echo(v, echo) for v in value]
    return value


def json_rewriting(send: Send, change: Callable[[int, Any], Any]) -> Send:
    """`send`, with a JSON answer replaced by change(status, data)."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        try:
            data = json.loads(body)
        except ValueError:
            pass
        else:
            body = json.dumps(change(int(start.get("status", 200)), data)).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped


def rewrite(rule: DriftRule, body: Any) -> Any:
    if rule.kind == "bare-id":
        return _bare_ids(body)
    if rule.kind == "renamed-field":
        return _rename(body, rule.arg or "display_value")
    if rule.kind == "retyped-field":
        return _retype(body, rule.arg) if rule.arg else [body]
    if rule.kind == "object-field":
        return _convert(body, rule.arg or "", lambda v: {"value": v})
    if rule.kind in ("number-field", "string-field"):
        return _convert(body, rule.arg or "", _number if rule.kind == "number-field" else json.dumps)
    wrappers = (rule.arg,) if rule.arg else WRAPPERS
    if isinstance(body, dict):
        key = next((k for k in wrappers if isinstance(body.get(k), list)), None)
        if key is not None:
            if rule.kind == "extra-nulls":
                body[key] = [_nulls(r) for r in body[key]]
            elif rule.kind == "null-item":
                body[key] = [*body[key], None]
            else:
                body["items"] = body.pop(key)
    elif isinstance(body, list) and rule.kind == "extra-nulls":
        body = [_nulls(r) for r in body]
    elif isinstance(body, list) and rule.kind == "null-item":
        body = [*body, None]
    return body


def respelled(name: str) -> str:
    """display_value -> displayValue; completed -> Completed."""
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest) if rest else name.capitalize()


def _rename(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return {(respelled(k) if k == name else k): _rename(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, name) for v in value]
    return value


def _retype(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return {k: ([_retype(v, name)] if k == name else _retype(v, name)) for k, v in value.items()}
    if isinstance(value, list):
        return [_retype(v, name) for v in value]
    return value


def _bare_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (v.strip("/").split("/")[-1] if k == "id" and isinstance(v, str) and v.startswith("/")
                    else _bare_ids(v)) for k, v in value.items() if k != "uri"}
    if isinstance(value, list):
        return [_bare_ids(v) for v in value]
    return value


def _nulls(record: Any) -> Any:
    if not isinstance(record, dict):
        return record
    return {k: (None if not isinstance(v, (dict, list)) else v) for k, v in record.items()}


def _convert(value: Any, name: str, how: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: (how(v) if k == name and v is not None else _convert(v, name, how)) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert(v, name, how) for v in value]
    return value


def _number(value: Any) -> Any:
    digits = "".join(c for c in str(value)[:10] if c.isdigit())
    return int(digits) if digits else 0
