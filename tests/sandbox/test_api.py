"""Behaviour of the endpoints: answers agree with the store, writes move records and leave audit trails."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from sheepcrm_mcp.sandbox import SandboxServer
from sheepcrm_mcp.sandbox.records import now_utc, parse_dt
from tests.helpers import CANARY_KEY


def test_search_finds_contacts_by_name_email_and_postcode(client: httpx.Client, facts: dict[str, Any]) -> None:
    for q in ("jane austen", "jane.austen@example.org", "BA2 6NF", "ba26nf"):
        ids = [r["id"] for r in client.get("/search/v2/demo", params={"q": q}).json()["results"]]
        assert facts["jane_uri"] in ids, q
    orgs = client.get("/search/v2/demo", params={"q": "pemberley"}).json()["results"]
    assert [r["resource"] for r in orgs] == ["organisation"]


def test_search_agrees_with_store_without_paging(client: httpx.Client, read_sandbox: SandboxServer) -> None:
    body = client.get("/search/v2/demo", params={"q": "smith"}).json()
    expected, _ = read_sandbox.store.search_contacts("smith", limit=50)
    assert [r["id"] for r in body["results"]] == [r.uri for r in expected]
    assert set(body) == {"results"}  # SearchResultsResponse: no paging, no total


def test_person_search(client: httpx.Client, facts: dict[str, Any]) -> None:
    found = client.get("/search/v2/demo/person", params={"email": facts["shared_email"]}).json()["results"]
    assert len(found) == 2
    first = client.get(
        "/search/v2/demo/person", params={"email": facts["shared_email"], "take_first_if_multiple": "true"}
    ).json()["results"]
    assert len(first) == 1
    nobody = client.get("/search/v2/demo/person", params={"last_name": "nobody-here"})
    assert nobody.status_code == 404  # "No person matching those details was found"


def test_person_search_as_evidence_shows(facts: dict[str, Any]) -> None:
    """Variant person-record (EVIDENCE.md): a match answers the full person record; names and postcode match
    case, email does not; several match -> 409 unless take_first_if_multiple."""
    with SandboxServer(key="k", variant="person-record") as sb, httpx.Client(
        base_url=sb.url, headers={"Authorization": "Bearer k"}
    ) as client:
        jane = client.get("/search/v2/demo/person", params={"email": facts["jane_email"].upper()})
        assert jane.status_code == 200 and jane.json()["uri"] == facts["jane_uri"] and jane.json()["data"]
        both = client.get("/search/v2/demo/person", params={"email": facts["shared_email"]})
        assert both.status_code == 409 and "take_first_if_multiple" in both.json()["description"]
        first = client.get(
            "/search/v2/demo/person", params={"email": facts["shared_email"], "take_first_if_multiple": "true"}
        ).json()
        assert first["uri"] in (facts["shared_email_1_uri"], facts["shared_email_2_uri"])
        jane_at = {"first_name": "Jane", "last_name": "Austen", "postal_code": "BA26NF"}
        for params in ({**jane_at, "last_name": "austen"}, {**jane_at, "postal_code": "ba2 6nf"},
                       {"last_name": "Austen"}, {"postal_code": "BA26NF"}):  # case; not a combination it matches on
            assert client.get("/search/v2/demo/person", params=params).status_code == 404, params
        assert client.get("/search/v2/demo/person", params=jane_at).json()["uri"] == facts["jane_uri"]


def test_person_search_in_unknown_wrappers(facts: dict[str, Any]) -> None:
    with SandboxServer(key="k", variant="other-wrappers") as sb, httpx.Client(
        headers={"Authorization": "Bearer k"}
    ) as client:
        found = client.get(sb.url + "/search/v2/demo/person", params={"email": facts["shared_email"]}).json()
    assert len(found["people"]) == 2


def test_membership_statuses(client: httpx.Client, facts: dict[str, Any]) -> None:
    expected = {
        "jane": ("current", "active"),
        "lapsed": ("lapsed", "lapsed"),
        "future": ("future", "future"),
        "non_member": ("none", "none"),
    }
    for who, (_, v1_status) in expected.items():
        v1 = client.get("/api/v1/demo/user/membership/", params={"email": facts[who + "_email"]}).json()
        assert v1["membership_record_status"] == v1_status, who
    jane = client.get(f"/api/v2{facts['jane_uri']}membership/all").json()
    assert jane["count"] == 2 and {m["membership_type"] for m in jane["memberships"]} == {facts["plans"]["Standard"]}
    plan = client.get(f"/api/v2{facts['plans']['Standard']}display").json()
    assert plan == {"display_value": "Standard"}
    assert all(m["payment_reference"] is None for m in jane["memberships"])  # nulls kept, as the reference shows
    unpaid = client.get(f"/api/v2{facts['unpaid_uri']}membership/all").json()["memberships"]
    assert [m["paid"] for m in unpaid] == [False]
    deleted = client.get(f"/api/v2{facts['deleted_member_uri']}membership/all").json()["memberships"]
    assert [m["record_state"] for m in deleted] == ["deleted"]
    for who in ("unpaid", "deleted_member"):
        v1 = client.get("/api/v1/demo/user/membership/", params={"email": facts[who + "_email"]}).json()
        assert v1["membership_record_status"] == "none" and v1["active_memberships_for_display"] == [], who


def test_events_by_state_agree_with_store(client: httpx.Client, read_sandbox: SandboxServer) -> None:
    for state in ("current", "future", "past", "running", "draft", "all"):
        body = client.get(f"/events/v2/demo/bookings/{state}").json()
        assert [e["uri"] for e in body["bookings"]] == [e.uri for e in read_sandbox.store.events(state)], state


def test_ticket_availability(client: httpx.Client, facts: dict[str, Any], read_sandbox: SandboxServer) -> None:
    tickets = client.get(f"/events/v2/demo/booking/{facts['free_event_uid']}/available_tickets").json()
    [free] = tickets["available_tickets"]
    event = read_sandbox.store.get_record("booking", facts["free_event_uid"])
    assert event is not None
    taken = [s for s in read_sandbox.store.attendance(event.uri) if s.data["status"] != "declined"]
    assert free["amount"] == "0.00" and free["allocated"] == len(taken)
    assert free["available"] == free["total"] - free["allocated"] - free["reserved"]


def test_set_attendance_moves_the_record(fresh: SandboxServer, fresh_client: httpx.Client) -> None:
    facts = fresh.store.demo_facts()
    event = f"/demo/booking/{facts['past_event_uid']}/"
    [before] = [s for s in fresh.store.attendance(event) if s.data["person_ref"] == facts["jane_uri"]
                and not s.data["guest"]]
    response = fresh_client.put(
        f"/events/v2/demo/booking/{facts['past_event_uid']}/attendance",
        params={"person_uri": facts["jane_uri"], "status": "no-show"},
    )
    assert response.status_code == 200 and response.json()["status"] == "no-show"
    [after] = [s for s in fresh.store.attendance(event) if s.data["person_ref"] == facts["jane_uri"]
               and not s.data["guest"]]
    assert after.data["status"] == "no-show" and after.last_updated > before.last_updated
    sessions = fresh_client.get(f"/events/v2/demo/booking/{facts['past_event_uid']}/attendance/all").json()
    assert {s["uri"]: s["status"] for s in sessions["sessions"]}[after.uri] == "no-show"
    audit = fresh_client.get(f"/audit/v2/demo/booking/{facts['past_event_uid']}/audit").json()
    assert audit["results"][0]["uri"] == after.uri and after.uri in audit["related_uris"]
    assert audit["results"][0]["clean_diff"] == [
        {"field": "status", "prev": before.data["status"], "value": "no-show", "verb": "change"}
    ]


def test_tasks(fresh: SandboxServer, fresh_client: httpx.Client) -> None:
    store = fresh.store
    mine = fresh_client.get("/notifications/v2/demo/tasks", params={"page_size": 100, "include_completed": "true"})
    assert [t["uri"] for t in mine.json()["tasks"]] == [t.uri for t in store.tasks(store.api_user)]
    assert all(t["assigned_to"] == store.api_user for t in mine.json()["tasks"])
    default = fresh_client.get("/notifications/v2/demo/tasks/all").json()
    open_tasks = [t for t in store.tasks() if not t.data["completed"]]
    assert len(default["tasks"]) == 7 and default["total"] == len(open_tasks) < 60  # include_completed: false
    everything = fresh_client.get("/notifications/v2/demo/tasks/all", params={"include_completed": "true"}).json()
    assert everything["total"] == 60
    uid = store.demo_facts()["my_open_task_uid"]
    before = store.get_record("journal", uid)
    assert before is not None
    snoozed = fresh_client.put(f"/notifications/v2/demo/task/{uid}/snooze", params={"until": "2099-01-01"}).json()
    expected = max(parse_dt(before.data["date"]), now_utc()) + timedelta(hours=24)  # `until` is not a parameter
    assert abs((parse_dt(snoozed["date"]) - expected).total_seconds()) < 60 and "snoozed_until" not in snoozed
    assert fresh_client.put(f"/notifications/v2/demo/task/{uid}/complete").json()["completed"] is True
    again = fresh_client.put(f"/notifications/v2/demo/task/{uid}/complete")  # idempotent
    assert again.status_code == 200 and again.json()["completed"] is True
    assert fresh_client.put(f"/notifications/v2/demo/task/{uid}/uncomplete").json()["completed"] is False
    assert fresh_client.get(f"/api/v2/demo/journal/{uid}/audit").status_code == 404  # moved in the 2025-04 cut
    messages = [e["message"] for e in fresh_client.get(f"/audit/v2/demo/journal/{uid}/audit").json()["results"]]
    assert messages == ["task marked as not complete", "task completed", "task snoozed for 24 hours"]


def test_v1_put_updates_record_and_audit(fresh: SandboxServer, fresh_client: httpx.Client) -> None:
    uri = fresh.store.demo_facts()["jane_uri"]
    before = fresh_client.get(f"/api/v1{uri}").json()
    response = fresh_client.put(f"/api/v1{uri}", json={"email": "jane@example.net", "postal_code": "BA1 1AA"})
    after = response.json()
    assert response.status_code == 200
    assert after["data"]["email"] == ["jane@example.net"] and after["data"]["postal_code"] == "BA1 1AA"
    assert after["meta"]["last_updated"] > before["meta"]["last_updated"]
    assert fresh_client.get(f"/api/v1{uri}").json() == after
    found = fresh_client.get("/search/v2/demo/person", params={"email": "jane@example.net"}).json()["results"]
    assert [r["id"] for r in found] == [uri]
    latest = fresh_client.get(f"/audit/v2{uri}audit").json()["results"][0]
    assert {d["field"] for d in latest["clean_diff"]} == {"email", "postal_code"}
    assert latest["user"] == fresh.store.api_user
    renamed = fresh_client.put(f"/api/v1{uri}", json={"first_name": "Janet"}).json()
    assert renamed["display_value"] == "Janet Austen"


def test_v1_post_creates_and_delete_removes(fresh: SandboxServer, fresh_client: httpx.Client) -> None:
    created = fresh_client.post("/api/v1/demo/person/", json={"first_name": "Jim", "last_name": "Lovell",
                                                               "email": "jim@example.org"})
    assert created.status_code == 201 and created.json() == {"status": "ok"}
    uri = created.headers["location"]  # "The URI of the new record will be in the location header"
    record = fresh_client.get(f"/api/v1{uri}").json()
    assert record["display_value"] == "Jim Lovell" and record["data"]["email"] == ["jim@example.org"]
    assert record["data"]["sortable_name"] == "lovell jim" and record["resource"] == "person"
    found = fresh_client.get("/search/v2/demo/person", params={"email": "JIM@example.org"}).json()["results"]
    assert [r["id"] for r in found] == [uri]
    assert [e["message"] for e in fresh_client.get(f"/audit/v2{uri}audit").json()["results"]] == [
        "Record created via API"]
    org = fresh_client.post("/api/v1/demo/organisation/", json={"name": "Aquarius Society"})
    assert org.status_code == 201 and fresh.store.get(org.headers["location"]) is not None
    # an email that already has an account: the v1 notes' 409 bodies
    jane = fresh.store.demo_facts()["jane_email"]
    again = fresh_client.post("/api/v1/demo/person/", json={"first_name": "J", "last_name": "A", "email": jane})
    assert again.status_code == 409 and again.json() == {"error": "existing person found without user account"}
    staff = fresh_client.post("/api/v1/demo/person/", json={"last_name": "S", "email": fresh.store.demo_facts()[
        "api_user_email"]})
    assert staff.status_code == 409 and staff.json() == {"error": "existing user account found"}
    for bad in ({"first_name": "X", "shoe_size": 9}, {"email": "x@example.org"}, {}):
        assert fresh_client.post("/api/v1/demo/person/", json=bad).status_code == 400, bad
    deleted = fresh_client.delete(f"/api/v1{uri}")
    assert deleted.status_code == 200
    assert fresh_client.get(f"/api/v1{uri}").status_code == 404
    assert fresh_client.get("/search/v2/demo/person", params={"email": "jim@example.org"}).status_code == 404
    assert uri not in [r["uri"] for r in fresh_client.get("/api/v1/demo/person/", params={
        "last_name": "lovell"}).json()["results"]]
    assert fresh_client.delete(f"/api/v1{uri}").status_code == 404
    assert fresh.store.get(uri).state == "deleted"  # type: ignore[union-attr]  # kept, for sheepCRM's UI


def test_a_contact_deleted_through_the_api_stays_listed_under_deleted_listed(make_client: Any) -> None:
    """Variant deleted-listed: v1 listings include deleted records, contacts deleted through the API among them,
    marked `state: deleted` on the row and in `meta`; the sandbox's own choice leaves them out."""
    for variant, kept in (("deleted-listed", True), (None, False)):
        with SandboxServer(key=CANARY_KEY, variant=variant) as sb:
            client = make_client(sb, key=CANARY_KEY)
            uri = client.post("/api/v1/demo/person/", json={"first_name": "Jim", "last_name": "Lovell",
                                                             "email": "jim@example.org"}).headers["location"]
            assert client.delete(f"/api/v1{uri}").status_code == 200
            body = client.get("/api/v1/demo/person/", params={"email__startswithi": "jim@example.org"}).json()
        rows = [r for r in body["results"] if r["uri"] == uri]
        assert body["total"] == len(rows) == (1 if kept else 0), (variant, body)
        assert all(r["state"] == r["meta"]["state"] == "deleted" for r in rows), rows


def test_v1_create_variants(make_client: Any) -> None:
    for variant, status, named in (("create-unnamed", 201, False), ("create-200", 200, True)):
        with SandboxServer(key=CANARY_KEY, variant=variant) as sb:
            answer = make_client(sb, key=CANARY_KEY).post("/api/v1/demo/person/", json={"first_name": "A",
                                                                                        "last_name": "B"})
            assert answer.status_code == status and ("location" in answer.headers) == named, variant
            assert [r.data["last_name"] for r in sb.store.by_type("person") if r.data["first_name"] == "A"] == ["B"]


def test_segments(client: httpx.Client, read_sandbox: SandboxServer, facts: dict[str, Any]) -> None:
    active = client.get("/segments/v2/demo").json()["segments"]
    every = client.get("/segments/v2/demo/all").json()["segments"]
    assert len(every) == 10 and len(active) == 9
    found = client.get("/segments/v2/demo/find", params={"name": "MEMBERS"}).json()["segments"]
    assert {s["name"] for s in found} == {"Current members", "Lapsed members"}
    uid = facts["segment_current_members_uid"]
    count = client.get(f"/segments/v2/demo/segment/{uid}/count").json()["count"]
    pages = [
        client.get(f"/segments/v2/demo/segment/{uid}/all", params={"page": p, "page_size": 40}).json()
        for p in range(1, 10)
    ]
    uris = [r["id"] for page in pages for r in page["results"]]
    assert len(uris) == len(set(uris)) == count and "total" not in pages[0]
    lookup = client.get(f"/segments/v2/demo/segment/{uid}/lookup", params={"q": "austen"}).json()
    assert [m["uri"] for m in lookup] == [facts["jane_uri"]]
    jane = facts["jane_uri"].split("/")[3]  # openapi.yaml types the lookup's q as a uid: a member's finds them
    by_uid = client.get(f"/segments/v2/demo/segment/{uid}/lookup", params={"q": jane}).json()
    assert [m["uri"] for m in by_uid] == [facts["jane_uri"]]


def test_help_search(client: httpx.Client, facts: dict[str, Any], sandbox: SandboxServer) -> None:
    body = client.get("/search/v2/demo/help", params={"q": "how do I refund a booking"}).json()
    refund = sandbox.store.require("help", facts["refund_help_uid"]).data
    assert body["q"] == "how do I refund a booking" and "docs" in body
    assert body["results"][0] == {"link": refund["link"], "title": refund["title"]}  # no snippet (EVIDENCE.md)
    full = client.get("/search/v2/demo/help", params={"q": "refund", "include_text": "true"}).json()
    assert "refund" in full["results"][0]["text"].lower()


def test_request_log_keeps_raw_paths(read_sandbox: SandboxServer, client: httpx.Client) -> None:
    client.get("/api/v2/demo/person/%2e%2e/summary")
    client.get("/search/v2/demo", params={"q": "a b"})
    raw, search = read_sandbox.request_log[-2:]
    assert raw.raw_path == "/api/v2/demo/person/%2e%2e/summary" and raw.status == 404
    assert (search.method, search.path, search.query, search.status) == ("GET", "/search/v2/demo", "q=a+b", 200)


def test_unknown_paths_and_methods_are_json(client: httpx.Client) -> None:
    missing = client.get("/api/v2/demo/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "not found"
    wrong = client.delete("/segments/v2/demo/all")
    assert wrong.status_code == 405 and wrong.json()["type"] == "method_not_allowed"


def test_connections_endpoint(client: httpx.Client, facts: dict[str, Any]) -> None:
    """EVIDENCE.md (connections): their own endpoint, from either end of a link."""
    org_uid = facts["organisation_uri"].split("/")[3]
    body = client.get("/api/v1/demo/connections/", params={"uri": org_uid}).json()
    assert {c["destination"] for c in body["connections"]} == set(facts["organisation_people"])
    keys = {"automatic", "bidirectional", "connection_note", "connection_type"}
    assert all(keys <= c.keys() for c in body["connections"])
    person = facts["organisation_people"][0].split("/")[3]
    back = client.get("/api/v1/demo/connections/", params={"uri": person, "limit": 5}).json()["connections"]
    assert [c["destination"] for c in back] == [facts["organisation_uri"]]


def test_rate_limit_headers_and_v1_error_detail(client: httpx.Client) -> None:
    """EVIDENCE.md: x-rate-limit-* on answers, no Retry-After; v1 errors carry error_detail."""
    ok = client.get("/segments/v2/demo/all")
    assert ok.headers["x-rate-limit-limit"].startswith("40") and int(ok.headers["x-rate-limit-remaining"]) > 0
    assert "retry-after" not in ok.headers
    missing = client.get("/api/v1/demo/person/000000000000000000000000/")
    assert missing.status_code == 404 and set(missing.json()) <= {"error", "error_detail"}


@pytest.mark.parametrize("params", [
    {"last_name": "AUSTEN"},  # plain: any case
    {"last_name__startswithi": "aus"},
    {"last_name__startswith": "Aus"},
    {"last_name__eq": "Austen"},
    {"first_name__startswithi": "zo"},  # a stored value with a non-ASCII letter (Zoë)
    {"first_name": "zoë"},  # a wanted value JSON escapes: not narrowed
    {"first_name": "kate"},  # a stored value whose first letter lowercases to ASCII (the Kelvin sign)
    {"last_name__startswithi": "i"},  # ... and one that lowercases to more than one letter (Turkish dotted I)
    {"email__startswithi": "JANE."},  # a list field: any entry
    {"last_name": "100%_"},  # LIKE's own wildcards, taken literally
    {"postal_code__startswithi": "ba1"},  # a field without an index: narrowed on the stored text
    {"locality": "BATH"},
    {"first_name": "Renamed"},  # a value written after the record was made
    {"last_name__startswithi": "aus", "mode": "OR", "first_name": "zoë"},
])
def test_a_v1_filter_lists_exactly_the_records_that_match(
    fresh: SandboxServer, fresh_client: httpx.Client, params: dict[str, str]
) -> None:
    """Filtered listings narrow the records on their stored text first (Store.by_type `narrowed`): the listing is
    still exactly the records the filters match, read one by one, whatever the case or characters."""
    from sheepcrm_mcp.sandbox.app import V1_OPS, v1_matches

    assert fresh_client.post("/api/v1/demo/person/", json={"first_name": "Zoë", "last_name": "Austen-Ünal",
                                                           "email": "zoe@example.org"}).status_code == 201
    assert fresh_client.post("/api/v1/demo/person/", json={"first_name": "P", "last_name": "100%_",
                                                           "email": "p@example.org"}).status_code == 201
    assert fresh_client.post("/api/v1/demo/person/", json={"first_name": "\u212aate", "last_name": "\u0130nce",
                                                           "email": "k@example.org"}).status_code == 201
    jane = fresh.store.demo_facts()["jane_uri"]
    assert fresh_client.put(f"/api/v1{jane}", json={"first_name": "Renamed"}).status_code == 200
    tests = [(k.partition("__")[0], k.partition("__")[2], v) for k, v in params.items() if k != "mode"]
    assert all(op in V1_OPS or op == "" for _, op, _ in tests)
    combine = any if params.get("mode") == "OR" else all
    expected = {r.uri for r in fresh.store.by_type("person") if combine(v1_matches(r.data, *t) for t in tests)}
    listed = fresh_client.get("/api/v1/demo/person/", params={**params, "page_size": 1000}).json()
    assert {r["uri"] for r in listed["results"]} == expected and listed["total"] == len(expected)
    assert expected  # each filter here matches a record: an empty listing would prove nothing
