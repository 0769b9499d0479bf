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


def test_stdio_and_token_mode_do_not_load_hosted_mode_libraries() -> None:
    """Start-up cost: the JOSE library (and Redis) load only where hosted mode or replicas use them."""
    import subprocess
    import sys

    probe = ("import sys, sheepcrm_mcp.cli, sheepcrm_mcp.assembly, sheepcrm_mcp.http; "
             "print(sorted(m for m in ('jwt', 'redis', 'sheepcrm_mcp.server.approvals.signin') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
