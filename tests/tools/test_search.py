"""search_contacts end to end: an answer it cannot read is said to be unreadable (never "no match"), and each hit
carries what a person needs to act on it: the real postcode, the town, member or not. Expected values come from
the sandbox's store."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.records import now_utc
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.tools import search
from sheepcrm_mcp.tools.search import SearchContactsInput, search_contacts
from tests.helpers import CANARY_KEY, MODES, Readers, answer, answer_body, error_text, read, scripted


async def test_a_person_search_answer_in_another_shape_is_could_not_read(connect: Any) -> None:
    with SandboxServer(key=CANARY_KEY, variant="other-wrappers") as sb:  # {"people": [...]}
        email = sb.store.demo_facts()["jane_email"]
        result = await answer(connect, sb, "search_contacts", {"email": email})
    text = error_text(result)
    assert "Could not read sheepCRM's answer to the person search" in text and "people" in text, text
    assert "No contacts match" not in text and "Jane" not in text  # keys are named, values never


async def test_a_postcode_prefix_shows_each_contacts_real_postcode(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    store = shared_sandbox.store
    people = [p for p in store.by_type("person") if p.data.get("postal_code")]
    outward = Counter(p.data["postal_code"].split()[0] for p in people).most_common(1)[0][0]
    result = await answer(connect, shared_sandbox, "search_contacts", {"postcode": outward, "limit": 50})
    hits = result.structured_content["contacts"]
    note = result.structured_content["note"]
    assert note.startswith("Searched by postcode with sheepCRM's free-text search"), note  # never "by name"
    described = [h for h in hits if "postcode" in h]
    assert len(hits) > search.DESCRIBED and len(described) == search.DESCRIBED, hits
    for h in described:  # the real postcode, never the prefix asked for
        record = store.get(h["uri"])
        assert record is not None and h["postcode"] == record.data["postal_code"] != outward


async def test_only_a_few_hits_are_read_namesakes_first(sandbox: SandboxServer, connect: Any) -> None:
    """Each described hit costs two upstream reads (record, memberships): a search reads DESCRIBED of them at most,
    those sharing a name first, and the answer says how to learn the same of the others."""
    store = sandbox.store
    towns = Counter(p.data["locality"] for p in store.by_type("person") if p.data.get("locality"))
    # a town whose every contact the search answers (SEARCH_LIMIT), more of them than are read
    town = next(t for t, n in towns.most_common() if search.DESCRIBED + 2 < store.search_contacts(t)[1] <= 25)
    found = store.search_contacts(town)[0]
    twins = [found[0].uri, found[1].uri]
    for uri in twins:  # now last in the search's order (by name): read first all the same
        store.update(uri, {"first_name": "Zoe", "last_name": "Zymurgy", "formatted_name": "Zoe Zymurgy"},
                     message="t")
    before = len(sandbox.request_log)
    result = await answer(connect, sandbox, "search_contacts", {"query": town, "limit": 50})
    body = result.structured_content
    hits = body["contacts"]
    made = [r.path for r in sandbox.request_log[before:]]
    assert sum(p.endswith("membership/all") for p in made) == search.DESCRIBED, made
    assert sum(p.startswith("/api/v1/") for p in made) == search.DESCRIBED, made  # the records
    described = {h["uri"] for h in hits if "member" in h or "town" in h}
    assert len(hits) > search.DESCRIBED and len(described) == search.DESCRIBED, hits
    assert set(twins) <= described, (twins, described)
    assert f"read for {search.DESCRIBED} of these {len(hits)} contacts" in body["note"], body["note"]
    assert "get_contact" in body["note"] and "check_membership" in body["note"]


async def test_namesakes_carry_town_and_membership_and_a_note(sandbox: SandboxServer, connect: Any) -> None:
    store, facts = sandbox.store, sandbox.store.demo_facts()
    member, other = facts["jane_uri"], facts["non_member_uri"]  # a current member and someone who never was
    for uri in (member, other):
        store.update(uri, {"first_name": "Thomas", "last_name": "Smith", "formatted_name": "Thomas Smith"},
                     message="t")
    result = await answer(connect, sandbox, "search_contacts", {"first_name": "Thomas", "last_name": "Smith"})
    body = result.structured_content
    hits = {h["uri"]: h for h in body["contacts"]}
    assert set(hits) == {member, other}, body
    for uri, is_member in ((member, True), (other, False)):
        record = store.get(uri)
        assert record is not None
        assert (hits[uri]["town"], hits[uri]["postcode"]) == (record.data["locality"], record.data["postal_code"])
        assert hits[uri]["member"] is is_member
    assert "Several contacts share the name 'Thomas Smith'" in body["note"]


async def test_inputs_of_two_searches_are_refused_not_dropped(shared_sandbox: SandboxServer, connect: Any) -> None:
    result = await answer(connect, shared_sandbox, "search_contacts", {"query": "Austen", "renewing_within_days": 30})
    assert "cannot be combined" in error_text(result)
    result = await answer(connect, shared_sandbox, "search_contacts", {"last_name": "Austen", "plan": "Standard"})
    assert "cannot be combined" in error_text(result)



@pytest.mark.parametrize("mode", MODES)
async def test_search_contacts(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    store = shared_sandbox.store
    facts = store.demo_facts()
    # A last name alone: sheepCRM's person search cannot match it (EVIDENCE.md), so the free-text search, people only.
    body = await read(readers, "search_contacts", {"last_name": "Austen"}, mode=mode)
    expected = {r.uri for r in store.search_contacts("Austen", limit=1000)[0] if r.type == "person"}
    assert {c["uri"] for c in body["contacts"]} == expected and facts["jane_uri"] in expected
    assert "Searched by name" in body["note"] and "total" not in body
    jane = store.require("person", facts["jane_uri"].split("/")[3]).data
    exact = {"first_name": jane["first_name"], "last_name": jane["last_name"], "postcode": jane["postal_code"]}
    body = await read(readers, "search_contacts", exact, mode=mode)
    assert facts["jane_uri"] in {c["uri"] for c in body["contacts"]} and "Searched by name" not in (
        body.get("note") or "")
    free = await read(readers, "search_contacts", {"query": "smith", "limit": 3}, mode=mode)
    records, _ = store.search_contacts("smith", limit=1000)
    # The global search has no paging and no total: a page length is never reported as a total.
    assert "total" not in free and len(free["contacts"]) == min(3, len(records))
    if len(records) > 3:
        nxt = await read(readers, "search_contacts",
            {"query": "smith", "limit": 3, "cursor": free["next_cursor"]},
            mode=mode,
        )
        assert [c["uri"] for c in nxt["contacts"]] == [r.uri for r in records[3:6]]


async def test_person_search_no_match_is_an_empty_answer(shared_sandbox: SandboxServer, connect: Any) -> None:
    body = await answer_body(connect, shared_sandbox, "search_contacts", {"email": "nobody-here@example.org"})
    assert body["contacts"] == [] and "No contacts match" in body["note"] and "doctor" not in body["note"]
    assert "only the last name" not in body["note"]  # sheepCRM's person search cannot match a last name alone


async def test_person_search_single_object_is_one_result() -> None:
    one = {"id": "/demo/person/abc/", "display_value": "Ann", "resource": "person"}
    deps = scripted({"/search/v2/demo/person": one})
    body = await search_contacts(SearchContactsInput(email="ann@example.org"), deps)
    assert [c.uri for c in body.contacts] == ["/demo/person/abc/"]


async def test_global_search_keeps_contacts_only() -> None:
    deps = scripted(
        {
            "/search/v2/demo": {
                "results": [
                    {"id": "/demo/person/a/", "display_value": "Ann", "resource": "person"},
                    {"id": "/demo/booking/b/", "display_value": "AGM", "resource": "booking"},
                    {"id": "/demo/organisation/c/", "display_value": "Trust"},
                ]
            }
        }
    )
    body = await search_contacts(SearchContactsInput(query="a"), deps)
    assert [c.uri for c in body.contacts] == ["/demo/person/a/", "/demo/organisation/c/"] and body.total is None


async def test_people_at_an_organisation(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    body = await answer_body(connect, shared_sandbox, "search_contacts", {"organisation": facts["organisation_uri"]})
    assert sorted(c["uri"] for c in body["contacts"]) == sorted(facts["organisation_people"])
    assert all(c.get("job_title") for c in body["contacts"])
    orgs = [r.uri for r in shared_sandbox.store.by_type("organisation") if not r.data.get("connections")]
    none = await answer_body(connect, shared_sandbox, "search_contacts", {"organisation": orgs[0]})
    assert none["contacts"] == [] and "connections" in none["note"]


@pytest.mark.parametrize("variant", [None, "connections-endpoint"])
async def test_people_at_an_organisation_come_from_its_connections(connect: Any, variant: str | None) -> None:
    """EVIDENCE.md: connections have their own endpoint. Records without a `connections` field (variant) still
    give the organisation's people; a connections endpoint that cannot be read is "could not read the people",
    never nobody."""
    with SandboxServer(key=CANARY_KEY, variant=variant) as sb:
        facts = sb.store.demo_facts()
        args = {"organisation": facts["organisation_uri"], "limit": 2}
        seen: list[str] = []
        async with connect(sb) as client:
            for _ in range(10):
                body = (await client.call_tool("search_contacts", args)).structured_content
                seen += [c["uri"] for c in body["contacts"]]
                if not body.get("next_cursor"):
                    break
                args = {**args, "cursor": body["next_cursor"]}
    assert sorted(seen) == sorted(facts["organisation_people"]), body
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:/connections/"]) as sb:
        org = sb.store.demo_facts()["organisation_uri"]
        result = await answer(connect, sb, "search_contacts", {"organisation": org})
    said = error_text(result)
    assert "Could not read the people at" in said and "not 'nobody'" in said, said


def current_members(sb: SandboxServer, days: int | None = None, plan: str | None = None) -> set[str]:
    today = now_utc().date()
    out = set()
    for m in sb.store.by_type("member"):
        d = m.data
        if d["record_state"] == "deleted" or d["start_date"] > today.isoformat() or d["end_date"] < today.isoformat():
            continue
        if d.get("paid") is False or (d.get("membership_record_status") or "active").lower() != "active":
            continue  # current means paid and active too, as check_membership says
        if days is not None and d["end_date"] > (today + timedelta(days=days)).isoformat():
            continue
        if plan and sb.store.display_of(d["membership_type"]) != plan:
            continue
        out.add(m.uri)
    return out


async def test_members_on_a_plan_leave_out_unpaid_memberships(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    membership = await answer_body(
        connect, shared_sandbox, "check_membership", {"uri": facts["unpaid_uri"], "detail": "full"}
    )
    assert membership["status"] == "unpaid" and membership["is_member"] is False
    plan = membership["history"][-1]["plan"]
    seen: set[str] = set()
    cursor = None
    while True:
        args = {"plan": plan, "limit": 50, **({"cursor": cursor} if cursor else {})}
        body = await answer_body(connect, shared_sandbox, "search_contacts", args)
        seen |= {c["uri"] for c in body["contacts"]}
        if not (cursor := body.get("next_cursor")):
            break
    assert facts["unpaid_uri"] not in seen, "an unpaid membership was listed as a current member"
    members = current_members(shared_sandbox, plan=plan)
    assert {shared_sandbox.store.get(m).data["member"] for m in members} == seen  # type: ignore[union-attr]


async def test_a_listing_that_ignores_the_start_date_filter_never_lists_future_members(connect: Any) -> None:
    """Variant filters-ignored: sheepCRM ignores `start_date__lte` (the v1 notes do not say which fields a schema
    filters on), so the listing holds memberships that have not started; they are not current members, and no
    count includes them."""
    with SandboxServer(key=CANARY_KEY, variant="filters-ignored") as sb:
        facts = sb.store.demo_facts()
        expected = {sb.store.get(m).data["member"] for m in current_members(sb, plan="Concession")}  # type: ignore[union-attr]
        seen: set[str] = set()
        totals: set[int | None] = set()
        cursor = None
        while True:
            args = {"plan": "Concession", "limit": 5, **({"cursor": cursor} if cursor else {})}
            body = await answer_body(connect, sb, "search_contacts", args)
            seen |= {c["uri"] for c in body["contacts"]}
            totals.add(body.get("total"))
            if not (cursor := body.get("next_cursor")):
                break
    assert facts["future_uri"] not in seen and seen == expected, (seen ^ expected)
    assert totals <= {None, len(expected)}, totals


async def test_renewals_and_members_on_a_plan(shared_sandbox: SandboxServer, connect: Any) -> None:
    body = await answer_body(connect, shared_sandbox, "search_contacts", {"renewing_within_days": 30, "limit": 50})
    expected = current_members(shared_sandbox, days=30)
    assert {c["membership_uri"] for c in body["contacts"]} == expected and body["total"] == len(expected)
    for c in body["contacts"]:
        assert c["name"] == shared_sandbox.store.display_of(c["uri"])
    assert "Fellow" in body["plans"]
    fellows = current_members(shared_sandbox, plan="Fellow")
    first = await answer_body(connect, shared_sandbox, "search_contacts", {"plan": "fellow", "limit": 5})
    seen = {c["membership_uri"] for c in first["contacts"]}
    if first.get("next_cursor"):
        rest = await answer_body(
            connect, shared_sandbox, "search_contacts", {"plan": "fellow", "limit": 5, "cursor": first["next_cursor"]}
        )
        seen |= {c["membership_uri"] for c in rest["contacts"]}
    assert seen <= fellows and first["total"] == len(fellows)
    async with connect(shared_sandbox) as client:
        wrong = await client.call_tool("search_contacts", {"plan": "Platinum"})
    assert wrong.is_error and "Fellow" in wrong.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_answers_stay_under_the_cap(shared_sandbox: SandboxServer, readers: Readers, mode: str) -> None:
    for tool, args in [
        ("list_tasks", {"scope": "all", "status": "any", "limit": 50}),
        ("search_contacts", {"query": "a", "limit": 50}),
    ]:
        body = await read(readers, tool, args, mode=mode)
        assert len(json.dumps(body)) <= 21_000


async def test_search_by_postcode_and_exact_fields(shared_sandbox: SandboxServer, connect: Any) -> None:
    facts = shared_sandbox.store.demo_facts()
    by_postcode = await answer_body(connect, shared_sandbox, "search_contacts", {"postcode": facts["jane_postal_code"]})
    assert all(c["postcode"] == facts["jane_postal_code"] for c in by_postcode["contacts"])
    async with connect(shared_sandbox) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert json.dumps(tools["search_contacts"].input_schema).count("Exact, with") == 2


# ---- the pure mappers ----------------------------------------------------------------------


def test_kind_of_takes_the_resource_else_the_uri() -> None:
    assert search.kind_of({"resource": "person", "id": "/demo/organisation/a/"}) == "person"
    assert search.kind_of({"uri": "/demo/booking/b/"}) == "booking"
    assert search.kind_of({"id": "b"}) is None  # not known, never a type made up


def test_hit_names_a_nameless_row() -> None:
    row = search.hit({"id": "/demo/person/a/", "primary_email": ["", "ann@example.org"]}, "/demo/person/a/")
    assert (row.uri, row.name, row.type, row.email) == ("/demo/person/a/", "(no name)", "person", "ann@example.org")


async def test_names_sheepcrm_cannot_match_go_to_the_free_text_search(sandbox: SandboxServer, connect: Any) -> None:
    """sheepCRM's person search matches only an email, first+last+date of birth, first+last+postcode or
    title+last+postcode (EVIDENCE.md); the sandbox answers 404 to anything less. A first and last name without a
    postcode are searched by name with the free-text search, people only, and the note says so: never "No contacts
    match" for a person who is there."""
    facts = sandbox.store.demo_facts()
    jane = sandbox.store.require("person", facts["jane_uri"].split("/")[3]).data
    body = await answer_body(connect, sandbox, "search_contacts",
                             {"first_name": jane["first_name"], "last_name": jane["last_name"]})
    assert facts["jane_uri"] in {c["uri"] for c in body["contacts"]}, body
    assert {c["type"] for c in body["contacts"]} == {"person"} and "Searched by name" in body["note"], body
    people = [r for r in sandbox.request_log if r.path.endswith("/person")]
    assert people == [] and any(r.path == "/search/v2/demo" for r in sandbox.request_log)


async def test_a_person_search_404_without_a_body_is_no_match(connect: Any) -> None:
    """openapi.yaml defines the person search's 404 as "Not found" with no body: any 404 there is no match,
    whatever its body says (variant bare-404 sends none), never "could not search"."""
    with SandboxServer(key=CANARY_KEY, variant="bare-404") as sb:
        body = await answer_body(connect, sb, "search_contacts", {"email": "nobody-here@example.org"})
        assert any(r.path == "/search/v2/demo/person" and r.status == 404 for r in sb.request_log)
    assert body["contacts"] == [] and "No contacts match" in body["note"], body


async def test_a_person_search_409_is_undocumented_not_several_people(connect: Any) -> None:
    """sheepCRM's person search answers one record, and the variant person-record 409 for several, a status
    openapi.yaml does not list there: the answer says sheepCRM answered 409 (not documented) and how to narrow it,
    never "several people match" as a fact, nor that data clashes or that nothing was changed."""
    with SandboxServer(key=CANARY_KEY, variant="person-record") as sb:
        facts = sb.store.demo_facts()
        same = {"first_name": "Thomas", "last_name": "Smith", "formatted_name": "Thomas Smith",
                "postal_code": "AB1 2CD"}
        for uri in (facts["jane_uri"], facts["non_member_uri"]):
            sb.store.update(uri, same, message="t")
        args = {"first_name": "Thomas", "last_name": "Smith", "postcode": "AB1 2CD"}
        said = error_text(await answer(connect, sb, "search_contacts", args))
    assert "answered 409 to the person search (not documented for this search" in said and "query=" in said, said
    assert "Several people match" not in said, said
    assert "conflict" not in said and "nothing was changed" not in said, said


async def test_a_connection_seen_from_the_other_side_is_counted_not_dropped() -> None:
    """A link whose destination is the organisation itself does not say who is at the other end: it is counted
    among the connections that could not be read, never silently left out of 'the people there'."""
    org = "/demo/organisation/0123456789abcdef01234567/"
    deps = scripted({
        f"/api/v1{org}": {"uri": org, "display_value": "Acme", "data": {}},
        "/api/v1/demo/connections/": {"connections": [{"destination": org, "connection_type": "employee"}]},
    })
    body = await search.search_contacts(search.SearchContactsInput(organisation=org), deps)
    assert body.contacts == [] and body.note and "1 connection(s)" in body.note, body


async def test_no_match_suggests_only_searches_not_just_made(shared_sandbox: SandboxServer, connect: Any) -> None:
    """An email search that finds nobody does not suggest searching by the email again."""
    body = await answer_body(connect, shared_sandbox, "search_contacts", {"email": "nobody-here@example.org"})
    assert body["contacts"] == [] and "No contacts match" in body["note"], body
    assert "the email" not in body["note"] and "query=" in body["note"], body


async def test_a_rows_uri_is_its_uri_and_never_a_bare_id(connect: Any) -> None:
    """The person search's one record (variant person-record) carries `id` as its bare uid beside `uri`, as v1 rows
    do: the contact's uri is `uri` (an `id` counts only when it is a uri, as in SearchResultsResponse)."""
    with SandboxServer(key=CANARY_KEY, variant="person-record") as sb:
        facts = sb.store.demo_facts()
        body = await answer_body(connect, sb, "search_contacts", {"email": facts["jane_email"]})
    assert [c["uri"] for c in body["contacts"]] == [facts["jane_uri"]], body


async def test_a_name_sent_as_an_object_is_could_not_read_never_its_printed_form(connect: Any) -> None:
    """`display_value` sent as an object (drift): an object is not a name: the contact's name could not be read,
    never the object printed as text."""
    with SandboxServer(key=CANARY_KEY, drift=["object-field=display_value:/search/v2/"]) as sb:
        facts = sb.store.demo_facts()
        body = await answer_body(connect, sb, "search_contacts", {"query": "Austen"})
    jane = next(c for c in body["contacts"] if c["uri"] == facts["jane_uri"])
    assert jane["name"] == "(name could not be read)" and "{" not in jane["name"], body


async def test_global_search_rows_without_a_type_or_uri_are_could_not_read_never_no_match(connect: Any) -> None:
    """SearchResultsResponse requires no field: rows without `resource` whose `id` is not a uri (drift) are counted
    as could not read, with their keys, never dropped into "No contacts match"."""
    drift = ["renamed-field=resource:/search/v2/", "number-field=id:/search/v2/"]
    with SandboxServer(key=CANARY_KEY, drift=drift) as sb:
        body = await answer_body(connect, sb, "search_contacts", {"query": "Austen"})
    assert body["contacts"] == [] and "No contacts match" not in body["note"], body
    assert "Could not read" in body["note"] and "of the results (keys" in body["note"], body
    assert "Austen" not in body["note"]  # keys are named, values never


async def test_a_person_match_with_only_a_bare_uid_is_could_not_read_never_no_match(connect: Any) -> None:
    """The person search's record (variant person-record) without its `uri` (drift): with `resource` its uri is
    built from bucket, type and uid (never an empty uri); without it too, a match whose uri cannot be read is a
    match that could not be read, never "No contacts match"."""
    uri_gone = ["renamed-field=uri:/search/v2/"]
    with SandboxServer(key=CANARY_KEY, variant="person-record", drift=uri_gone) as sb:
        facts = sb.store.demo_facts()
        built = await answer_body(connect, sb, "search_contacts", {"email": facts["jane_email"]})
    assert [c["uri"] for c in built["contacts"]] == [facts["jane_uri"]], built
    with SandboxServer(key=CANARY_KEY, variant="person-record",
                       drift=[*uri_gone, "renamed-field=resource:/search/v2/"]) as sb:
        body = await answer_body(connect, sb, "search_contacts", {"email": facts["jane_email"]})
    assert body["contacts"] == [] and "No contacts match" not in body["note"], body
    assert "Could not read 1 of the results" in body["note"], body


async def test_a_person_row_with_a_bare_uid_takes_its_uri_from_bucket_type_and_uid() -> None:
    deps = scripted({"/search/v2/demo": {"results": [{"id": "abc", "display_value": "Ann", "resource": "person"}]}})
    body = await search_contacts(SearchContactsInput(query="a"), deps)
    assert [c.uri for c in body.contacts] == ["/demo/person/abc/"], body


async def test_an_email_search_finds_an_organisation_with_that_email(
    shared_sandbox: SandboxServer, connect: Any
) -> None:
    """sheepCRM's person search finds people only (openapi.yaml): an email alone is also looked up in the
    organisation listing (the whole-listing email check), so an organisation with the address is found, never
    "No contacts match"."""
    facts = shared_sandbox.store.demo_facts()
    org = shared_sandbox.store.get(facts["organisation_uri"])
    assert org is not None
    email = next(e for e in org.data["email"] if e)
    body = await answer_body(connect, shared_sandbox, "search_contacts", {"email": email.upper()})
    assert [(c["uri"], c["type"]) for c in body["contacts"]] == [(facts["organisation_uri"], "organisation")], body
    assert body["total"] == 1 and "No contacts match" not in (body.get("note") or ""), body


async def test_a_search_of_people_only_never_says_no_contacts_match(connect: Any) -> None:
    """When only people were searched (a name or postcode beside the email, or the organisation listing could not
    be read), finding nobody is "no people match", never "no contacts match"."""
    with SandboxServer(key=CANARY_KEY, drift=["moved-path:^/api/v1/[^/]+/organisation/$"]) as sb:
        facts = sb.store.demo_facts()
        org = sb.store.get(facts["organisation_uri"])
        assert org is not None
        email = next(e for e in org.data["email"] if e)
        unread = await answer_body(connect, sb, "search_contacts", {"email": email})
        named = await answer_body(connect, sb, "search_contacts", {"email": email, "postcode": "ZZ9 9ZZ"})
    assert unread["contacts"] == [] and "No contacts match" not in unread["note"], unread
    assert "Organisations with this email could not be searched" in unread["note"], unread
    assert named["contacts"] == [] and "No people match" in named["note"], named
    assert "Organisations were not searched" in named["note"], named


async def test_a_window_whose_every_membership_is_renewed_says_no_other_matches(connect: Any) -> None:
    """Variant has-renewed marks every current membership ending within 60 days renewed: the window's answer says
    they are left out and that no other matches, never "no current membership matches" beside them."""
    with SandboxServer(key=CANARY_KEY, variant="has-renewed") as sb:
        body = await answer_body(connect, sb, "search_contacts", {"renewing_within_days": 30})
    assert body["contacts"] == [] and "already renewed (has_renewed) are left out" in body["note"], body
    assert "No other current membership ending in this window matches." in body["note"], body
    assert "No current membership with an end date matches" not in body["note"], body
