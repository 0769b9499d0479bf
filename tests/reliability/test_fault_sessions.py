"""Fault sessions (tests/reliability/faults.py) for the control, throttling (429 with Retry-After) and HTTP 500, then
the circuit breaker: each kind 500 mixed calls over 4 scripted sessions against a sandbox injecting it at 20 %. The
kinds are split over three files so the run uses every core."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.sandbox.faults import FaultPlan
from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import CANARY_KEY, settings_for
from tests.reliability.faults import GROUPS, KINDS, run_kinds
from tests.reliability.helpers import figure, result_text

pytestmark = pytest.mark.reliability



def test_every_fault_kind_runs_in_one_group() -> None:
    grouped = [kind for kinds in GROUPS.values() for kind in kinds]
    assert sorted(grouped) == sorted(KINDS), "add the new fault kind to a group in tests/reliability/faults.py"


@pytest.mark.timeout(600)
async def test_fault_sessions_none_429_500(tmp_path: Path) -> None:
    await run_kinds(GROUPS["none_429_500"], tmp_path)


async def test_circuit_breaker_fails_fast_and_recovers(tmp_path: Path) -> None:
    plan = FaultPlan.parse(["503:1.0"])  # the running sandbox consults this very object
    with SandboxServer(key=CANARY_KEY, faults=plan) as sb:
        facts = sb.store.demo_facts()
        built = build_app(settings_for(sb, tmp_path, cache_ttl=0, retry_wait_max=0.05, timeout=1.0))
        server = built.server
        rt = built
        breaker = rt.client.breaker
        args = {"uri": facts["jane_uri"]}
        try:
            async with Client(server, mode="legacy") as client:
                texts: list[str] = []
                for _ in range(breaker.threshold + 1):
                    result = await client.call_tool("get_contact", args)
                    assert result.is_error
                    texts.append(result_text(result))
                    if "not calling it for another" in texts[-1]:
                        break
                assert "not calling it for another" in texts[-1], texts
                assert "HTTP 503" in texts[0], texts[0]
                assert breaker.opened_at is not None
                sent = len(sb.request_log)
                started = time.perf_counter()
                for _ in range(10):
                    result = await client.call_tool("get_contact", args)
                    assert result.is_error
                    assert "not calling it for another" in result_text(result)
                    assert "nothing was changed" in result_text(result)
                fast = (time.perf_counter() - started) / 10
                while_open = len(sb.request_log) - sent
                assert while_open == 0, "requests were sent while the circuit was open"
                assert fast < 0.1
                # the upstream recovers: after the cool-down the next call probes, succeeds and closes it
                plan.rules.clear()
                breaker.cooldown = 0.5
                result = await client.call_tool("get_contact", args)
                assert result.is_error and "not calling it for another" in result_text(result)
                await anyio.sleep(0.6)
                result = await client.call_tool("get_contact", args)
                assert not result.is_error, result_text(result)
                assert breaker.opened_at is None and breaker.failures == 0
        finally:
            await rt.aclose()
        figure(
            "circuit_breaker",
            calls_until_open=len(texts),
            open_call_ms=round(fast * 1000, 2),
            requests_while_open=while_open,
            open_message=texts[-1][:160],
            recovered=True,
        )
