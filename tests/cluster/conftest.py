"""Every test here runs against scripts/cluster.sh's Redis + HAProxy + replicas (marker `cluster`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.cluster.helpers import Cluster, cluster
from tests.helpers import CANARY_KEY


@pytest.fixture(autouse=True)
def _cluster_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("cluster"), "every test in tests/cluster is marked cluster"


@pytest.fixture(scope="module")
def cluster_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(key=CANARY_KEY) as sb:
        yield sb


@pytest.fixture(scope="module")
def running(cluster_sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    missing = [c for c in ("redis-server", "redis-cli", "haproxy") if shutil.which(c) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `bash scripts/cluster.sh install` (.ci/run does)")
    tmp: Path = tmp_path_factory.mktemp("cluster")
    with cluster(cluster_sandbox, tmp, SHEEPCRM_METRICS="1") as c:  # /metrics on: scraped by prometheus
        yield c
