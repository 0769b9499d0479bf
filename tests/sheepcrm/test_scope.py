"""URI/uid/bucket validation: nothing outside the bucket becomes a path."""

from __future__ import annotations

import pytest

from sheepcrm_mcp.sheepcrm.scope import ScopeError, check_uid, parse_uri

GOOD = "5f1c0ffee0ddba11ab1e0001"

ESCAPES = [
    f"/other/person/{GOOD}/",
    f"/demo/person/../{GOOD}/",
    f"/demo/person/%2e%2e/{GOOD}/",
    f"/demo/person/{GOOD}%2f/",
    f"/demo/person/{GOOD}%252f/",
    f"https://evil.example/demo/person/{GOOD}/",
    f"//evil.example/demo/person/{GOOD}/",
    f"/demo@evil.example/person/{GOOD}/",
    f"\\demo\\person\\{GOOD}\\",
    f"/demo/person/{GOOD}\x00/",
    "/demo/person/5f1c0ffee0ddba11ab1e０００1/",  # full-width digits
    "/dеmo/person/5f1c0ffee0ddba11ab1e0001/",  # Cyrillic 'е'
    f"/demo/person/{GOOD}/?q=1",
    f"/demo/person/{GOOD}/#x",
    "/demo/person/" + "a" * 65 + "/",
    f"/demo/secret/{GOOD}/",
    "/demo/person//",
    "",
]


@pytest.mark.parametrize("uri", ESCAPES)
def test_escape_attempts_are_refused(uri: str) -> None:
    with pytest.raises(ScopeError):
        parse_uri(uri, "demo")


def test_good_uri_and_bare_uid() -> None:
    assert str(parse_uri(f"/demo/person/{GOOD}/", "demo")) == f"/demo/person/{GOOD}/"
    assert str(parse_uri(f"/demo/organisation/{GOOD}", "demo")) == f"/demo/organisation/{GOOD}/"
    with pytest.raises(ScopeError, match="outside bucket 'demo'"):
        parse_uri(f"/other/person/{GOOD}/", "demo")


@pytest.mark.parametrize("uid", ["..", "a/b", "a b", "", "x" * 65, "ab%2f", "١٢٣"])
def test_bad_uids(uid: str) -> None:
    with pytest.raises(ScopeError):
        check_uid(uid)
