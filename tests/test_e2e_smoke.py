"""A first end-to-end check through a real client session: search finds the seeded person."""

from __future__ import annotations

from typing import Any

from sandbox.runner import SandboxServer


async def test_search_contacts_end_to_end(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    async with connect(shared_sandbox) as client:
        result = await client.call_tool("search_contacts", {"query": "austen"})
    assert not result.is_error
    uris = [c["uri"] for c in result.structured_content["contacts"]]
    assert facts["jane_uri"] in uris
