"""What a security review found, each through a real client session (or the real file system):
secrets in results, the audit trail around a write, resources and toolsets, spoofed previews,
address lines 4+, batches that move under us, hostile upstreams, the audit file itself."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.audit import AuditEntry, AuditLog
from sheepcrm_mcp.server.threadserver import ThreadServer
from tests.helpers import CANARY_KEY, MODES, STRANGER, audit_lines, stranger, task_status, text_of, writes


def recorder(seen: list[str], action: str = "accept") -> Any:
    async def callback(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params.message)
        content = {"confirm": True} if action == "accept" else None
        return types.ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    return callback


# --- a hostile upstream ----------------------------------------------------------------------------


@contextmanager
def hostile(handler: Any) -> Iterator[str]:
    app = Starlette(routes=[Route("/{path:path}", handler, methods=["GET", "PUT", "POST"])])
    server = ThreadServer(app).start()
    try:
        yield server.url
    finally:
        server.stop()


def upstream(url: str, **over: Any) -> dict[str, Any]:
    return {"base_url": url, "v1_base_url": url, "retry_attempts": 1, "cache_ttl": 0.0, **over}


async def echo_authorization(request: Request) -> Response:
    said = f"bad request from {request.headers.get('authorization')} key={CANARY_KEY}\u202e\n\n"
    return JSONResponse({"error": said}, status_code=400)


async def test_an_upstream_echoing_the_key_never_reaches_the_model(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    with hostile(echo_authorization) as url:
        async with connect(shared_sandbox, **upstream(url)) as client:
            found = await client.call_tool("search_contacts", {"query": "austen"})
            read = await client.call_tool("get_contact", {"uri": f"/{shared_sandbox.bucket}/person/abc/"})
    for result in (found, read):
        assert result.is_error
        body = text_of(result)
        assert CANARY_KEY not in body and "Bearer" not in body and "\u202e" not in body
        assert "sheepCRM" in body  # still an answer a person can act on


def test_doctor_lines_never_show_the_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from sheepcrm_mcp.doctor import run_doctor

    with hostile(echo_authorization) as url:
        monkeypatch.setenv("SHEEPCRM_API_KEY", CANARY_KEY)
        monkeypatch.setenv("SHEEPCRM_BUCKET", "demo")
        monkeypatch.setenv("SHEEPCRM_BASE_URL", url)
        monkeypatch.setenv("SHEEPCRM_V1_BASE_URL", url)
        code = run_doctor({})
    out = capsys.readouterr()
    assert code != 0
    assert CANARY_KEY not in out.out + out.err and "Bearer" not in out.out


async def huge(request: Request) -> Response:
    async def body() -> Any:
        yield b'{"results": [{"display_value": "'
        for _ in range(64):
            yield b"x" * 1_000_000
        yield b'"}]}'

    return StreamingResponse(body(), media_type="application/json")


async def drip(request: Request) -> Response:
    async def body() -> Any:
        for _ in range(600):
            yield b" "
            await anyio.sleep(0.5)

    return StreamingResponse(body(), media_type="application/json")


async def test_an_oversized_answer_is_refused_while_it_streams(shared_sandbox: SandboxServer, connect: Any) -> None:
    with hostile(huge) as url:
        async with connect(shared_sandbox, **upstream(url, max_body=1_000_000)) as client:
            result = await client.call_tool("search_contacts", {"query": "austen"})
    assert result.is_error and "larger than 1000000 bytes" in text_of(result)


async def test_a_drip_fed_answer_hits_the_deadline(shared_sandbox: SandboxServer, connect: Any) -> None:
    with hostile(drip) as url:
        async with connect(shared_sandbox, **upstream(url, timeout=1.0, connect_timeout=1.0)) as client:
            result = await client.call_tool("search_contacts", {"query": "austen"})
    # httpx's read timeout alone would wait forever: a byte arrives every 0.5 s.
    assert result.is_error and "did not answer within 2s" in text_of(result)


async def test_long_strings_are_cut_and_answers_are_capped(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    sandbox.store.update(jane, {"postal_code": "Q" * 50_000}, message="hostile data")
    async with connect(sandbox) as client:
        result = await client.call_tool("get_contact", {"uri": jane, "detail": "full"})
    assert not result.is_error
    body = text_of(result)
    assert "Q" * 2_001 not in body and "[cut: 48000 more characters]" in body
    assert len(result.content[0].text) < 100_000  # type: ignore[union-attr]


# --- the audit trail around a write ----------------------------------------------------------------


async def test_attempt_is_audited_before_the_write_and_the_outcome_after(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, elicitation=recorder([])) as client:
        original = AuditLog.record
        seen_puts: list[int] = []

        async def spy(self: AuditLog, entry: AuditEntry) -> str:
            seen_puts.append(len(writes(sandbox)))
            return await original(self, entry)

        client.runtime.audit.record = spy.__get__(client.runtime.audit)
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.structured_content["status"] == "applied"
    assert [e["outcome"] for e in audit_lines(tmp_path)] == ["attempt", "succeeded"]
    assert seen_puts == [0, 1]  # the attempt line was on disk before the PUT was sent


async def test_audit_failing_after_the_write_reports_the_truth(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, elicitation=recorder([])) as client:
        original = AuditLog.record

        async def full_disk_after_attempt(self: AuditLog, entry: AuditEntry) -> str:
            if entry.outcome != "attempt":
                raise OSError(28, "No space left on device")
            return await original(self, entry)

        client.runtime.audit.record = full_disk_after_attempt.__get__(client.runtime.audit)
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    body = result.structured_content
    assert not result.is_error and body["status"] == "applied" and body["audit_failed"] is True
    assert "nothing was changed" not in body["message"].lower() and "audit log could not be written" in body["message"]
    assert task_status(sandbox, uid) == "done"
    assert [e["outcome"] for e in audit_lines(tmp_path)] == ["attempt"]


async def test_an_unwritable_audit_log_stops_the_write(sandbox: SandboxServer, connect: Any) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, elicitation=recorder([]), audit_log=Path("/dev/null")) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.is_error and "nothing was sent" in text_of(result)
    assert task_status(sandbox, uid) == "open" and writes(sandbox) == []


async def test_a_decline_is_audited_even_when_the_record_cannot_be_read_again(
    sandbox: SandboxServer, connect: Any, tmp_path: Path
) -> None:
    """2026-07-28: the answer round reads the record again; sheepCRM is down by then; the "no" is audited."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]

    async def decline_then_upstream_dies(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        sandbox.stop()
        return types.ElicitResult(action="decline")

    async with connect(sandbox, mode="auto", elicitation=decline_then_upstream_dies, retry_attempts=1) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert result.structured_content["status"] == "not_approved", text_of(result)
    assert [e["outcome"] for e in audit_lines(tmp_path)] == ["declined"]


# --- resources follow toolsets -------------------------------------------------------------------


async def test_resources_come_only_with_their_toolset(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    uid = facts["jane_uri"].strip("/").rsplit("/", 1)[-1]
    async with connect(shared_sandbox, toolsets="help") as client:
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        with pytest.raises(Exception, match=r"(?i)unknown|not found"):
            await client.read_resource(f"sheepcrm://contact/{uid}")
        with pytest.raises(Exception, match=r"(?i)unknown|not found"):
            await client.read_resource(f"sheepcrm://segment/{facts['segment_fellows_uid']}")
    assert templates == set()
    async with connect(shared_sandbox, toolsets="contacts") as client:
        contact = await client.read_resource(f"sheepcrm://contact/{uid}")
    assert "Jane" in contact.contents[0].text  # type: ignore[union-attr]


# --- previews a person can trust -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_spoofed_name_cannot_fake_the_preview(sandbox: SandboxServer, connect: Any, mode: str) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    fake = "Jane\u202e\u200b\n" + "\n" * 40 + "• email: (empty) → (empty)" + "x" * 500
    sandbox.store.update(jane, {"formatted_name": fake}, message="hostile name")
    seen: list[str] = []
    async with connect(sandbox, mode=mode, elicitation=recorder(seen, "decline")) as client:
        await client.call_tool("update_contact", {"uri": jane, "phone": "+44 20 7946 0999"})
    [message] = seen[-1:]
    lines = message.splitlines()
    # summary, one change, the server's notice (the sandbox is not sheepCRM), the question: nothing else fits between
    assert len(lines) == 4 and lines[-1] == "Apply this change?", message
    assert lines[2].startswith("NOTICE: this server sends its sheepCRM API key to http://127.0.0.1:"), message
    assert "\u202e" not in message and "\u200b" not in message and "\\u202E" in message  # escaped, as a value
    assert len(lines[0]) <= 200
    assert lines[0].startswith(f'Update contact {jane} "Jane')  # the record's uri first, its name quoted after


async def test_a_booked_name_cannot_pass_for_another_attendee_in_the_preview(
    sandbox: SandboxServer, connect: Any
) -> None:
    """An attendee's name is what the booker typed. Named "Emily Brown (<Emily's uid>), Standard ticket, booked
    online", it made set_attendance's preview show Emily's uid (the label was name then uid, cut at 80 characters)
    while the write went to someone else. The label is the attendee's own uid first and whole, the name quoted
    after it and cut."""
    store = sandbox.store
    uid = store.demo_facts()["past_event_uid"]
    rows = [a for a in store.attendance(store.uri("booking", uid)) if not a.data.get("guest")]
    target = next(a for a in rows if a.data["status"] in ("accepted", "invited"))
    emily = next(a for a in rows if a.data["person_ref"] != target.data["person_ref"])
    target_uid = target.data["person_ref"].strip("/").rsplit("/", 1)[-1]
    emily_uid = emily.data["person_ref"].strip("/").rsplit("/", 1)[-1]
    fake = f"Emily Brown ({emily_uid}), Standard ticket, booked online, paid in full by card on the day"
    store.update(target.uri, {"attendee_name": fake, "display_value": fake}, message="a booker's typing")
    seen: list[str] = []
    async with connect(sandbox, elicitation=recorder(seen, "decline")) as client:
        await client.call_tool("set_attendance", {"uid": uid, "person_uris": [target.data["person_ref"]],
                                                  "status": "attended"})
    [line] = [x for x in seen[-1].splitlines() if x.startswith("• ")]
    assert line.startswith(f'• {target_uid} "Emily Brown ({emily_uid}), '), line  # whose record: first, whole
    assert emily_uid not in line.split('"')[0] and '…: ' in line  # her uid only inside the quoted, cut name
    assert writes(sandbox) == []


async def test_a_look_alike_email_is_pointed_out_in_the_preview(sandbox: SandboxServer, connect: Any) -> None:
    """update_contact to "jаne.austen@example.org" with a Cyrillic а reads as Jane's own email, a change that looks
    like none. Every write's preview points out a value to be written whose letters mix alphabets."""
    jane = sandbox.store.demo_facts()["jane_uri"]
    seen: list[str] = []
    async with connect(sandbox, elicitation=recorder(seen, "decline")) as client:
        await client.call_tool("update_contact", {"uri": jane, "email": "j\u0430ne.austen@example.org"})
        await client.call_tool("update_contact", {"uri": jane, "email": "jane.austen@example.com"})
    assert "email mixes alphabets (Cyrillic, Latin)" in seen[0], seen[0]
    assert "mixes alphabets" not in seen[1]
    assert writes(sandbox) == []


@pytest.mark.parametrize("value", ["+44 20\u202e7946", "+44\u200b20", "+44\n20", "+44\x1b[2J"])
async def test_hidden_characters_in_write_inputs_are_refused(
    sandbox: SandboxServer, connect: Any, value: str
) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    async with connect(sandbox, elicitation=recorder([])) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "phone": value})
    assert result.is_error and "invisible or control character" in text_of(result)
    assert writes(sandbox) == []


async def test_non_ascii_email_domains_are_shown_in_punycode(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    seen: list[str] = []
    async with connect(sandbox, elicitation=recorder(seen, "decline")) as client:
        await client.call_tool("update_contact", {"uri": jane, "email": "jane@exаmple.org"})  # Cyrillic а
    assert '"jane@exаmple.org" [domain xn--exmple-4nf.org]' in seen[-1]


async def test_the_preview_shows_the_email_domain_that_will_be_stored(
    sandbox: SandboxServer, connect: Any
) -> None:
    """IDNA 2003 maps ß to ss: the person would approve glasshouse.org while glaßhouse.org (another domain under
    IDNA 2008 / UTS 46 non-transitional) is stored. The preview shows the exact string and its real punycode."""
    jane = sandbox.store.demo_facts()["jane_uri"]
    seen: list[str] = []
    async with connect(sandbox, elicitation=recorder(seen)) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "email": "jane@glaßhouse.org"})
    assert result.structured_content["status"] == "applied"
    assert '→ "jane@glaßhouse.org" [domain xn--glahouse-sya.org]' in seen[-1]
    assert "glasshouse" not in seen[-1]
    record = sandbox.store.get(jane)
    assert record is not None and "jane@glaßhouse.org" in record.data["email"]


async def test_an_email_domain_no_mail_server_accepts_is_refused(sandbox: SandboxServer, connect: Any) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    async with connect(sandbox, elicitation=recorder([])) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "email": "jane@gla☃house.org"})
    assert result.is_error and "IDNA 2008" in text_of(result)
    assert writes(sandbox) == []


INVISIBLE = {
    "Hangul choseong filler": "\u115f", "Hangul jungseong filler": "\u1160", "Hangul filler": "\u3164",
    "halfwidth Hangul filler": "\uffa0", "Braille blank": "\u2800", "combining grapheme joiner": "\u034f",
    "variation selector 16": "\ufe0f", "Mongolian variation selector": "\u180b", "no-break space": "\u00a0",
    "em space": "\u2003", "soft hyphen": "\u00ad", "tag letter": "\U000e0041",
}


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
async def test_invisible_letters_in_write_inputs_are_refused(
    sandbox: SandboxServer, connect: Any, char: str
) -> None:
    """Filler letters and default-ignorable code points pad a value so that the preview looks like another."""
    jane = sandbox.store.demo_facts()["jane_uri"]
    async with connect(sandbox, elicitation=recorder([])) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "address_line_1": f"1 High{char}St"})
    assert result.is_error and f"U+{ord(char):04X}" in text_of(result)
    assert writes(sandbox) == []


async def test_invisible_letters_from_sheepcrm_are_escaped_in_the_preview(
    sandbox: SandboxServer, connect: Any
) -> None:
    jane = sandbox.store.demo_facts()["jane_uri"]
    padded = "Jane" + "\u3164" * 30 + "\u2800" * 30 + "(email: verified)"
    sandbox.store.update(jane, {"formatted_name": padded}, message="padded name")
    seen: list[str] = []
    async with connect(sandbox, elicitation=recorder(seen, "decline")) as client:
        await client.call_tool("update_contact", {"uri": jane, "phone": "+44 20 7946 0999"})
    assert "\u3164" not in seen[-1] and "\u2800" not in seen[-1]
    assert '"Jane\\u3164\\u3164' in seen[-1]  # the name is shown as a value: quoted, each filler escaped


async def test_the_preview_never_cuts_a_value_that_will_be_written(sandbox: SandboxServer, connect: Any) -> None:
    """A value of 121-200 characters was previewed cut at 120 while its hidden tail was written."""
    jane = sandbox.store.demo_facts()["jane_uri"]
    value = "1 High St " + "a" * 150 + " TAIL-ONLY-WRITTEN"
    assert len(value) <= 200
    seen: list[str] = []
    async with connect(sandbox, elicitation=recorder(seen)) as client:
        result = await client.call_tool("update_contact", {"uri": jane, "address_line_1": value})
    assert result.structured_content["status"] == "applied"
    assert f'→ "{value}"\n' in seen[-1]
    record = sandbox.store.get(jane)
    assert record is not None and record.data["address_lines"][0] == value


async def test_a_long_task_title_and_subject_leave_the_due_date_in_the_preview(
    sandbox: SandboxServer, connect: Any
) -> None:
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    uri = sandbox.store.uri("journal", uid)
    sandbox.store.update(uri, {"title": "T" * 300, "display_value": "T" * 300, "context_display": "S" * 300},
                         message="long title and subject")
    seen: list[str] = []
    async with connect(sandbox, elicitation=recorder(seen, "decline")) as client:
        await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    summary = seen[-1].splitlines()[0]
    assert "T" * 20 in summary and "S" * 20 in summary
    assert " UTC)" in summary and ", due " in summary, summary


# --- batches re-read before each unit ------------------------------------------------------------


async def test_a_batch_reports_units_that_moved_as_conflicts(sandbox: SandboxServer, connect: Any) -> None:
    facts = sandbox.store.demo_facts()
    event = facts["past_event_uid"]
    store = sandbox.store
    rows = [a for a in store.attendance(store.uri("booking", event)) if a.data.get("status") != "attended"][:2]
    people = [a.data["person_ref"] for a in rows]
    assert len(people) == 2
    async with connect(sandbox, elicitation=recorder([])) as client:
        sheep = client.runtime.client
        original = sheep.set_attendance
        sent: list[str] = []

        async def colleague_acts_after_our_first_write(uid: str, person: Any, status: str) -> Any:
            answer = await original(uid, person, status)
            sent.append(str(person))
            if len(sent) == 1:  # a colleague marks the second person "no-show" meanwhile
                store.set_attendance(store.uri("booking", event), people[1], "no-show")
            return answer

        sheep.set_attendance = colleague_acts_after_our_first_write
        result = await client.call_tool("set_attendance", {"uid": event, "person_uris": people, "status": "attended"})
    body = result.structured_content
    assert body["status"] == "partial" and sent == [people[0]], body
    assert "conflict" in body["message"]
    assert [c["result"] for c in body["changes"]] == ["applied", "not_applied"]


# --- the audit file itself -----------------------------------------------------------------------


async def test_audit_file_is_private_ascii_and_refuses_symlinks(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "sheepcrm"
    log = AuditLog(folder / "audit.jsonl", None, "elicit")
    await log.record(AuditEntry(tool="t", outcome="attempt", channel="c", arguments={"name": "a\u2028b\u2029c é"}))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "audit.jsonl").stat().st_mode) == 0o600
    raw = (folder / "audit.jsonl").read_bytes()
    assert raw.isascii() and len(raw.decode().splitlines()) == 1
    assert (await log.entries())[0]["arguments"]["name"] == "a\u2028b\u2029c é"
    target = tmp_path / "elsewhere.txt"
    target.write_text("")
    link = tmp_path / "link.jsonl"
    os.symlink(target, link)
    with pytest.raises(OSError):
        await AuditLog(link, None, "elicit").record(AuditEntry(tool="t", outcome="x", channel="c", arguments={}))
    assert target.read_text() == ""
    time.sleep(0)


async def test_another_users_audit_file_in_a_shared_folder_gets_no_lines(tmp_path: Path) -> None:
    """Another account's 0666 file in a 0777 folder, named by SHEEPCRM_AUDIT_LOG: refused, naming the fix."""
    import pwd

    other = pwd.getpwnam(stranger() and STRANGER).pw_uid
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    planted = shared / "audit.jsonl"
    planted.write_text("")
    os.chown(planted, other, -1)
    planted.chmod(0o666)
    entry = AuditEntry(tool="t", outcome="attempt", channel="c", arguments={"email": "a@example.org"})
    with pytest.raises(PermissionError, match=r"chmod 600|chown"):
        await AuditLog(planted, None, "elicit").record(entry)
    assert planted.read_text() == ""
    os.chown(planted, os.getuid(), -1)
    planted.chmod(0o600)  # ours and private now, but the folder is still writable by anyone
    with pytest.raises(PermissionError, match="chmod 700"):
        await AuditLog(planted, None, "elicit").record(entry)
    assert planted.read_text() == ""


async def test_a_value_in_look_alike_letters_of_one_alphabet_is_pointed_out_in_the_preview(
    sandbox: SandboxServer, connect: Any
) -> None:
    """A value wholly in another alphabet's look-alike letters mixes no alphabets, yet reads as Latin text: the
    postcode "ОХ1 3ВР" in Cyrillic letters is not OX1 3BP. And a new value that looks the same as the old one (an
    email with a digit 1 for an l) is a change that looks like none. Every write's preview says both."""
    jane = sandbox.store.demo_facts()["jane_uri"]
    record = sandbox.store.get(jane)
    assert record is not None
    email = str(record.data["email"][0])
    assert "l" in email
    twin = email[::-1].replace("l", "1", 1)[::-1]  # the last l as a digit one
    seen: list[str] = []
    async with connect(sandbox, elicitation=recorder(seen, "decline")) as client:
        await client.call_tool("update_contact", {"uri": jane, "postcode": "\u041e\u04251 3\u0412\u0420"})
        await client.call_tool("update_contact", {"uri": jane, "email": twin})
        await client.call_tool("update_contact", {"uri": jane, "postcode": "OX1 3BP"})
    assert 'is written in Cyrillic letters that look like Latin ones: it can read as "OX1 3BP"' in seen[0], seen[0]
    assert "email: the new value looks the same as the old one but is not" in seen[1], seen[1]
    assert "look like Latin" not in seen[2] and "looks the same" not in seen[2] and "right-to-left" not in seen[2]
    seen.clear()
    # A right-to-left letter reorders the numbers around it on screen ("+44 20 ש 0999 7946" shows its last two groups
    # swapped), though no control character is there: the preview says so.
    async with connect(sandbox, elicitation=recorder(seen, "decline")) as client:
        await client.call_tool("update_contact", {"uri": jane, "phone": "+44 20 \u05e9 0999 7946"})
    assert "phone holds right-to-left letters" in seen[0], seen[0]
    assert writes(sandbox) == []


async def test_every_write_says_when_approvals_are_off_and_every_preview_where_the_key_goes(
    sandbox: SandboxServer, connect: Any
) -> None:
    """F5, in-band beyond the first answer: with approvals off every write's answer says no person was asked, and
    while the key goes somewhere other than sheepCRM (here the sandbox) every preview the person reads says where."""
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    async with connect(sandbox, confirm="none") as client:
        done = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert done.structured_content["status"] == "applied"
    assert done.structured_content["message"].startswith("Approvals are OFF on this server (SHEEPCRM_CONFIRM=none)")
    jane = sandbox.store.demo_facts()["jane_uri"]
    seen: list[str] = []
    async with connect(sandbox, elicitation=recorder(seen, "decline")) as client:
        asked = await client.call_tool("update_contact", {"uri": jane, "phone": "+44 20 7946 0111"})
    assert asked.structured_content["status"] == "not_approved" and "Approvals are OFF" not in text_of(asked)
    host = sandbox.url.split("://", 1)[1].rstrip("/")
    [notice] = [line for line in seen[-1].splitlines() if line.startswith("NOTICE: this server sends its sheepCRM")]
    assert f"http://{host}" in notice and "not to sheepCRM" in notice, seen[-1]


ECHOES = [f"{enc}+{n}" for enc in ("base64", "base64url") for n in (0, 5, 6, 7)] + [
    f"{enc}+{n}" for enc in ("plain", "hex", "HEX", "percent", "PERCENT", "quoted", "reversed") for n in (0, 7)
]


async def test_an_upstream_echoing_the_key_encoded_is_scrubbed(connect: Any, tmp_path: Path) -> None:
    """A proxy copies the Authorization header into each task's title, in every common encoding: `Bearer <key>`
    (+0) and the key with 0, 1 or 2 characters before it (+7, +6, +5: base64's three alignments)."""
    from sheepcrm_mcp.sandbox.drift import ENCODINGS

    header = f"Bearer {CANARY_KEY}"
    forms = {ENCODINGS[e.partition("+")[0]](header[int(e.partition("+")[2]):].encode()) for e in ECHOES}
    with SandboxServer(key=CANARY_KEY, drift=[f"echoed-key={e}:/task" for e in ECHOES]) as sb:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        async with connect(sb, audit_log=tmp_path / "audit.jsonl") as client:
            one = await client.call_tool("get_task", {"uid": uid})
            many = await client.call_tool("list_tasks", {})
    for result in (one, many):
        body = text_of(result)
        assert not result.is_error, body
        leaked = [f for f in forms if f in body]
        assert not leaked and CANARY_KEY not in body and "QmVhcmVy" not in body, leaked
    title = one.structured_content["title"]  # type: ignore[index]
    assert title.count("[REDACTED]") == len(ECHOES) and not title.startswith("[REDACTED]"), title
