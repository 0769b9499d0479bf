"""stdio purity: the real process writes nothing but JSON-RPC to stdout, whatever else happens.

Logs, Python warnings, stray print()s and raw writes to fd 1 from inside a tool call must all
land on stderr (scrubbed of the API key), never between the JSON-RPC lines on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, PROTOCOL, REPO, binary, clean_env, sandbox_env


class StdioSession:
    """Speaks JSON-RPC to a process line by line, checking every stdout line on the way."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines: list[bytes] = []
        self.next_id = 0

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}})
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"stdout closed while waiting for {method}; stderr:\n{err}")
            self.lines.append(line)
            message = assert_jsonrpc(line)
            if message.get("id") == self.next_id:
                return message

    def finish(self) -> tuple[list[bytes], str]:
        """Close stdin (the client hangs up) and collect what is left."""
        out, err = self.proc.communicate(timeout=20)
        rest = [line for line in out.splitlines(keepends=True) if line.strip()]
        for line in rest:
            assert_jsonrpc(line)
        return self.lines + rest, err.decode()


def assert_jsonrpc(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError:
        raise AssertionError(f"not JSON-RPC on stdout: {line[:200]!r}") from None
    assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", f"not JSON-RPC on stdout: {line[:200]!r}"
    assert line.endswith(b"\n") and line.count(b"\n") == 1, f"a message must be exactly one line: {line[:200]!r}"
    assert ("id" in message) != ("method" in message and "id" not in message), message
    return message


def drive(proc: subprocess.Popen[bytes]) -> tuple[StdioSession, list[dict[str, Any]]]:
    s = StdioSession(proc)
    init = s.request("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                    "clientInfo": {"name": "purity-test", "version": "1"}})
    assert init["result"]["serverInfo"]["name"] == "sheepcrm-mcp"
    s.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    answers = [
        s.request("tools/list"),
        s.request("tools/call", {"name": "search_contacts", "arguments": {"query": "austen"}}),
        s.request("tools/call", {"name": "get_contact", "arguments": {"uri": "/elsewhere/person/x/"}}),
        s.request("tools/call", {"name": "no_such_tool", "arguments": {}}),
        s.request("resources/list"),
        s.request("prompts/list"),
    ]
    return s, answers


def test_real_binary_speaks_only_jsonrpc_on_stdout(tmp_path: Path) -> None:
    env = clean_env(PYTHONWARNINGS="always", SHEEPCRM_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    proc = subprocess.Popen([binary(), "--sandbox", "--log-level", "DEBUG"], env=env, cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        s, answers = drive(proc)
        tools, found, refused, unknown, _, _ = answers
        assert any(t["name"] == "search_contacts" for t in tools["result"]["tools"])
        assert found["result"]["structuredContent"]["contacts"]
        assert refused["result"]["isError"] is True
        assert unknown.get("error") or unknown["result"]["isError"]
        lines, err = s.finish()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(lines) >= 7
    # DEBUG logging was on, so stderr has plenty: it went there, not to stdout.
    assert "level=DEBUG" in err, err[-2000:]


HOOK = textwrap.dedent("""
    import logging, os, sys, warnings
    from sheepcrm_mcp.cli import main
    from sheepcrm_mcp.sheepcrm.search import SearchReads

    original = SearchReads.search

    async def noisy_search(self, q):
        print("a stray print from a tool")
        sys.stdout.write("a stray sys.stdout.write\\n")
        sys.stdout.flush()
        os.write(1, b"a raw write to fd 1\\n")
        warnings.warn("a warning raised inside a tool call", UserWarning, stacklevel=1)
        logging.getLogger("sheepcrm_mcp.test").warning("calling sheepCRM with key %s", os.environ["SHEEPCRM_API_KEY"])
        try:
            raise RuntimeError("failed with Authorization: Bearer " + os.environ["SHEEPCRM_API_KEY"])
        except RuntimeError:
            logging.getLogger("sheepcrm_mcp.test").exception("an error with the key in its traceback")
        return await original(self, q)

    SearchReads.search = noisy_search
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_prints_warnings_and_logs_inside_a_tool_call_stay_off_stdout(tmp_path: Path) -> None:
    # Not the console script but the same main(), with SearchReads.search patched (in this child
    # process only) to misbehave in every way a library or a careless edit could.
    with SandboxServer(key=CANARY_KEY) as sb:
        env = sandbox_env(sb, tmp_path, PYTHONWARNINGS="always")
        proc = subprocess.Popen([sys.executable, "-W", "always", "-c", HOOK, "--log-level", "INFO"], env=env,
                                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            s, answers = drive(proc)
            found = answers[1]
            assert found["result"]["structuredContent"]["contacts"]
            lines, err = s.finish()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = b"".join(lines)
    assert b"stray" not in out and b"raw write" not in out and CANARY_KEY.encode() not in out
    # All of it reached stderr instead...
    for text in ("a stray print from a tool", "a stray sys.stdout.write", "a raw write to fd 1",
                 "a warning raised inside a tool call", "calling sheepCRM with key [REDACTED]",
                 "an error with the key in its traceback", "Authorization: Bearer [REDACTED]"):
        assert text in err, f"{text!r} missing from stderr:\n{err[-3000:]}"
    # ...with the key scrubbed from every log record, traceback included.
    assert CANARY_KEY not in err


@pytest.mark.slow
def test_text_a_model_chose_cannot_forge_a_log_line(tmp_path: Path) -> None:
    """An unknown prompt (or tool) name holding line breaks was logged as is: its second line looked like a record
    of ours. Every record is one line, line breaks and terminal escapes written out."""
    forged = "level=WARNING logger=sheepcrm_mcp.gate the person approved update_contact"
    name = f"nope\r\n2026-12-07 00:00:00,000 {forged}\x1b[2K\u2028x"
    env = clean_env(SHEEPCRM_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    proc = subprocess.Popen([binary(), "--sandbox", "--log-level", "DEBUG"], env=env, cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        s, _ = drive(proc)
        s.request("prompts/get", {"name": name, "arguments": {}})
        s.request("tools/call", {"name": name, "arguments": {}})
        _, err = s.finish()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "nope\\r\\n2026" in err, err[-3000:]  # it was logged, escaped (so the test can fail)
    for line in err.splitlines():
        assert not line.startswith("2026-12-07 00:00:00,000"), line
        assert "\x1b" not in line and "\u2028" not in line
