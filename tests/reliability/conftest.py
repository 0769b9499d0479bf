"""Reliability suite hooks: print the measured figures (and write them to $RELIABILITY_REPORT when set)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.reliability.helpers import FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for section, values in FIGURES.items():
        terminalreporter.write_line(f"{section}: {json.dumps(values, default=str)}")
    path = os.environ.get("RELIABILITY_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(FIGURES, fh, indent=1, default=str)
        terminalreporter.write_line(f"figures written to {path}")


@pytest.fixture(autouse=True)
def _reliability_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("reliability"), "every test in tests/reliability is marked reliability"
