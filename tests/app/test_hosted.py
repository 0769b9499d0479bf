"""Hosted mode end to end with the project's real OpenID provider (.ci/idp, oidc-provider): sign-in by
authorization code + PKCE, a tool call per profile, the refusals, and a member session under attack."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.paging import encode_cursor
from tests.contract import check_request
from tests.helpers import (
    CANARY_KEY,
    MEMBER_TOOLS,
    approve,
    as_person,
    clean_env,
    hosted_session,
    own_lines,
    post_initialize,
    serve_hosted,
    sign_in,
)


@pytest.fixture(scope="module")
def hosted_site(idp: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SandboxServer, Path]]:
    tmp = tmp_path_factory.mktemp("hosted")
    with SandboxServer(key=CANARY_KEY) as sb, serve_hosted(sb, tmp, idp) as url:
        yield url, sb, tmp


def test_metadata_and_401_point_at_the_provider(hosted_site: tuple[str, SandboxServer, Path], idp: str) -> None:
    url = hosted_site[0]
    meta = httpx.get(url + "/.well-known/oauth-protected-resource/mcp").json()
    assert meta["resource"] == url + "/mcp" and meta["authorization_servers"] == [idp]
    assert meta["scopes_supported"] == ["sheepcrm"]
    response = post_initialize(url, None)
    assert response.status_code == 401
    assert f'resource_metadata="{url}/.well-known/oauth-protected-resource/mcp"' in response.headers["www-authenticate"]
    assert 'scope="sheepcrm"' in response.headers["www-authenticate"]  # what a client should ask the provider for
    assert "result" not in response.text
    assert httpx.get(url + "/healthz").status_code == 200


async def test_staff_signs_in_and_gets_every_tool(hosted_site: tuple[str, SandboxServer, Path], idp: str) -> None:
    url = hosted_site[0]
    async with hosted_session(url, sign_in(idp, "staff", url + "/mcp")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        found = await client.call_tool("search_contacts", {"query": "austen"})
    assert {"update_contact", "set_attendance", "update_task", "search_contacts"} <= names
    assert not found.is_error and any("Austen" in c["name"] for c in found.structured_content["contacts"])


async def test_helpdesk_writes_tasks_but_not_contacts_and_is_audited(
    hosted_site: tuple[str, SandboxServer, Path], idp: str
) -> None:
    url, sb, tmp = hosted_site
    uid = sb.store.demo_facts()["my_open_task_uid"]
    async with hosted_session(url, sign_in(idp, "helpdesk", url + "/mcp"), elicitation_callback=approve) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        done = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        edit = await client.call_tool("update_contact", {"uri": "/demo/person/x/", "fields": {"locality": "Y"}})
    assert "update_contact" not in names and {"update_task", "set_attendance", "get_contact"} <= names
    assert done.structured_content["status"] == "applied"
    assert edit.is_error  # not a tool of this profile
    lines = [json.loads(x) for x in (tmp / "audit.jsonl").read_text().splitlines()]
    mine = [x for x in lines if x["tool"] == "update_task" and x["outcome"] == "succeeded"]
    who = {"sub": "u-helpdesk", "email": "helpdesk@sheepcrm.test", "profile": "helpdesk"}
    assert mine and mine[-1]["caller"] == who


async def test_helpdesk_my_tasks_say_they_are_the_shared_keys(
    hosted_site: tuple[str, SandboxServer, Path], idp: str
) -> None:
    """Every helpdesk agent shares the profile's sheepCRM key, so scope 'mine' is that key's user's tasks: the answer
    says so, lest the assistant tell the agent they are theirs. scope 'all' needs no such note."""
    url = hosted_site[0]
    async with hosted_session(url, sign_in(idp, "helpdesk", url + "/mcp")) as client:
        mine = await client.call_tool("list_tasks", {"status": "any"})
        every = await client.call_tool("list_tasks", {"scope": "all", "status": "any"})
    assert not mine.is_error and mine.structured_content["tasks"], mine.content
    note = mine.structured_content["note"]
    assert "sheepCRM user this server's helpdesk key belongs to" in note and "everyone using the helpdesk" in note
    assert "key belongs to" not in (every.structured_content.get("note") or "")


async def test_member_gets_self_service_about_themselves(
    hosted_site: tuple[str, SandboxServer, Path], idp: str
) -> None:
    url, sb, _ = hosted_site
    facts = sb.store.demo_facts()
    async with hosted_session(url, sign_in(idp, "member", url + "/mcp")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        mine = await client.call_tool("my_membership", {})
    assert names == MEMBER_TOOLS
    assert mine.structured_content["contact_uri"] == facts["jane_uri"] and mine.structured_content["is_member"]


async def test_my_bookings_reads_the_members_orders_and_the_listed_events(idp: str, tmp_path: Path) -> None:
    """my_bookings asks sheepCRM for the member's own orders (getEventOrdersForContact, keyed by the buyer) and reads
    the attendance of the events listed in the asked-for states (a guest, or an attendee someone else booked, holds
    no order): one request for the orders, one per state list, one per listed event, at most SCAN besides the
    ordered ones. The bookings are the member's booked sessions (never invitations), their own and the guest sessions
    naming them (as the guest or the booker: the documents do not say which ref is whose), as the store holds them."""
    from sheepcrm_mcp.tools.events import SCAN

    with SandboxServer(key=CANARY_KEY) as sb, serve_hosted(sb, tmp_path, idp, cache_ttl=0) as url:
        store, facts = sb.store, sb.store.demo_facts()
        jane = facts["jane_uri"]
        booked = store.events_of(jane)
        async with hosted_session(url, sign_in(idp, "member", url + "/mcp")) as client:
            for when, states in (("upcoming", {"running", "future"}), ("past", {"past"}), ("all", {"all"})):
                before = len(sb.request_log)
                result = await client.call_tool("my_bookings", {"when": when, "limit": 50})
                sent = [r for r in sb.request_log[before:] if r.path.startswith("/events/")]
                assert not result.is_error, result.content
                events = [e for e in booked if store.event_states(e) & states]
                expected = sorted(
                    (e.uid, s.data["status"], s.data["ticket"]) for e in events for s in store.attendance(e.uri)
                    if ((s.data.get("person_ref") == jane and not s.data.get("guest"))
                        or (s.data.get("guest") and jane in (s.data.get("person_ref"), s.data.get("guest_ref"))))
                    and s.data.get("record_state") != "deleted" and s.data["status"] in ("accepted", "attended",
                                                                                         "no-show")
                )
                got = result.structured_content["bookings"]
                assert sorted((b["event_uid"], b["status"], b["ticket"]) for b in got) == expected and expected
                if when == "upcoming":  # sheepCRM's "current" list holds events ended up to 14 days ago: none here
                    ended = {e.uid for e in booked if "past" in store.event_states(e)}
                    assert ended & {e.uid for e in booked if "current" in store.event_states(e)}
                    assert ended.isdisjoint(b["event_uid"] for b in got)
                listed_events = {e.uid for e in store.events("all") if store.event_states(e) & states}
                read = sorted(r.path.split("/")[5] for r in sent if r.path.endswith("/attendance/all"))
                assert read == sorted(listed_events) and len(read) <= len(events) + SCAN, when  # each once
                assert [r.path for r in sent if "/person/" in r.path] == [
                    f"/events/v2/demo/person/{facts['jane_uid']}/orders"
                ]
                lists = [r for r in sent if "/bookings/" in r.path]
                # each state list's first page is shorter than asked: one more page tells a cap from the end
                assert sorted("page=2" in r.query for r in lists) == [False] * len(states) + [True] * len(states), when
                assert len(sent) == 1 + len(lists) + len(read), when
                print(f"\nmy_bookings({when}): {len(sent)} upstream event requests, {len(store.events('all'))} events")
        bad = [why for r in sb.request_log if (why := check_request(r.method, r.path, r.query))]
        assert bad == []


def test_a_v1_404_with_a_key_at_fault_is_not_no_contact_has_your_email(idp: str, tmp_path: Path) -> None:
    """sheepCRM's v1 answers 404 for an unknown email and for a key it does not accept alike: when the member
    profile's key cannot read the bucket either, the member is not told that no contact has their email."""
    with SandboxServer(key=CANARY_KEY) as sb, serve_hosted(sb, tmp_path, idp, api_key_member="sk-not-accepted") as url:
        response = post_initialize(url, sign_in(idp, "member", url + "/mcp"))
    said = response.text + response.headers.get("www-authenticate", "")
    assert response.status_code == 503 and "no contact has your email" not in said, (response.status_code, said)


def test_a_membership_lookup_that_names_no_contact_is_could_not_read(idp: str, tmp_path: Path) -> None:
    """A membership-by-email answer without `person` (drift: the key respelled) is not "no contact has your
    email": sign-in says the membership could not be looked up (503)."""
    drift = ["renamed-field=person:/api/v1/demo/user/membership/"]
    with SandboxServer(key=CANARY_KEY, drift=drift) as sb, serve_hosted(sb, tmp_path, idp) as url:
        response = post_initialize(url, sign_in(idp, "member", url + "/mcp"))
    said = response.text + response.headers.get("www-authenticate", "")
    assert response.status_code == 503 and "no contact has your email" not in said, (response.status_code, said)


async def test_a_membership_lookup_404_is_checked_with_the_contact_listings(idp: str, tmp_path: Path) -> None:
    """The membership lookup answers from cached data: its 404 (drift) is checked with the contact listings, as
    check_membership does, and the member whose email the listing holds signs in as themselves."""
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:/api/v1/demo/user/membership/"]) as sb, \
            serve_hosted(sb, tmp_path, idp) as url:
        async with hosted_session(url, sign_in(idp, "member", url + "/mcp")) as client:
            mine = await client.call_tool("my_membership", {})
        jane = sb.store.demo_facts()["jane_uri"]
    assert not mine.is_error and mine.structured_content["contact_uri"] == jane, mine.content


@pytest.mark.parametrize(
    ("user", "resource", "scope", "status", "error"),
    [
        ("staff", "http://127.0.0.1:1/mcp", "sheepcrm", 401, "invalid_token"),  # wrong audience
        ("staff", None, "sheepcrm:write", 403, "insufficient_scope"),  # missing the required scope
        ("unverified", None, "sheepcrm", 403, "insufficient_scope"),  # email_verified false
        ("shared-a", None, "sheepcrm", 403, "insufficient_scope"),  # email shared by two contacts
        ("stranger", None, "sheepcrm", 403, "insufficient_scope"),  # email of no contact
        ("norole", None, "sheepcrm", 403, "insufficient_scope"),  # no role maps to a profile
    ],
)
def test_refusals_from_real_tokens(
    hosted_site: tuple[str, SandboxServer, Path], idp: str, user: str, resource: str | None, scope: str, status: int,
    error: str,
) -> None:
    url = hosted_site[0]
    response = post_initialize(url, sign_in(idp, user, resource or url + "/mcp", scope))
    assert response.status_code == status
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer ") and f'error="{error}"' in header
    assert f'resource_metadata="{url}/.well-known/oauth-protected-resource/mcp"' in header
    assert "result" not in response.text and "serverInfo" not in response.text


# --- member isolation under attack ------------------------------------------------------------


def others(sb: SandboxServer, me: str) -> set[str]:
    """Every identifier and name of every contact but `me`: uris, uids, emails, names."""
    found: set[str] = set()
    for rtype in ("person", "organisation"):
        for r in sb.store.by_type(rtype):
            if r.uri == me:
                continue
            emails = r.data.get("email") or []
            found |= {r.uri, r.uid, r.display_value, *(e for e in emails if e)}
    return {s for s in found if s and len(s) >= 4}


ARGS = ("uri", "uid", "email", "person", "person_uri", "contact_uri", "name", "uids")


def variants(value: str) -> list[str]:
    return [value, value.upper(), urllib.parse.quote(value, safe=""), urllib.parse.quote(urllib.parse.quote(value)),
            value.replace("/", "%2F")]


@pytest.mark.slow
async def test_member_isolation_under_attack(hosted_site: tuple[str, SandboxServer, Path], idp: str) -> None:
    url, sb, _ = hosted_site
    facts = sb.store.demo_facts()
    me = facts["jane_uri"]
    secret = others(sb, me)
    targets = [facts[f"{k}_uri"] for k in ("lapsed", "shared_email_1", "injection_person")]
    probes: list[str] = []
    for uri in targets:
        rec = sb.store.get(uri)
        assert rec is not None
        probes += variants(uri) + variants(rec.uid) + variants(rec.data["email"][0]) + variants(rec.display_value)
    # A cursor issued to another session (staff, list_events) and one forged for another person's bookings.
    async with hosted_session(url, sign_in(idp, "staff", url + "/mcp")) as staff:
        page = await staff.call_tool("list_events", {"state": "all", "limit": 1})
        staff_view = (await staff.call_tool("search_contacts", {"query": "bronte"})).model_dump_json()
    assert any(s in staff_view for s in secret)  # the leak check does see other people's data when it is there
    foreign_cursors = [page.structured_content["next_cursor"], encode_cursor(0, f"bookings:{targets[0]}:upcoming"),
                       encode_cursor(1, f"bookings:{targets[1]}:all")]

    calls = refused = 0
    leaks: list[str] = []

    def check(sent: Any, answer: str) -> None:
        nonlocal calls
        calls += 1
        text = json.dumps(sent)
        leaks.extend(s for s in secret if s in answer and s not in text)

    async with hosted_session(url, sign_in(idp, "member", url + "/mcp")) as client:
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == MEMBER_TOOLS
        for tool in tools:
            for n, probe in enumerate(probes):
                for arg in (ARGS[n % len(ARGS)], ARGS[(n + 3) % len(ARGS)]):  # each name of argument, in turn
                    args = {arg: probe}
                    result = await client.call_tool(tool.name, args)
                    refused += result.is_error
                    assert result.is_error, (tool.name, args)
                    check(args, result.model_dump_json())
        searches: list[tuple[str, dict[str, Any]]] = [("my_membership", {"detail": "full"})]
        searches += [("my_bookings", {"when": w}) for w in ("upcoming", "past", "all")]
        searches += [("upcoming_events", {"query": p[:100]}) for p in probes]
        searches += [("search_help", {"query": p[:200], "detail": "full"}) for p in probes if len(p.strip()) >= 2]
        searches += [(name, {"cursor": c}) for c in foreign_cursors for name in ("my_bookings", "upcoming_events")]
        for name, args in searches:
            result = await client.call_tool(name, args)
            if "cursor" in args:
                assert result.is_error, (name, args)
                refused += 1
            check(args, result.model_dump_json())
        templates = (await client.list_resource_templates()).resource_templates
        assert templates == []  # nothing takes an id
        uris = ["sheepcrm://me/membership", "sheepcrm://guide"]
        for probe in probes:
            uris += [f"sheepcrm://contact/{probe}", f"sheepcrm://me/membership/{probe}", f"sheepcrm://me/{probe}",
                     f"sheepcrm://event/{probe}", f"sheepcrm://segment/{probe}", f"sheepcrm://me/membership?uri={probe}"]
        for uri in uris:
            try:
                read = (await client.read_resource(uri)).model_dump_json()
            except Exception as exc:  # an MCP error is a refusal
                read = str(exc)
                refused += 1
            check(uri, read)
        for prompt in (await client.list_prompts()).prompts:
            for probe in probes[:8]:
                args = {a.name: probe for a in prompt.arguments or []}
                got = await client.get_prompt(prompt.name, args)
                check(args, got.model_dump_json())
        own = await client.call_tool("my_membership", {})
    assert own.structured_content["contact_uri"] == me
    print(f"\nmember isolation: {calls} calls, {refused} refused, {len(leaks)} leaks of {len(secret)} identifiers")
    assert leaks == []
    assert calls > 500


@pytest.mark.slow
@pytest.mark.parametrize("good", [True, False])
def test_doctor_checks_the_auth_settings(idp: str, good: bool, tmp_path: Path) -> None:
    issuer = idp if good else "http://127.0.0.1:9/"
    env = clean_env(SHEEPCRM_AUTH="oauth", SHEEPCRM_OAUTH_ISSUER=issuer,
                    SHEEPCRM_OAUTH_RESOURCE="http://127.0.0.1:8765/mcp")
    command, person = as_person(own_lines(env), tmp_path / "person")  # hosted settings: the person's own file
    done = subprocess.run([*command, "doctor", "--sandbox"], env={**env, **person}, capture_output=True, text=True,
                          timeout=60)
    assert ("ok   JWKS fetched: 1 signing key(s)" in done.stdout) == good, done.stdout
    assert ("ok   audience (resource) configured: http://127.0.0.1:8765/mcp") in done.stdout
    assert (done.returncode == 0) == good
    if good:
        assert "ok   approval page: off (no SHEEPCRM_OAUTH_CLIENT_ID)" in done.stdout
        env["SHEEPCRM_OAUTH_CLIENT_ID"] = "sheepcrm-approvals"
        env["SHEEPCRM_OAUTH_CLIENT_SECRET"] = "page-secret-" + "x" * 20
        command, person = as_person(own_lines(env), tmp_path / "person")
        page = subprocess.run([*command, "doctor", "--sandbox"], env={**env, **person}, capture_output=True,
                              text=True, timeout=60)
        assert ("ok   approval page: sign-in client sheepcrm-approvals; its redirect URI at the provider must be "
                "http://127.0.0.1:8765/approve/callback; sign-in requests are pushed (PAR)") in page.stdout, page.stdout
        assert "x" * 20 not in page.stdout + page.stderr and page.returncode == 0
    if not good:
        assert f"FAIL issuer {issuer} not usable" in done.stdout
