"""The bench smoke's groups (tests/bench/smoke.py) run every section of `python -m bench` once."""

from __future__ import annotations

from bench.__main__ import SECTIONS
from tests.bench.smoke import EXPECTED, GROUPS


def test_every_section_runs_in_one_group() -> None:
    grouped = [section for sections in GROUPS.values() for section in sections]
    assert sorted(grouped) == sorted(SECTIONS), "add the new bench section to a group in tests/bench/smoke.py"
    assert sorted(EXPECTED) == sorted(SECTIONS), "name the rows the new bench section prints in tests/bench/smoke.py"
