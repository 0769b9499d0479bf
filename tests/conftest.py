"""Shared fixtures: one sandbox per session, settings pointed at it, MCP clients against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina


@pytest.fixture(autouse=True, scope="session")
def _no_env_leak() -> Iterator[None]:
    stamina.set_testing(False)
    yield
