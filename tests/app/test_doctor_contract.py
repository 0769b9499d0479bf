"""`sheepcrm-mcp doctor --contract` against a sandbox that has drifted from sheepCRM's documents: each drift, each
core field renamed or retyped, is DRIFT (exit 4), never "ok"."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sheepcrm_mcp.doctor import run_contract
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.tools.contract import CORE_KINDS, READS, Read
from tests.contract import path_regex
from tests.helpers import REPO


@pytest.mark.parametrize(
    ("drift", "expect"),
    [
        ("renamed-field", "DRIFT search (/search/v2/{bucket}): HTTP 200; 50 record(s); under 'results'; "
         "MISSING display_value"),
        ("other-wrapper", "none of bookings in the answer"),
        ("extra-nulls", "ALWAYS NULL uid"),
        # the path moved: a 404 for a record the check had just found
        ("moved-path:^/audit/v2/", "DRIFT record history (/audit/v2/{bucket}/{resource_type}/{uid}/audit): HTTP 404"),
        # a parameter the tools send is refused
        ("rejected-param=since_days", "DRIFT record history (/audit/v2/{bucket}/{resource_type}/{uid}/audit): "
         "HTTP 400"),
        ("rejected-param=include_completed", "DRIFT my tasks (/notifications/v2/{bucket}/tasks): HTTP 400"),
        ("rejected-param=email__startswithi", "DRIFT person list (email__startswithi) (/api/v1/{bucket}/person/): "
         "HTTP 400"),
        ("rejected-param=end_date__gte", "DRIFT member list (start_date__lte, end_date__gte) "
         "(/api/v1/{bucket}/member/): HTTP 400"),
        # the renewal window's end and the plan, filters search_contacts sends to the member listing
        ("rejected-param=end_date__lte", "DRIFT member list (end_date__lte) (/api/v1/{bucket}/member/): HTTP 400"),
        ("rejected-param=membership_type", "DRIFT member list (membership_type) (/api/v1/{bucket}/member/): "
         "HTTP 400"),
        # one event state's path moved; a parameter only the help tool sends refused; search rows' ids bare uids
        ("moved-path:^/events/v2/[^/]+/bookings/future",
         "DRIFT events (future) (/events/v2/{bucket}/bookings/{state}): HTTP 404"),
        ("rejected-param=include_text", "DRIFT help search (include_text) (/search/v2/{bucket}/help): HTTP 400"),
        ("bare-id:^/search/v2/[^/]+$", "RETYPED id sent as a bare uid in "),
        # the person search moved: a search for the email of a person just read answers 404 (no match)
        ("moved-path:^/search/v2/[^/]+/person", "DRIFT person search (email) (/search/v2/{bucket}/person): HTTP 404"),
        # a v1 listing's wrapper renamed
        ("other-wrapper=results:^/api/v1/[^/]+/member/$", "DRIFT member list (/api/v1/{bucket}/member/): HTTP 200; "
         "0 record(s); under '(not found)'; none of results in the answer"),
        # a v1 listing's echo of the page it holds renamed: the tools could not tell whether it paged as asked
        ("renamed-field=page_size:^/api/v1/[^/]+/member/$", "DRIFT member list (/api/v1/{bucket}/member/): HTTP 200; "
         "5 record(s); under 'results'; MISSING page_size"),
        # the basic checks' own reads, refused or moved once the key, bucket and address answered another read
        ("rejected-param=page_size", "DRIFT segments (/segments/v2/{bucket}/all): HTTP 400"),
        ("rejected-param=q", "DRIFT search (/search/v2/{bucket}): HTTP 400"),
        ("moved-path:^/segments/v2/[^/]+/all$", "DRIFT segments (/segments/v2/{bucket}/all): HTTP 404"),
        ("moved-path:^/search/v2/[^/]+$", "DRIFT search (/search/v2/{bucket}): HTTP 404"),
        # an event's `cancelled` renamed: a cancelled event would show as its status (published)
        ("renamed-field=cancelled", "DRIFT events (/events/v2/{bucket}/bookings/{state}): HTTP 200; 15 record(s); "
         "under 'bookings'; MISSING cancelled"),
    ],
)
def test_contract_reports_drift(
    tmp_path: Path, drift: str, expect: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the same code as the command (test_contract_is_clean_against_the_documented_shapes runs the
    binary), once for the person's lines and once for the JSON report."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)
    with SandboxServer(key="sk-doctor-drift-2b9c", drift=[drift]) as sb:
        settings = {**sb.settings(), "audit_log": tmp_path / "audit.jsonl"}
        code = run_contract(settings)
        out = capsys.readouterr()
        assert run_contract(settings, as_json=True) == 4
        report = json.loads(capsys.readouterr().out)
    assert code == 4, out.out + out.err
    assert expect in out.out, out.out
    assert report["drift"] is True and any(e["drift"] for e in report["endpoints"])
    assert "upgrade sheepcrm-mcp, or send `sheepcrm-mcp doctor --contract --json`" in out.out + out.err
    if "HTTP 404" in expect:
        assert "the path has moved or the endpoint is gone" in out.out
    if "HTTP 400" in expect:
        assert "refused the parameters the tools send" in out.out


@pytest.mark.parametrize(
    ("drift", "read", "expect"),
    [
        # a date that became a number
        ("number-field=start_date", "events", "RETYPED start_date sent as number (the tools read string)"),
        # a flag sent as a list
        ("retyped-field=completed", "my tasks", "RETYPED completed sent as list (the tools read boolean)"),
        # a list of records that became a string: never "no records to check"
        ("string-field=bookings", "events", "UNREADABLE 'bookings' holds a string, not a list of records"),
        # a list holding an item that is not a record
        ("null-item:/bookings/", "events", "UNREADABLE 1 of "),
        # a v1 listing's paging echo sent as text: the tools read a number
        ("string-field=page:^/api/v1/[^/]+/person/$", "person list", "RETYPED page sent as string (the tools read "
         "number)"),
    ],
)
def test_contract_reports_retyped_core_fields_and_unreadable_lists(
    tmp_path: Path, drift: str, read: str, expect: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A core field of another kind than the tools read (per tools/contract.py CORE_KINDS), or a list whose items
    are not records, is drift: exit 4 and a DRIFT line naming the field and the kind (never a value), with what to
    do; a non-empty list that could not be read is never "no records to check"."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)
    with SandboxServer(key="sk-doctor-retyped-3", drift=[drift]) as sb:
        code = run_contract({**sb.settings(), "audit_log": tmp_path / "audit.jsonl"})
    out = capsys.readouterr().out
    line = next((x for x in out.splitlines() if f" {read} (" in x), "")
    assert code == 4 and line.startswith("DRIFT") and expect in line, out
    assert "upgrade sheepcrm-mcp, or send `sheepcrm-mcp doctor --contract --json`" in line, line
    assert "no records to check" not in line, line


def test_every_core_field_has_the_kinds_the_tools_read() -> None:
    """CORE_KINDS covers every core field and envelope key of the contract table and agrees with the documents'
    types (the committed tests/contract_table.json) wherever they give one."""
    table = json.loads((REPO / "tests" / "contract_table.json").read_text())["fields"]
    names = {"number": "number", "integer": "number", "string": "string", "boolean": "boolean", "object": "object"}
    for read in READS:
        for group in (*read.core, *read.envelope):
            for f in group.split("|"):
                assert f in CORE_KINDS, f"{read.name}: core field or envelope key {f} has no kinds in CORE_KINDS"
                documented = table[read.name]["fields"].get(f, {}).get("type")
                if documented in names:
                    assert names[documented] in CORE_KINDS[f], (read.name, f, documented)


CORE = [(read, group) for read in READS for group in (*read.core, *read.envelope)]
NAMED = {("my tasks", "completed"), ("my tasks", "date|due_date"), ("memberships", "membership_record_status"),
         ("member list", "membership_record_status"), ("attendance", "guest"), ("member list", "total"),
         ("person list", "page"), ("memberships", "record_state|state"), ("member list", "has_renewed"),
         ("attendance", "record_state"), ("person list", "state|record_state"), ("event", "cancelled"),
         ("person search", "id|uri"), ("v1 record", "email"), ("v1 membership by email", "member_till_plus_grace")}


@pytest.mark.parametrize(
    ("read", "group"),
    [pytest.param(r, g, id=f"{r.name}:{g}", marks=() if (r.name, g) in NAMED else pytest.mark.slow) for r, g in CORE],
)
def test_contract_reports_each_core_field_renamed(
    read: Read, group: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each field (or group of alternatives) an answer depends on, renamed on its endpoint only: exit 4 and a
    DRIFT line for that endpoint naming it (in-process: the same code as the command, without a subprocess)."""
    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)
    drift = [f"renamed-field={f}:{path_regex(read)}" for f in group.split("|")]
    with SandboxServer(key="sk-doctor-core-5e1", drift=drift) as sb:
        code = run_contract({**sb.settings(), "audit_log": tmp_path / "audit.jsonl"})
    out = capsys.readouterr()
    line = next((x for x in out.out.splitlines() if x.startswith(f"DRIFT {read.name} (")), None)
    assert code == 4 and line is not None, out.out
    assert f"MISSING {group}" in line, line
