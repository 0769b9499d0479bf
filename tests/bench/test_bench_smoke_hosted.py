"""`python -m bench --quick --no-write` for the hosted section (Redis, HAProxy and three hosted replicas from
scripts/cluster.sh): every row it prints has numbers that parse (tests/bench/smoke.py). A smoke test, not a
measurement."""

from __future__ import annotations

import pytest

from tests.bench.smoke import run_group


@pytest.mark.slow  # under a minute on a quiet machine; run by `bash dev.sh test`'s second run and CI
@pytest.mark.timeout(300)
def test_bench_quick_hosted() -> None:
    run_group("hosted")
