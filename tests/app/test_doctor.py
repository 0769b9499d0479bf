"""`sheepcrm-mcp doctor` as a user runs it: good key, bad key, unreachable address, missing settings."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import REPO, binary, clean_env, free_port, sandbox_env


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # cwd without a .env file, so only the environment given here counts.
    return subprocess.run([binary(), "doctor", *args], env=env, cwd=env.get("HOME", REPO), capture_output=True,
                          text=True, timeout=60)


def fail_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("FAIL")]


@pytest.fixture(scope="module")
def doctor_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(key="sk-doctor-good-7d1e") as sb:
        yield sb


def test_good_key_passes(doctor_sandbox: SandboxServer, tmp_path: Path) -> None:
    r = doctor(sandbox_env(doctor_sandbox, tmp_path, HOME=str(tmp_path)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert fail_lines(r.stdout) == []
    assert "API key accepted for bucket 'demo'" in r.stdout
    assert "sample read works" in r.stdout
    assert "all checks passed" in r.stderr
    assert "sk-doctor-good-7d1e" not in r.stdout + r.stderr


def test_bad_key_is_named(doctor_sandbox: SandboxServer, tmp_path: Path) -> None:
    env = sandbox_env(doctor_sandbox, tmp_path, HOME=str(tmp_path), SHEEPCRM_API_KEY="sk-not-the-right-key")
    r = doctor(env)
    assert r.returncode == 1, r.stdout + r.stderr
    [line] = fail_lines(r.stdout)
    assert "API key was refused" in line and "SHEEPCRM_API_KEY" in line
    assert "reachable" in r.stdout  # it got that far: the address was fine
    assert "sk-not-the-right-key" not in r.stdout + r.stderr


def test_unreachable_address_is_named(doctor_sandbox: SandboxServer, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = sandbox_env(doctor_sandbox, tmp_path, HOME=str(tmp_path), SHEEPCRM_BASE_URL=dead, SHEEPCRM_V1_BASE_URL=dead)
    r = doctor(env)
    assert r.returncode == 3, r.stdout + r.stderr
    [line] = fail_lines(r.stdout)
    assert line.startswith(f"FAIL cannot reach {dead}") and "SHEEPCRM_V1_BASE_URL" in line
    assert "API key" not in r.stdout  # it stopped before judging the key


def test_missing_settings_are_named(tmp_path: Path) -> None:
    r = doctor(clean_env(HOME=str(tmp_path)))
    assert r.returncode == 2, r.stdout + r.stderr
    [line] = fail_lines(r.stdout)
    assert "SHEEPCRM_API_KEY is not set" in line


def test_doctor_sandbox_flag(tmp_path: Path) -> None:
    r = doctor(clean_env(HOME=str(tmp_path), SHEEPCRM_AUDIT_LOG=str(tmp_path / "a.jsonl")), "--sandbox")
    assert r.returncode == 0, r.stdout + r.stderr
    assert fail_lines(r.stdout) == []
