"""The stderr log handler scrubs secrets from every record: message, arguments, traceback."""

from __future__ import annotations

import io
import logging
import warnings

import pytest

from sheepcrm_mcp.server import logs

KEY = "sk-live-0123456789abcdef"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    stream = io.StringIO()
    monkeypatch.setenv("SHEEPCRM_API_KEY", KEY)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    handler = logs.configure("DEBUG")
    monkeypatch.setattr(handler, "stream", stream)
    yield stream
    logging.captureWarnings(False)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_key_is_scrubbed_everywhere(captured: io.StringIO) -> None:
    log = logging.getLogger("some.library")
    log.info("GET with key %s", KEY)
    log.debug(f"f-string {KEY} and dict %(k)s", {"k": KEY})
    try:
        raise ValueError(f"Authorization: Bearer {KEY}")
    except ValueError:
        log.exception("failed")
    logs.add_secret("tok-abcdef-123456")
    log.warning("token tok-abcdef-123456 and key %r", KEY)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"deprecated thing used with {KEY}", DeprecationWarning, stacklevel=1)
    text = captured.getvalue()
    assert KEY not in text and "tok-abcdef-123456" not in text
    assert text.count("[REDACTED]") >= 6
    assert "GET with key [REDACTED]" in text
    assert "ValueError: Authorization: Bearer [REDACTED]" in text  # traceback kept, key gone
    assert "level=WARNING logger=py.warnings" in text  # warnings are logged, to stderr
    assert "logger=some.library" in text


def test_short_values_are_not_treated_as_secrets() -> None:
    f = logs.RedactSecrets(["abc", "", None])  # type: ignore[list-item]
    assert f.secrets == set()
    assert f.scrub("abc") == "abc"


def test_unformattable_record_is_kept(captured: io.StringIO) -> None:
    logging.getLogger("x").warning("broken %s %s", KEY)
    text = captured.getvalue()
    assert "broken" in text and KEY not in text


def test_encoded_forms_of_a_secret_are_scrubbed(captured: io.StringIO) -> None:
    import base64
    import urllib.parse

    forms = []
    for value in (KEY, f"Bearer {KEY}"):
        raw = value.encode()
        for lead in (b"", b"x", b"xy"):
            forms += [base64.b64encode(lead + raw).decode(), base64.urlsafe_b64encode(lead + raw).decode()]
        forms += [raw.hex(), raw.hex().upper(), "".join(f"%{b:02X}" for b in raw), urllib.parse.quote(value, safe=""),
                  value[::-1]]
    log = logging.getLogger("some.library")
    for form in forms:
        log.warning("echoed: %s (end)", form)
        assert "[REDACTED]" in logs.scrub(f"title {form} end"), form
    text = captured.getvalue()
    assert not [f for f in forms if f in text] and text.count("[REDACTED]") >= len(forms)
    assert logs.scrub("Call about renewal, 0123456789abcdef") == "Call about renewal, 0123456789abcdef"


def test_a_result_is_scrubbed_before_its_long_strings_are_cut() -> None:
    """An encoded key straddling the 2,000-character cut would leave a part the scrubber no longer recognises."""
    import base64

    from sheepcrm_mcp.server.paging import STRING_CAP, compact_answer
    from sheepcrm_mcp.server.specs import Output

    class Note(Output):
        text: str

    logs.add_secret(KEY)
    encoded = base64.b64encode(f"Bearer {KEY}".encode()).decode()
    answer = compact_answer(Note(text="x" * (STRING_CAP - 10) + encoded))
    body = answer.content[0].text  # type: ignore[union-attr]
    assert encoded[:10] not in body and "[REDACTED]" in body
