"""Append-only JSONL audit log (stores.Audit in this process): a line when a write is attempted and one
with its outcome, each fsynced before the write goes on or the result returns."""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "csrf")


def redact(value: Any, secret: str | None) -> Any:
    """Drop secret-looking keys and scrub the API key wherever it appears."""
    if isinstance(value, dict):
        return {
            k: ("[redacted]" if any(w in str(k).lower() for w in SECRET_WORDS) else redact(v, secret))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secret) for v in value]
    if isinstance(value, str) and secret and secret in value:
        return value.replace(secret, "[redacted]")
    return value


class AuditLog:
    """Writes are serialised and fsynced; a failure to audit is raised, never swallowed."""

    def __init__(self, path: Path, secret: str | None, confirm_mode: str) -> None:
        self.path = path
        self._secret = secret
        self._confirm_mode = confirm_mode
        self._lock = threading.Lock()

    async def record(
        self,
        *,
        tool: str,
        outcome: str,
        channel: str,
        arguments: dict[str, Any],
        before: Any = None,
        after: Any = None,
        detail: str | None = None,
    ) -> str:
        entry_id = uuid.uuid4().hex[:12]
        line = entry_line(entry_id, self._secret, self._confirm_mode, tool=tool, outcome=outcome, channel=channel,
                          arguments=arguments, before=before, after=after, detail=detail)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return entry_id

    async def entries(self, last: int | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as fh:
            found = [json.loads(line) for line in fh if line.strip()]
        return found[-last:] if last else found


def entry_line(entry_id: str, secret: str | None, confirm_mode: str, *, tool: str, outcome: str, channel: str,
               arguments: dict[str, Any], before: Any, after: Any, detail: str | None) -> str:
    """One audit entry as a JSON line, secrets redacted (the same for every audit store)."""
    entry = {
        "id": entry_id,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "tool": tool,
        "outcome": outcome,
        "channel": channel,
        "confirm_mode": confirm_mode,
        "arguments": arguments,
        "before": before,
        "after": after,
        "detail": detail,
    }
    return json.dumps(redact(entry, secret), default=str, ensure_ascii=False)
