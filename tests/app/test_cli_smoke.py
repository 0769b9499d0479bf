"""A first end-to-end check through a real client session: search finds the seeded person."""

from __future__ import annotations

from typing import Any

from sheepcrm_mcp.sandbox.runner import SandboxServer


async def test_search_contacts_end_to_end(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    async with connect(shared_sandbox) as client:
        result = await client.call_tool("search_contacts", {"query": "austen"})
    assert not result.is_error
    uris = [c["uri"] for c in result.structured_content["contacts"]]
    assert facts["jane_uri"] in uris


async def test_search_contacts_over_stdio_subprocess() -> None:
    """The installed binary, started as a desktop client would, with its embedded sandbox."""
    import os
    import shutil
    import sys
    from pathlib import Path

    from mcp import Client, StdioServerParameters

    exe = shutil.which("sheepcrm-mcp") or str(Path(sys.executable).with_name("sheepcrm-mcp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEEPCRM_")}
    params = StdioServerParameters(command=exe, args=["--sandbox", "--read-only"], env=env)
    async with Client(params, mode="legacy", read_timeout_seconds=30) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("search_contacts", {"email": "jane.austen@example.org"})
    assert "search_contacts" in names and "update_task" not in names
    assert not result.is_error
    assert [c["name"] for c in result.structured_content["contacts"]] == ["Jane Austen"]


# What a stdio server's first initialize and tools/list do not need: hosted mode and its JOSE library, Redis,
# the approval page's sign-in, the sandbox, doctor, demo, metrics, the retry library (first upstream read), and the
# member profile's tools (hosted mode).
DEFERRED = (
    "jwt", "redis", "stamina", "tenacity", "prometheus_client", "opentelemetry.sdk", "sheepcrm_mcp.hosted",
    "sheepcrm_mcp.doctor",
    "sheepcrm_mcp.demo", "sheepcrm_mcp.sandboxed", "sheepcrm_mcp.sandbox", "sheepcrm_mcp.server.redis_store",
    "sheepcrm_mcp.server.approvals.signin", "sheepcrm_mcp.tools.self_service",
)
STDIO_START = """
import os, sys, anyio
os.environ.update(SHEEPCRM_API_KEY="k", SHEEPCRM_BUCKET="demo", SHEEPCRM_BASE_URL="https://unreachable.invalid.sheepcrm.com")
from sheepcrm_mcp.cli import main  # what `sheepcrm-mcp` runs, up to the server's first answers
from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.server.settings import load_settings
app = build_app(load_settings())
tools = anyio.run(app.server.list_tools)
assert len(tools) > 10, len(tools)
print(sorted(m for m in DEFERRED if m in sys.modules))
"""


def _loaded(code: str) -> str:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    done = subprocess.run([sys.executable, "-c", f"DEFERRED = {DEFERRED!r}\n{code}"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_stdio_start_up_loads_none_of_the_deferred_modules() -> None:
    """Start-up cost: stdio start-up, up to tools/list, imports nothing in DEFERRED (and the probe can see them:
    the sandbox run below loads the sandbox)."""
    assert _loaded(STDIO_START) == "[]"
    assert "sheepcrm_mcp.sandbox" in _loaded("import sys\nimport sheepcrm_mcp.sandboxed\nprint(sorted(sys.modules))")


def test_stdio_start_up_from_the_tool_cache_builds_no_tool_model() -> None:
    """Start-up cost: with the tool cache written (by the first start), the next start lists the tools from it and
    builds none of their input or output models; each is built when its tool is first called."""
    built = STDIO_START.replace(
        "print(sorted(m for m in DEFERRED if m in sys.modules))",
        "from sheepcrm_mcp.tools.catalogue import TOOLS\n"
        "models = [(t.name, m) for t in TOOLS for m in (t.input, getattr(t, 'output', t.input))]\n"
        "print(sorted({name for name, m in models if m.__pydantic_complete__}))",
    )
    assert built != STDIO_START
    _loaded(built)  # writes the tool cache, should this code have none yet
    assert _loaded(built) == "[]"


def test_stdio_and_token_mode_do_not_load_hosted_mode_libraries() -> None:
    """Start-up cost: the JOSE library (and Redis) load only where hosted mode or replicas use them."""
    probe = ("import sys, sheepcrm_mcp.cli, sheepcrm_mcp.assembly, sheepcrm_mcp.http; "
             "print(sorted(m for m in DEFERRED if m in sys.modules))")
    assert _loaded(probe) == "[]"


def test_the_command_runs_no_pydantic_plugins_unless_asked() -> None:
    """Start-up cost (and code of other packages): pydantic's plugins are not looked for, unless the person says
    which to leave out in PYDANTIC_DISABLE_PLUGINS (then that is what pydantic reads)."""
    import os
    import subprocess
    import sys

    probe = ("import os, sheepcrm_mcp.cli; from pydantic.plugin._loader import get_plugins; "
             "print(repr(os.environ['PYDANTIC_DISABLE_PLUGINS']), list(get_plugins()))")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["'__all__'", "[]"]
    chosen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={**env, "PYDANTIC_DISABLE_PLUGINS": "logfire"}).stdout
    assert chosen.split()[0] == "'logfire'"


# What a stdio start lists from the tool cache without: the tool modules (their models and handlers), the
# catalogue, the gate and its write machinery, and the approval page. Each loads with the first tool call needing it.
LISTED_AHEAD = (
    "sheepcrm_mcp.tools.catalogue", "sheepcrm_mcp.tools.common", "sheepcrm_mcp.tools.search",
    "sheepcrm_mcp.tools.contacts", "sheepcrm_mcp.tools.membership", "sheepcrm_mcp.tools.events",
    "sheepcrm_mcp.tools.tasks", "sheepcrm_mcp.tools.help", "sheepcrm_mcp.tools.segments",
    "sheepcrm_mcp.tools.history", "sheepcrm_mcp.server.gate", "sheepcrm_mcp.server.approvals.page",
    # the tool specs and how a tool is built, the approvals and the audit, the resources and prompts
    "sheepcrm_mcp.server.registration", "sheepcrm_mcp.server.specs", "sheepcrm_mcp.server.writes",
    "sheepcrm_mcp.server.paging", "sheepcrm_mcp.server.approvals.store", "sheepcrm_mcp.server.approvals.pending",
    "sheepcrm_mcp.server.audit", "sheepcrm_mcp.tools.resources", "sheepcrm_mcp.tools.prompts",
    # the sheepCRM client and its HTTP library, and who is calling (hosted mode)
    "sheepcrm_mcp.sheepcrm.client", "sheepcrm_mcp.sheepcrm.transport", "httpx", "sheepcrm_mcp.server.caller",
)


def _stdio_session(env: dict[str, str], calls: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
    """`sheepcrm-mcp` over stdio under `python -X importtime`: initialize, then `calls` one by one; the answers and
    every module the process imported."""
    import json
    import subprocess
    import sys
    import tempfile

    err = tempfile.TemporaryFile()  # not a pipe: the import lines alone would fill one
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "sheepcrm_mcp"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    assert proc.stdin is not None and proc.stdout is not None
    answers = []
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    try:
        for rid, (method, params) in enumerate([("initialize", init), *((c["method"], c["params"]) for c in calls)]):
            proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()
                             + b"\n")
            if rid == 0:
                proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
            proc.stdin.flush()
            while (answer := json.loads(proc.stdout.readline())).get("id") != rid:
                pass
            answers.append(answer)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    err.seek(0)
    lines = err.read().decode().splitlines()
    err.close()
    modules = {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}
    return answers, modules


def test_a_stdio_start_with_the_tool_cache_lists_the_tools_without_loading_them(
    shared_sandbox: SandboxServer, tmp_path: Any
) -> None:
    """Start-up cost: once the tool cache lists the catalogue (the first start writes it), initialize and tools/list
    load no tool module, no gate and no approval page; the first call loads its tool and answers as ever."""
    from tests.helpers import sandbox_env

    env = sandbox_env(shared_sandbox, tmp_path)
    listing = {"method": "tools/list", "params": {}}
    first, _ = _stdio_session(env, [listing])  # writes the tool cache, should this code have none yet
    answers, loaded = _stdio_session(env, [listing])
    assert answers[1]["result"] == first[1]["result"] and len(answers[1]["result"]["tools"]) > 10
    assert "sheepcrm_mcp.server.toolcache" in loaded  # the probe sees our modules
    assert sorted(loaded & set(LISTED_AHEAD)) == []
    search = {"method": "tools/call", "params": {"name": "search_contacts",
                                                 "arguments": {"email": "jane.austen@example.org"}}}
    answers, loaded = _stdio_session(env, [search])
    result = answers[1]["result"]
    assert not result.get("isError") and [c["name"] for c in result["structuredContent"]["contacts"]] == ["Jane Austen"]
    assert {"sheepcrm_mcp.tools.catalogue", "sheepcrm_mcp.tools.search"} <= loaded


async def test_audit_archive_reads_the_redis_stream_with_metrics_on(tmp_path: Any) -> None:
    """`sheepcrm-mcp audit archive` with SHEEPCRM_METRICS=1 (counting wrappers around the stores) still goes to the
    Redis stream: here an unreachable one, which is said as such, never as "set SHEEPCRM_REDIS_URL"."""
    import argparse
    import socket

    from pydantic import SecretStr

    from sheepcrm_mcp.cli import run_audit
    from sheepcrm_mcp.server.settings import Settings

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(_env_file=None, bucket="demo", metrics=True, audit_log=tmp_path / "audit.jsonl",  # type: ignore[call-arg]
                        redis_url=SecretStr(f"redis://127.0.0.1:{port}/0"))
    args = argparse.Namespace(action="archive", lines=20, follow=False)
    assert await run_audit(settings, args) == 1  # the store was unreachable (ConfigError before the fix)


async def test_resources_and_prompts_that_failed_to_install_are_installed_by_the_next_request(
    shared_sandbox: SandboxServer, tmp_path: Any, monkeypatch: Any
) -> None:
    """Resources and prompts are installed by the first request for them; one that fails is tried again by the next
    (not left answering empty lists for the rest of the process)."""
    from mcp import Client

    from sheepcrm_mcp.assembly import build_app
    from sheepcrm_mcp.tools import resources
    from tests.helpers import settings_for

    real = resources.install
    failures = [RuntimeError("install failed")]

    def flaky(*args: Any) -> None:
        if failures:
            raise failures.pop()
        real(*args)

    monkeypatch.setattr(resources, "install", flaky)
    app = build_app(settings_for(shared_sandbox, tmp_path), tool_cache=tmp_path / "tools.json")
    try:
        async with Client(app.server, mode="legacy") as client:
            try:
                await client.list_resources()
            except Exception as exc:  # said without the exception's own text
                assert "install failed" not in str(exc)
            else:
                raise AssertionError("the failed install was not reported")
            uris = {str(r.uri) for r in (await client.list_resources()).resources}
            assert "sheepcrm://guide" in uris
            assert [p.name for p in (await client.list_prompts()).prompts]
    finally:
        await app.aclose()
