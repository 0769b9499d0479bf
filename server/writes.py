"""What a write tool hands the gate: a `WritePlan` of `Change`s.

An update reads the record, diffs it against the wanted values, applies the changes and says
how to undo them. A create fits the same shape: `read` looks for the record it would create
(for example by its natural key) and returns None while it does not exist; `diff` turns "absent"
into one Change (before None, after the new record); `apply` sends the create once; the gate's
read-back then finds the record, which is how it knows the create happened; `undo` names the
delete call, or returns None when sheepCRM offers none (the result then says so).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

VALUE_CAP = 120  # characters of one value in a preview
NAME_CAP = 80  # characters of a name or summary in a preview
_EMAIL = re.compile(r"^([^@\s]+)@([^@\s]+)$")


def hidden(char: str) -> bool:
    """Characters that are invisible or move text around: controls, line breaks, bidi and zero-width marks."""
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn")


def visible(text: str, cap: int = VALUE_CAP) -> str:
    """One line a person can trust: hidden characters shown as <U+XXXX>, long text cut and marked."""
    out = "".join(f"<U+{ord(c):04X}>" if hidden(c) else c for c in text)
    return out if len(out) <= cap else out[: cap - 1] + "…"


def first_hidden(text: str) -> str | None:
    """The first hidden character in `text`, as U+XXXX, or None."""
    return next((f"U+{ord(c):04X}" for c in text if hidden(c)), None)


def _punycode_email(text: str) -> str:
    """An email whose domain is not ASCII, shown with its domain in punycode (what mail servers see)."""
    match = _EMAIL.match(text)
    if not match or match.group(2).isascii():
        return text
    try:
        domain = match.group(2).encode("idna").decode("ascii")
    except UnicodeError:
        return text
    return f"{match.group(1)}@{domain}"


def show(value: Any) -> str:
    """A value as a person reads it in a preview: lists as values, empty as (empty), on one safe line."""
    if value in (None, "", [], {}):
        return "(empty)"
    if isinstance(value, list):
        return ", ".join(show(v) if v is not None else "(empty)" for v in value)
    return visible(_punycode_email(str(value)))


@dataclass(frozen=True)
class Change:
    key: str  # machine name: field name, attendee uri, task action
    label: str  # what a person reads
    before: Any
    after: Any

    def line(self) -> str:
        return f"{visible(self.label, NAME_CAP)}: {show(self.before)} → {show(self.after)}"


@dataclass
class WritePlan:
    """How to read, compare, apply and undo one write request."""

    summary: str  # one line: what and on which record
    read: Callable[[], Awaitable[Any]]  # the current state, fresh (JSON-able)
    diff: Callable[[Any], list[Change]]  # the changes still needed given a state; [] = nothing to do
    apply: Callable[[list[Change], Any], Awaitable[None]]  # one write for these changes, given the state just read
    undo: Callable[[list[Change]], dict[str, Any] | None]  # arguments of the same tool that undo them, or None
    one_write_per_change: bool = False
    no_undo: str | None = None  # said in the preview and the result when the change cannot be undone
    warning: str | None = None  # something the person should weigh before approving (shown in every preview)

    def notes(self) -> list[str]:
        """The extra lines of every preview: the warning (escaped, capped) and the no-undo notice."""
        return [visible(n, 4 * NAME_CAP) for n in (self.warning, self.no_undo) if n]
