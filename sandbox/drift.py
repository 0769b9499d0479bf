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
  null-item[=KEY]        a null added to the records of a list answer (under KEY, default: the first known
                         wrapper; or a bare list): an item no client can read
  moved-path             404 {"error": "not found"}: the path is gone
  rejected-param=NAME    400 when the request carries the query parameter NAME
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Send

KINDS = (
    "renamed-field", "other-wrapper", "extra-nulls", "moved-path", "rejected-param", "retyped-field", "null-item",
    "number-field", "string-field",
)
REWRITES = ("renamed-field", "other-wrapper", "extra-nulls", "retyped-field", "null-item", "number-field",
            "string-field")
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
        if kind in ("rejected-param", "number-field", "string-field") and not arg:
            raise ValueError(f"{kind} needs =NAME")
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


def rewriting(rules: tuple[DriftRule, ...], path: str, send: Send) -> Send:
    """`send`, with a 200 JSON answer rewritten by the rules that apply to `path`."""
    chosen = [r for r in rules if r.kind in REWRITES and r.applies(path)]
    if not chosen:
        return send

    def change(status: int, data: Any) -> Any:
        if status == 200:
            for rule in chosen:
                data = rewrite(rule, data)
        return data

    return json_rewriting(send, change)


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
    if rule.kind == "renamed-field":
        return _rename(body, rule.arg or "display_value")
    if rule.kind == "retyped-field":
        return _retype(body, rule.arg) if rule.arg else [body]
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
