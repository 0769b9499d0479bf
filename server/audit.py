"""Append-only JSONL audit log: an `attempt` line fsynced before each write is sent, and its outcome after.

The folder is created 0700 and the file 0600 (opened with O_NOFOLLOW, so a planted symlink is
refused); lines are pure ASCII JSON, so U+2028 and friends cannot split a line for any reader.

On a hosted server (SHEEPCRM_AUTH=oauth) each line names the signed-in caller: sub, email, profile.
Every store records the same `AuditEntry` as the same line (entry_line). AuditLog is stores.Audit in this
process; with replicas, redis_store.RedisAudit keeps the lines in one Redis stream, and
`sheepcrm-mcp audit archive` appends them here (append_lines).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sheepcrm_mcp.server.caller import current_caller
from sheepcrm_mcp.server.files import check_private
from sheepcrm_mcp.server.logs import scrub

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
    if isinstance(value, str):
        if secret and secret in value:
            value = value.replace(secret, "[redacted]")
        return scrub(value)  # every other registered secret too (a hosted server has one key per profile)
    return value


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One line of the audit, as every store records it: what was tried, how it ended, who approved it."""

    tool: str
    outcome: str  # attempt, succeeded, different, partial, changed_otherwise, unknown, failed, conflict, declined, ...
    # or page_<decision>
    channel: str  # how it was approved: elicitation, approval-page, ...
    arguments: dict[str, Any]
    before: Any = None
    after: Any = None
    detail: str | None = None
    approver: dict[str, Any] | None = None  # hosted mode: the signed-in person who approved it on the page


class AuditLog:
    """Writes are serialised and fsynced; a failure to audit is raised, never swallowed."""

    def __init__(self, path: Path, secret: str | None, confirm_mode: str) -> None:
        self.path = path
        self._secret = secret
        self._confirm_mode = confirm_mode
        self._lock = threading.Lock()

    async def record(self, entry: AuditEntry) -> str:
        entry_id = uuid.uuid4().hex[:12]
        line = entry_line(entry_id, self._secret, self._confirm_mode, entry)
        with self._lock:
            append_lines(self.path, [line])
        return entry_id

    async def entries(self, last: int | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as fh:
            found = [json.loads(line) for line in fh if line.strip()]
        return found[-last:] if last else found


def append_lines(path: Path, lines: list[str]) -> None:
    """Append ASCII JSON lines to the audit file and fsync: folder 0700, file 0600, never through a symlink."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        check_private(fd, path, "audit log", "SHEEPCRM_AUDIT_LOG")
        os.write(fd, "".join(line + "\n" for line in lines).encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def entry_line(entry_id: str, secret: str | None, confirm_mode: str, entry: AuditEntry) -> str:
    """One audit entry as an ASCII JSON line, secrets redacted, the caller named (the same for every store)."""
    line = {
        "id": entry_id,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "tool": entry.tool,
        "outcome": entry.outcome,
        "channel": entry.channel,
        "confirm_mode": confirm_mode,
        "arguments": entry.arguments,
        "before": entry.before,
        "after": entry.after,
        "detail": entry.detail,
    }
    if (caller := current_caller()) is not None:  # hosted mode: who asked (and so who approved)
        line["caller"] = caller.audit()
    if entry.approver is not None:  # hosted mode: the signed-in person who approved it on the page
        line["approved_by"] = entry.approver
    return json.dumps(redact(line, secret), default=str, ensure_ascii=True)
