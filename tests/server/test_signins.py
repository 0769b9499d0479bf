"""The approval page's sign-ins in progress, in this process: starting one needs no credential, so they are capped
per approval (the oldest dropped) and per client address (refused past the cap), and expire.
(Redis keeps the same caps: tests/cluster/test_replicas.py.)"""

from __future__ import annotations

import time

from sheepcrm_mcp.server.approvals.signins import PENDING_PER_CLIENT, MemorySignIns
from tests.helpers import check_sign_in_caps, started_sign_in


async def test_sign_ins_in_progress_are_capped_per_approval_and_per_client() -> None:
    await check_sign_in_caps(MemorySignIns(), "m")


async def test_a_capped_client_may_start_again_once_its_sign_ins_expire() -> None:
    store = MemorySignIns()
    for n in range(PENDING_PER_CLIENT):
        assert await store.begin(f"s{n}", started_sign_in(f"a{n}", "192.0.2.1"), 0.05)
    assert not await store.begin("over", started_sign_in("b", "192.0.2.1"), 600)
    time.sleep(0.1)
    assert await store.begin("later", started_sign_in("b", "192.0.2.1"), 600)
