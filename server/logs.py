"""Logging to stderr, one structured line per record, with secrets scrubbed from every record.

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
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


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
