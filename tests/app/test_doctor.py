"""`sheepcrm-mcp doctor` as a user runs it: good key, bad key, unreachable address, missing settings."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheepcrm_mcp.doctor import run_contract, run_doctor
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.variants import NAMES
from sheepcrm_mcp.tools.contract import READS
from tests.contract import path_regex
from tests.helpers import REPO, binary, clean_env, sandbox_env


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
    # a sheepCRM host name that does not exist (a loopback port with no listener is refused before any
    # request: another local user could start listening there and get the key)
    dead = "https://unreachable.invalid.sheepcrm.com"
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
    probed = {e["endpoint"].split(" (")[0] for e in report["endpoints"]}
    assert probed == {read.name for read in READS}  # every upstream read the tools use
    sent = {e["endpoint"] for e in report["endpoints"] if " (" in e["endpoint"]}  # the filters the tools send
    assert sent == {"person list (email__startswithi)", "organisation list (email__startswithi)",
                    "member list (member)", "member list (start_date__lte, end_date__gte)",
                    "member list (end_date__lte)", "member list (membership_type)", "help search (include_text)",
                    "segment members (q)",
                    *(f"events ({s})" for s in ("current", "future", "running", "past", "draft")),
                    *(f"person search ({m})" for m in ("email", "first_name, last_name, date_of_birth",
                                                        "first_name, last_name, postal_code",
                                                        "title, last_name, postal_code")),
                    "person list (first_name, last_name)", "organisation list (name)"}, sent
    assert "write endpoints" in report["not_probed"]  # said, never implied
    assert all(e["status"] in (200, 404) for e in report["endpoints"]), report
    assert "sk-doctor-good-7d1e" not in r.stdout + r.stderr
    facts = doctor_sandbox.store.demo_facts()
    assert facts["jane_email"] not in r.stdout and "Austen" not in r.stdout  # names of fields, never values



def test_contract_record_state_and_has_renewed_decide_where_documented(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`record_state` respelled everywhere: drift for each read whose answer the documents give it and whose deleted
    records the tools leave out (memberships, attendance, the task lists, segments); events, whose EventSingle does
    not name it, keep it optional (the tools say it is unknown). `has_renewed` respelled: drift for the member
    listing (it decides the renewals list), optional for a contact's memberships (only shown)."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)

    def run(drift: str) -> tuple[int, list[str]]:
        with SandboxServer(key="sk-doctor-core-5e1", drift=[drift]) as sb:
            code = run_contract({**sb.settings(), "audit_log": tmp_path / "audit.jsonl"})
        return code, capsys.readouterr().out.splitlines()

    code, out = run("renamed-field=record_state")
    drifted = {x.split(" (")[0].removeprefix("DRIFT ") for x in out if x.startswith("DRIFT")}
    assert code == 4 and drifted == {"memberships", "attendance", "my tasks", "all tasks", "segments"}, out
    assert all("MISSING record_state" in x and "upgrade sheepcrm-mcp" in x for x in out if x.startswith("DRIFT")), out
    events = [x for x in out if x.split(" (")[0].split()[-1] in ("events", "event", "summary")]
    assert events and all(x.startswith("ok") and "not seen (optional):" in x and "record_state" in x
                          for x in events), events
    code, out = run("renamed-field=has_renewed")
    drifted = {x.split(" (/")[0].removeprefix("DRIFT ") for x in out if x.startswith("DRIFT")}
    assert code == 4 and "member list (end_date__lte)" in drifted and {d.split(" (")[0] for d in drifted} == {
        "member list"}, out
    assert all("MISSING has_renewed" in x for x in out if x.startswith("DRIFT")), out
    memberships = next(x for x in out if " memberships (" in x)
    assert memberships.startswith("ok") and "has_renewed" in memberships, memberships


def test_contract_membership_status_decides_and_paid_is_optional(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """membership_record_status decides check_membership's answers: its loss alone is drift, whether `paid` is
    there or not; `paid` is optional (openapi.yaml), so its loss alone is a warning, never drift."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)
    memberships = path_regex(next(r for r in READS if r.name == "memberships"))
    with SandboxServer(key="sk-doctor-core-5e1", drift=[f"renamed-field=paid:{memberships}"]) as sb:
        paid_gone = run_contract({**sb.settings(), "audit_log": tmp_path / "audit.jsonl"})
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if " memberships (" in x)
    assert paid_gone == 0 and not line.startswith("DRIFT") and "not seen (optional):" in line and "paid" in line, out
    with SandboxServer(key="sk-doctor-core-5e1",
                       drift=[f"renamed-field=membership_record_status:{memberships}"]) as sb:
        status_gone = run_contract({**sb.settings(), "audit_log": tmp_path / "audit.jsonl"})
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if " memberships (" in x)
    assert status_gone == 4 and line.startswith("DRIFT") and "MISSING membership_record_status" in line, out


@pytest.mark.parametrize("variant", [pytest.param(v, marks=pytest.mark.slow) for v in NAMES])
def test_contract_under_every_variant(variant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A variant is an answer the documents allow: no drift, except bodies in wrappers no client can know
    (other-wrappers), which the tools cannot read either."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)
    with SandboxServer(key="sk-doctor-variant-7", variant=variant) as sb:
        code = run_contract({**sb.settings(), "audit_log": tmp_path / "audit.jsonl"})
    out = capsys.readouterr().out
    drift = sorted({x.split(" (")[0] for x in out.splitlines() if x.startswith("DRIFT")})  # a read probed twice: once
    if variant == "other-wrappers":
        assert code == 4 and drift == ["DRIFT help search", "DRIFT person search", "DRIFT segment members"], out
    else:
        assert code == 0 and drift == [], out


BASIC = [  # a read the basic checks make, refused (a parameter) or moved (a path), and the answer's status
    ("rejected-param=page_size", "segments", 400),
    ("rejected-param=page", "segments", 400),
    ("rejected-param=q", "search", 400),
    ("moved-path:^/segments/v2/[^/]+/all$", "segments", 404),
    ("moved-path:^/search/v2/[^/]+$", "search", 404),
]


@pytest.mark.parametrize(
    ("drift", "read", "status"),
    [pytest.param(*case, id=case[0], marks=() if case[1:] in (("segments", 404), ("search", 400)) else pytest.mark.slow)
     for case in BASIC],
)
def test_a_basic_check_refused_by_a_changed_sheepcrm_is_drift(
    drift: str, read: str, status: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the key, bucket and address answered another read, a 400 or a 404 to a read the basic checks make is
    sheepCRM's change, not a setting: doctor gives a DRIFT line for that read and exit 4 (never "check
    SHEEPCRM_BUCKET" or "SHEEPCRM_BASE_URL"), and --contract goes on to probe every other read."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)
    path = next(r.path for r in READS if r.name == read)
    with SandboxServer(key="sk-doctor-basic-8c3", drift=[drift]) as sb:
        settings = {**sb.settings(), "audit_log": tmp_path / "audit.jsonl"}
        plain = run_doctor(settings)
        out = capsys.readouterr()
        code = run_contract(settings, as_json=True)
        report = json.loads(capsys.readouterr().out)
    assert plain == 4 and fail_lines(out.out) == [] and "SHEEPCRM_" not in out.out, out.out
    assert f"DRIFT {read} ({path}): HTTP {status}" in out.out and "upgrade sheepcrm-mcp" in out.out, out.out
    assert "doctor --contract" in out.err, out.err
    assert code == 4 and any(e["endpoint"] == read and e["drift"] for e in report["endpoints"]), report
    assert {e["endpoint"].split(" (")[0] for e in report["endpoints"]} == {r.name for r in READS}, report
    assert sum(e["status"] == 200 for e in report["endpoints"]) >= 5, report  # the rest was probed


def test_both_v2_reads_refused_name_the_bucket_or_the_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 404 to both the segment list and the search is a setting, told apart by the v1 API: a bucket v1 refuses too
    is the bucket; one v1 accepts is the v2 address (SHEEPCRM_BASE_URL), never "check SHEEPCRM_BUCKET"."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)
    with SandboxServer(key="sk-doctor-basic-8c3") as sb:
        settings = {**sb.settings(), "audit_log": tmp_path / "audit.jsonl"}
        bad_bucket = run_doctor({**settings, "bucket": "nosuch"})
        bucket_out = capsys.readouterr().out
        bad_address = run_doctor({**settings, "base_url": f"{settings['base_url']}/v9"})
        address_out = capsys.readouterr().out
    [line] = fail_lines(bucket_out)
    assert bad_bucket == 1 and "bucket 'nosuch' was not found" in line and "SHEEPCRM_BUCKET" in line, bucket_out
    [line] = fail_lines(address_out)
    assert bad_address == 1 and "SHEEPCRM_BASE_URL" in line and "SHEEPCRM_BUCKET" not in line, address_out
    assert "DRIFT" not in bucket_out + address_out


def test_contract_with_a_restricted_key_says_which_permission(tmp_path: Path) -> None:
    with SandboxServer(key="sk-full-1", restricted_key="sk-restricted-1") as sb:
        env = {**sandbox_env(sb, tmp_path, HOME=str(tmp_path)), "SHEEPCRM_API_KEY": "sk-restricted-1"}
        r = doctor(env, "--contract")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "HTTP 403" in r.stdout and "lacks a permission" in r.stdout
    assert any(line.startswith("ok") and "event summary" in line for line in r.stdout.splitlines())
    # what the key may not read was not checked: never "ok"
    refused = [line for line in r.stdout.splitlines() if "HTTP 403" in line]
    assert refused and all(line.startswith("skip") and "not checked" in line for line in refused), refused


def test_a_403_is_not_called_a_refused_key(tmp_path: Path) -> None:
    with SandboxServer(key="sk-doctor-403-5e2a", faults=["403:1.0:/segments/"]) as sb:
        r = doctor(sandbox_env(sb, tmp_path, HOME=str(tmp_path)))
    assert r.returncode == 1, r.stdout + r.stderr
    [line] = fail_lines(r.stdout)
    assert "HTTP 403" in line and "valid" in line and "refused" not in line, line


def test_contract_person_search_without_an_email_searches_what_it_matches_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No person has an email: the person search is probed with the names and a postcode or date of birth of a
    person just read (a last name alone is answered 404 whoever exists), so it finds them, and a 404 for them is a
    moved path (DRIFT), never "no match"; the search by email is a skip line saying why, never "ok"."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)

    def run(drift: list[str]) -> tuple[int, list[str]]:
        with SandboxServer(key="sk-doctor-person-4d2", drift=drift) as sb:
            for person in sb.store.by_type("person"):
                sb.store.replace_data(person.uri, {**person.data, "email": []})
            code = run_contract({**sb.settings(), "audit_log": tmp_path / "audit.jsonl"})
        return code, [x for x in capsys.readouterr().out.splitlines() if " person search (" in x
                      or " v1 membership by email (" in x]

    code, lines = run([])
    by_email, *searched = lines
    assert code == 0 and by_email.startswith("skip  v1 membership by email") and "no sampled person has an email" in \
        by_email, lines
    assert searched[0].startswith("skip  person search (email)") and "no sampled person has email" in searched[0]
    assert len(searched) == 4 and all(x.startswith("ok") and "HTTP 200; 1 record(s)" in x for x in searched[1:]), lines
    code, lines = run(["moved-path:^/search/v2/[^/]+/person"])
    moved = [x for x in lines if x.startswith("DRIFT person search (")]
    assert code == 4 and len(moved) == 3 and all("(/search/v2/{bucket}/person): HTTP 404" in x for x in moved), lines
    assert all("the path has moved or the endpoint is gone" in x and "no match" not in x for x in moved), lines


DETAILS = [  # a parameter refused, and a read sending it: the person search's sets of details, the listings by name
    ("rejected-param=first_name", "person search (first_name, last_name, postal_code) (/search/v2/{bucket}/person)"),
    ("rejected-param=last_name", "person list (first_name, last_name) (/api/v1/{bucket}/person/)"),
    ("rejected-param=postal_code", "person search (first_name, last_name, postal_code) (/search/v2/{bucket}/person)"),
    ("rejected-param=title", "person search (title, last_name, postal_code) (/search/v2/{bucket}/person)"),
    ("rejected-param=date_of_birth",
     "person search (first_name, last_name, date_of_birth) (/search/v2/{bucket}/person)"),
    ("rejected-param=name", "organisation list (name) (/api/v1/{bucket}/organisation/)"),
]


@pytest.mark.parametrize(
    ("drift", "read"),
    [pytest.param(*case, id=case[0], marks=() if case[0].endswith("=first_name") else pytest.mark.slow)
     for case in DETAILS],
)
def test_contract_probes_every_set_of_details_the_tools_send(
    drift: str, read: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """search_contacts and create_contact's duplicate check send each set of details the person search matches on
    (email; first+last+date of birth; first+last+postcode; title+last+postcode) and list people and organisations
    by name: each set is probed, so a parameter refused in any of them is drift (exit 4, a DRIFT line naming it)."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)
    with SandboxServer(key="sk-doctor-details-6f1", drift=[drift]) as sb:
        code = run_contract({**sb.settings(), "audit_log": tmp_path / "audit.jsonl"})
    out = capsys.readouterr().out
    assert code == 4 and f"DRIFT {read}: HTTP 400" in out, out
    assert "refused the parameters the tools send" in out, out
