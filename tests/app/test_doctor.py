"""`sheepcrm-mcp doctor` as a user runs it: good key, bad key, unreachable address, missing settings."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.tools.contract import READS
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


def contract(sb: SandboxServer, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return doctor(sandbox_env(sb, tmp_path, HOME=str(tmp_path)), "--contract", *extra)


def test_contract_is_clean_against_the_documented_shapes(doctor_sandbox: SandboxServer, tmp_path: Path) -> None:
    r = contract(doctor_sandbox, tmp_path, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["drift"] is False
    probed = {e["endpoint"] for e in report["endpoints"]}
    assert probed == {read.name for read in READS}  # every upstream read the tools use
    assert all(e["status"] in (200, 404) for e in report["endpoints"]), report
    assert "sk-doctor-good-7d1e" not in r.stdout + r.stderr
    facts = doctor_sandbox.store.demo_facts()
    assert facts["jane_email"] not in r.stdout and "Austen" not in r.stdout  # names of fields, never values


@pytest.mark.parametrize(
    ("drift", "expect"),
    [
        ("renamed-field", "MISSING display_value"),
        ("other-wrapper", "none of bookings in the answer"),
        ("extra-nulls", "ALWAYS NULL uid"),
    ],
)
def test_contract_reports_drift(tmp_path: Path, drift: str, expect: str) -> None:
    with SandboxServer(key="sk-doctor-drift-2b9c", drift=[drift]) as sb:
        r = contract(sb, tmp_path)
        report = json.loads(contract(sb, tmp_path, "--json").stdout)
    assert r.returncode == 4, r.stdout + r.stderr
    assert expect in r.stdout and "DRIFT" in r.stdout
    assert report["drift"] is True and any(e["drift"] for e in report["endpoints"])
    assert "send the --json output" in r.stderr


def test_contract_with_a_restricted_key_says_which_permission(tmp_path: Path) -> None:
    with SandboxServer(key="sk-full-1", restricted_key="sk-restricted-1") as sb:
        env = {**sandbox_env(sb, tmp_path, HOME=str(tmp_path)), "SHEEPCRM_API_KEY": "sk-restricted-1"}
        r = doctor(env, "--contract")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "HTTP 403" in r.stdout and "lacks a permission" in r.stdout
    assert any(line.startswith("ok") and "event summary" in line for line in r.stdout.splitlines())
