"""Logging to stderr, one structured line per record, with secrets scrubbed from every record.

Every record is one line: line breaks and control characters in its message, arguments and
traceback text are escaped, so text someone else chose cannot forge a line.

stdout belongs to JSON-RPC on the stdio transport, so nothing here ever writes there. Python
warnings are routed into logging (and so to stderr, scrubbed). The filter sits on the handler,
so it sees records from every logger (ours, the SDK's, httpx's, uvicorn's) and the formatted
traceback text too.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable

REDACTED = "[REDACTED]"
SECRET_ENV = ("SHEEPCRM_API_KEY", "SHEEPCRM_MCP_TOKEN")
FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s pid=%(process)d %(message)s"


class RedactSecrets(logging.Filter):
    """Replaces every known secret in a record's message, arguments and traceback text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        # Short values would redact ordinary words and leak nothing worth hiding.
        if secret and len(secret) >= 6:
            self.secrets.add(secret)

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

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
