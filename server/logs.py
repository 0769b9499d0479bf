"""Logging to stderr, one structured line per record, with secrets scrubbed from every record.

Every record is one line: line breaks and control characters in its message, arguments and
traceback text are escaped, so text someone else chose cannot forge a line.

stdout belongs to JSON-RPC on the stdio transport, so nothing here ever writes there. Python
warnings are routed into logging (and so to stderr, scrubbed). The filter sits on the handler,
so it sees records from every logger (ours, the SDK's, httpx's, uvicorn's) and the formatted
traceback text too.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable

REDACTED = "[REDACTED]"
SECRET_ENV = ("SHEEPCRM_API_KEY", "SHEEPCRM_MCP_TOKEN")
FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s pid=%(process)d %(message)s"


MIN_ENCODED = 8  # an encoded form shorter than this is not looked for (it would match ordinary text)


def _b64_cores(raw: bytes) -> list[str]:
    """The parts of raw's base64 and URL-safe base64 that are the same wherever raw sits in a longer text: for each
    of the three byte alignments, the characters that only raw's bytes decide (its neighbours change the rest)."""
    cores: list[str] = []
    for lead in range(3):
        padded = b"\0" * lead + raw
        whole = (len(padded) // 3) * 4  # complete groups only: the last partial one depends on what follows
        skip = (0, 2, 3)[lead]  # characters that mix in the lead bytes
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            core = encode(padded).decode("ascii")[skip:whole]
            if len(core) >= MIN_ENCODED:
                cores.append(core)
    return cores


def encodings(secret: str, bearer: bool = True) -> tuple[list[str], list[str]]:
    """(exact, case-insensitive) forms of `secret` to scrub: the text, its reverse, and for it and "Bearer <secret>"
    the alignment-stable cores of their base64 and URL-safe base64; then their hex and percent-encoding (either
    case)."""
    exact: list[str] = []
    folded: list[str] = []
    exact += [secret, secret[::-1]]  # "Bearer <secret>" holds it: its plain text keeps "Bearer " in view
    for value in (f"Bearer {secret}", secret) if bearer else (secret,):
        raw = value.encode()
        exact += _b64_cores(raw)
        folded += [raw.hex(), "".join(f"%{b:02x}" for b in raw)]
        if (quoted := urllib.parse.quote(value, safe="")) != value:
            folded.append(quoted.lower())
    return exact, folded


class RedactSecrets(logging.Filter):
    """Replaces every known secret, and its common encodings (see `encodings`), in a record's message, arguments and
    traceback text. The forms are computed once per secret. A text is first searched for each form of the bare
    secrets (str.find: a form of "Bearer <key>" holds one of them), which costs microseconds; only a text holding
    one is rewritten, by one compiled pattern of every form, longest first."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._exact: tuple[str, ...] = ()
        self._folded: tuple[str, ...] = ()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        # Short values would redact ordinary words and leak nothing worth hiding.
        if secret and len(secret) >= 6 and secret not in self.secrets:
            self.secrets.add(secret)
            self._pattern = None
            e, f = encodings(secret, bearer=False)
            self._exact = tuple(sorted({*self._exact, *e}))
            self._folded = tuple(sorted({*self._folded, *f}))

    def pattern(self) -> re.Pattern[str]:
        if self._pattern is None:
            exact: set[str] = set()
            folded: set[str] = set()
            for secret in self.secrets:
                e, f = encodings(secret)
                exact.update(e)
                folded.update(f)
            # Longest first, so a whole "Bearer <key>" form goes rather than the key inside it.
            parts = [(len(v), re.escape(v)) for v in exact] + [(len(v), f"(?i:{re.escape(v)})") for v in folded]
            self._pattern = re.compile("|".join(p for _, p in sorted(parts, reverse=True)))
        return self._pattern

    def scrub(self, text: str) -> str:
        if not any(form in text for form in self._exact):
            if not self._folded:
                return text
            lowered = text.lower()
            if not any(form in lowered for form in self._folded):
                return text
        return self.pattern().sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = one_line(self.scrub(message)), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = one_line(self.scrub(record.exc_text))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = one_line(self.scrub(record.stack_info))
        return True


# Line breaks (CR, LF, NEL, U+2028/2029) and other controls (ESC...) written as escapes: text a model or an
# upstream chose (a prompt name, an exception's message) cannot start a forged line in the log or drive a terminal.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09}
_ESCAPES |= {0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(text: str) -> str:
    """`text` on one line: every line break and control character escaped (tabs kept)."""
    return text.translate(_ESCAPES)


_filter = RedactSecrets()
_handler: logging.Handler | None = None


def redactor() -> RedactSecrets:
    return _filter


def scrub(text: str) -> str:
    """The text with every registered secret replaced: for tool results, errors and doctor lines too."""
    return _filter.scrub(text)


def add_secret(secret: str | None) -> None:
    """Register a secret (API key, bearer token) to scrub from every later record."""
    _filter.add(secret)


def configure(level: str | int = "WARNING") -> logging.Handler:
    """Send all logging to stderr through the redacting filter; idempotent."""
    global _handler
    for name in SECRET_ENV:
        add_secret(os.environ.get(name))
    root = logging.getLogger()
    if _handler is None:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter(FORMAT))
        _handler.addFilter(_filter)
    for existing in list(root.handlers):
        if existing is not _handler:
            root.removeHandler(existing)
    if _handler not in root.handlers:
        root.addHandler(_handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return _handler
