"""Fault sessions (tests/reliability/faults.py) for read timeouts, dropped connections and slow answers: each kind 500
mixed calls over 4 scripted sessions against a sandbox injecting it at 20 %. The kinds are split over three files so
the run uses every core."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.faults import GROUPS, run_kinds

pytestmark = pytest.mark.reliability


@pytest.mark.timeout(600)
async def test_fault_sessions_transport(tmp_path: Path) -> None:
    await run_kinds(GROUPS["transport"], tmp_path)
