"""Found by the fuzzing: a write tool given an out-of-scope uri or a malformed uid answered only
"Error executing tool update_task" (the SDK's text for an unexpected exception, with a traceback in the
log), because the gate's resolver did not map ScopeError to an actionable error. Both eras."""

from __future__ import annotations

from typing import Any

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import approve
from tests.reliability.helpers import result_text

pytestmark = pytest.mark.reliability


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_write_tools_explain_scope_refusals(sandbox: SandboxServer, connect: Any, mode: str) -> None:
    event = sandbox.store.demo_facts()["past_event_uid"]
    cases = [
        ("update_task", {"uid": "../x", "action": "complete"}, "is not a uid"),
        ("set_attendance", {"uid": event, "person_uris": ["/other/person/abc/"], "status": "attended"}, "outside"),
        ("update_contact", {"uri": "/other/person/abc/", "phone": "01632 960000"}, "outside"),
        ("set_attendance", {"uid": "%2e%2e", "person_uris": ["/demo/person/abc/"], "status": "attended"}, "uid"),
    ]
    async with connect(sandbox, mode=mode, elicitation=approve) as client:
        for tool, args, words in cases:
            result = await client.call_tool(tool, args)
            text = result_text(result)
            assert result.is_error
            assert words in text, f"{tool}: {text!r}"
    assert [e for e in sandbox.request_log if e.method == "PUT"] == []
