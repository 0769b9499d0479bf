"""Shared fixtures: sandboxes over loopback, settings pointed at them, real MCP client sessions.

`sandbox` is one per test (cheap: ~50 ms) so writes never leak between tests; `shared_sandbox`
is one per session for read-only tests. Expected values come from the sandbox's store, never
from copies of tool output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

import sheepcrm_mcp
import sheepcrm_mcp.server.approvals.page as approval_page
from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.contract import check_request
from tests.helpers import CANARY_KEY, REPO, Readers, open_session, running_idp

# No test may start a desktop browser. The approval page's opener never reads $BROWSER (a client's config could set
# it); it runs the desktop's opener only on a display of this user's, so without one, here and in every server
# subprocess a test starts, it opens nothing and says so. A test that needs "the person's browser" replaces the
# opener in-process (`connect`, `serve_http`) or starts the server through tests/person_browser.py.
for _display in ("DISPLAY", "WAYLAND_DISPLAY"):
    os.environ.pop(_display, None)


@pytest.fixture(autouse=True)
def _decisions_without_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The approval page takes a decision only HOLD_SECONDS after its launch was first used. Pages in this process
    decide at once, except in the tests of that hold, which set it themselves; servers a test starts as processes keep
    it."""
    monkeypatch.setattr(approval_page, "HOLD_SECONDS", 0.0)


def not_this_checkout() -> list[str]:
    """Why the code under test would not be this checkout's: the package imported here, and the one the venv's
    python imports from anywhere else (as the console script and every server subprocess do), must both be
    REPO/sheepcrm_mcp."""
    problems = []
    here = (REPO / "sheepcrm_mcp").resolve()
    imported = Path(sheepcrm_mcp.__file__).resolve().parent
    if imported != here:
        problems.append(f"`import sheepcrm_mcp` loads {imported}")
    probe = "import sheepcrm_mcp, pathlib; print(pathlib.Path(sheepcrm_mcp.__file__).resolve().parent)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", probe], cwd="/", env=env, capture_output=True, text=True, timeout=60)
    installed = run.stdout.strip() or f"not importable ({run.stderr.strip().splitlines()[-1:]})"
    if installed != str(here):
        problems.append(f"the venv's installed sheepcrm_mcp is {installed}")
    return problems


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller has checked
        return
    if problems := not_this_checkout():
        raise pytest.UsageError(
            f"these tests are in {REPO}, but " + "; ".join(problems) + ". Install this checkout into its own venv "
            f"(again after a change of layout): cd {REPO} && python3 -m venv .venv && "
            ".venv/bin/pip install -c constraints.txt -e '.[dev,bench]'"
        )


# The files that take longest, in seconds (in the default run, in the second run `-m "reliability or slow or
# cluster"`), measured on the two-core CI machine while other work ran on it: only their order matters.
LONG_FILES: dict[str, tuple[int, int]] = {
    "tests/cluster/test_replicas.py": (0, 250),
    "tests/reliability/test_fault_sessions_transport.py": (0, 240),
    "tests/tools/test_variants.py": (9, 195),
    "tests/reliability/test_fault_sessions.py": (0, 170),
    "tests/app/test_doctor.py": (60, 40),
    "tests/app/test_doctor_contract.py": (65, 80),
    "tests/sandbox/test_seed.py": (1, 95),
    "tests/bench/test_bench_smoke_demo.py": (0, 85),
    "tests/reliability/test_secrets_injection.py": (0, 80),
    "tests/app/test_outside_clients.py": (0, 75),
    "tests/reliability/test_fault_sessions_writes.py": (0, 70),
    "tests/bench/test_bench_smoke_cluster.py": (0, 70),
    "tests/bench/test_bench_smoke_scale.py": (0, 70),
    "tests/cluster/test_hosted_replicas.py": (0, 65),
    "tests/bench/test_bench_smoke_throughput.py": (0, 60),
    "tests/tools/test_membership.py": (53, 0),
    "tests/app/test_http_security.py": (4, 50),
    "tests/tools/test_contacts.py": (49, 22),
    "tests/bench/test_bench_smoke_hosted.py": (0, 50),
    "tests/tools/test_events.py": (40, 0),
    "tests/server/test_launch_secrecy.py": (2, 36),
    "tests/app/test_hosted.py": (15, 36),
    "tests/tools/test_apps_browser.py": (0, 31),
    "tests/tools/test_bad_input.py": (30, 0),
    "tests/server/test_approvals.py": (30, 0),
    "tests/reliability/test_fuzz_scope.py": (0, 28),
    "tests/app/test_stdio_purity.py": (6, 27),
    "tests/app/test_packaging.py": (1, 25),
    "tests/app/test_cli_smoke.py": (24, 0),
    "tests/cluster/test_private_redis.py": (0, 24),
    "tests/server/test_hardening.py": (23, 0),
    "tests/server/test_telemetry.py": (6, 22),
    "tests/server/test_settings.py": (1, 20),
}
SECOND_RUN = ("reliability", "slow", "cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files go first, so the last ones any worker starts are short and the workers finish together.
    pytest-xdist runs each file whole on one worker and (with --no-loadscope-reorder, pyproject.toml) hands the files
    out in this order. Files not in LONG_FILES follow: those whose tests may run longer than the default timeout
    first (longest allowance first), then those with the most tests."""
    default = float(config.getini("timeout") or 120)

    def allowance(item: pytest.Item) -> float:
        mark = item.get_closest_marker("timeout")
        return float(mark.args[0]) if mark and mark.args else default

    seconds: dict[str, int] = {}
    longest: dict[str, float] = {}
    count: dict[str, int] = {}
    for item in items:
        rel = item.path.relative_to(config.rootpath).as_posix()
        second = any(item.get_closest_marker(m) for m in SECOND_RUN)
        seconds[rel] = max(seconds.get(rel, 0), LONG_FILES.get(rel, (0, 0))[second])
        longest[rel] = max(longest.get(rel, 0.0), allowance(item))
        count[rel] = count.get(rel, 0) + 1

    def key(item: pytest.Item) -> tuple[int, float, int]:
        rel = item.path.relative_to(config.rootpath).as_posix()
        return -seconds[rel], -longest[rel], -count[rel]

    items.sort(key=key)  # stable: each file keeps its own order


def assert_requests_documented(sb: SandboxServer) -> None:
    """Contract, request side: every request the client sent (faults aside) is one sheepCRM's documents
    describe: method, path, parameter names and value types (tests/contract.py)."""
    bad = sorted({why for e in sb.request_log if e.fault is None and (why := check_request(e.method, e.path, e.query))})
    assert not bad, "requests the documents do not describe:\n" + "\n".join(bad[:20])


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[SandboxServer]:
    """One sandbox for the whole run, for tests that only read: it must never see a write."""
    with SandboxServer(key=CANARY_KEY) as sb:
        yield sb
        assert_requests_documented(sb)
        writes = [f"{r.method} {r.path}" for r in sb.request_log if r.method != "GET"]
        assert not writes, f"tests on the read-only shared sandbox sent writes: {writes[:5]}"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(key=CANARY_KEY) as sb:
        yield sb
        assert_requests_documented(sb)


Connect = Callable[..., Any]


@pytest.fixture
def connect(tmp_path: Path) -> Connect:
    """`async with connect(sb, mode=..., elicitation=..., **settings) as client:` a real client session.

    The approval page's browser opener is replaced: `client.opened` lists the launch links the server
    would have opened in the person's browser (no desktop browser is ever started by a test).
    """

    def _connect(sb: SandboxServer, **kw: Any) -> AbstractAsyncContextManager[Client]:
        return open_session(sb, tmp_path, **kw)

    return _connect


@pytest.fixture(scope="module")
async def readers(shared_sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Readers]:
    held = Readers(shared_sandbox, tmp_path_factory.mktemp("readers"))
    yield held
    await held.aclose()


@pytest.fixture
def facts(shared_sandbox: SandboxServer) -> dict[str, Any]:
    return shared_sandbox.store.demo_facts()


@pytest.fixture(scope="module")
def idp() -> Iterator[str]:
    """The project's OpenID provider (.ci/idp), one per test module; yields its issuer."""
    with running_idp() as issuer:
        yield issuer
