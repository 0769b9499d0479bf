"""Every sandbox endpoint, answered for real, checked against the project's contract table (and, with
SHEEPCRM_API_DOCS set, against sheepCRM's full documents), or, where the spec gives no schema, against the shapes
documented in sandbox/README.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sheepcrm_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.docs  # with SHEEPCRM_API_DOCS set, also checked against the full documents

# (case id, method, path (formatted with demo facts), query params, spec path pattern, status, shape)
V2_CASES: list[tuple[str, str, str, dict[str, Any], str, int, str | None]] = [
    ("search", "GET", "/search/v2/demo", {"q": "austen"}, "/search/v2/{bucket}", 200, None),
    (
        "search-paged",
        "GET",
        "/search/v2/demo",
        {"q": "a", "page": "2", "page_size": "5"},
        "/search/v2/{bucket}",
        200,
        None,
    ),
    ("search-empty", "GET", "/search/v2/demo", {"q": "zzzzzz"}, "/search/v2/{bucket}", 200, None),
    ("search-no-q", "GET", "/search/v2/demo", {}, "/search/v2/{bucket}", 400, None),
    (
        "person",
        "GET",
        "/search/v2/demo/person",
        {"email": "{jane_email}"},
        "/search/v2/{bucket}/person",
        200,
        "person_search",
    ),
    (
        "person-names",
        "GET",
        "/search/v2/demo/person",
        {"first_name": "Jane", "last_name": "Austen", "postal_code": "BA2 6NF"},
        "/search/v2/{bucket}/person",
        200,
        "person_search",
    ),
    (
        "person-postcode",
        "GET",
        "/search/v2/demo/person",
        {"postal_code": "BA26NF", "take_first_if_multiple": "true"},  # not a combination it matches on: 404
        "/search/v2/{bucket}/person",
        404,
        None,
    ),
    ("person-nothing", "GET", "/search/v2/demo/person", {}, "/search/v2/{bucket}/person", 400, None),
    ("help", "GET", "/search/v2/demo/help", {"q": "refund a booking"}, "/search/v2/{bucket}/help", 200, "help"),
    (
        "help-text",
        "GET",
        "/search/v2/demo/help",
        {"q": "membership", "limit": "3", "include_text": "true", "include_html": "1"},
        "/search/v2/{bucket}/help",
        200,
        "help",
    ),
    (
        "help-bad-limit",
        "GET",
        "/search/v2/demo/help",
        {"q": "x", "limit": "many"},
        "/search/v2/{bucket}/help",
        400,
        None,
    ),
    ("summary", "GET", "/api/v2{jane_uri}summary", {}, "/api/v2{contact_uri}summary", 200, "summary"),
    ("summary-org", "GET", "/api/v2{organisation_uri}summary", {}, "/api/v2{contact_uri}summary", 200, "summary"),
    ("summary-none", "GET", "/api/v2{non_member_uri}summary", {}, "/api/v2{contact_uri}summary", 200, "summary"),
    (
        "summary-404",
        "GET",
        "/api/v2/demo/person/000000000000000000000000/summary",
        {},
        "/api/v2{contact_uri}summary",
        404,
        None,
    ),
    (
        "summary-400",
        "GET",
        "/api/v2/demo/booking/{past_event_uid}/summary",
        {},
        "/api/v2{contact_uri}summary",
        400,
        None,
    ),
    (
        "communications",
        "GET",
        "/api/v2{jane_uri}communications/detail",
        {},
        "/api/v2{person_uri}communications/detail",
        200,
        "communications",
    ),
    (
        "communications-404",
        "GET",
        "/api/v2/demo/person/abc/communications/detail",
        {},
        "/api/v2{person_uri}communications/detail",
        404,
        None,
    ),
    (
        "personal",
        "GET",
        "/api/v2{injection_person_uri}personal/detail",
        {},
        "/api/v2{person_uri}personal/detail",
        200,
        "personal",
    ),
    (
        "personal-org",
        "GET",
        "/api/v2{organisation_uri}personal/detail",
        {},
        "/api/v2{person_uri}personal/detail",
        400,
        None,
    ),
    ("memberships", "GET", "/api/v2{jane_uri}membership/all", {}, "/api/v2{person_uri}membership/all", 200, None),
    (
        "memberships-none",
        "GET",
        "/api/v2{non_member_uri}membership/all",
        {},
        "/api/v2{person_uri}membership/all",
        200,
        None,
    ),
    (
        "memberships-404",
        "GET",
        "/api/v2/demo/person/ffffffffffffffffffffffff/membership/all",
        {},
        "/api/v2{person_uri}membership/all",
        404,
        None,
    ),
    ("audit", "GET", "/audit/v2/demo/person/{jane_uid}/audit", {}, "/audit/v2/{bucket}/{resource_type}/{uid}/audit",
     200, None),
    (
        "audit-event",
        "GET",
        "/audit/v2/demo/booking/{past_event_uid}/audit",
        {"limit": "5", "since_days": "3650"},
        "/audit/v2/{bucket}/{resource_type}/{uid}/audit",
        200,
        None,
    ),
    (
        "audit-400",
        "GET",
        "/audit/v2/demo/person/{jane_uid}/audit",
        {"limit": "0"},
        "/audit/v2/{bucket}/{resource_type}/{uid}/audit",
        400,
        None,
    ),
    (
        "audit-404",
        "GET",
        "/audit/v2/demo/person/ffffffffffffffffffffffff/audit",
        {},
        "/audit/v2/{bucket}/{resource_type}/{uid}/audit",
        404,
        None,
    ),
    *[
        (f"events-{s}", "GET", f"/events/v2/demo/bookings/{s}", {}, "/events/v2/{bucket}/bookings/{state}", 200, None)
        for s in ("current", "future", "past", "running", "draft", "all")
    ],
    (
        "events-paged",
        "GET",
        "/events/v2/demo/bookings/all",
        {"page": "2", "page_size": "4"},
        "/events/v2/{bucket}/bookings/{state}",
        200,
        None,
    ),
    ("events-bad-state", "GET", "/events/v2/demo/bookings/soon", {}, "/events/v2/{bucket}/bookings/{state}", 400, None),
    ("event", "GET", "/events/v2/demo/booking/{past_event_uid}", {}, "/events/v2/{bucket}/booking/{uid}", 200, None),
    (
        "event-draft",
        "GET",
        "/events/v2/demo/booking/{draft_event_uid}",
        {},
        "/events/v2/{bucket}/booking/{uid}",
        200,
        None,
    ),
    (
        "event-404",
        "GET",
        "/events/v2/demo/booking/ffffffffffffffffffffffff",
        {},
        "/events/v2/{bucket}/booking/{uid}",
        404,
        None,
    ),
    (
        "event-summary",
        "GET",
        "/events/v2/demo/booking/{free_event_uid}/summary",
        {},
        "/events/v2/{bucket}/booking/{uid}/summary",
        200,
        None,
    ),
    (
        "tickets",
        "GET",
        "/events/v2/demo/booking/{free_event_uid}/available_tickets",
        {},
        "/events/v2/{bucket}/booking/{uid}/available_tickets",
        200,
        None,
    ),
    (
        "tickets-paid",
        "GET",
        "/events/v2/demo/booking/{future_event_uid}/available_tickets",
        {},
        "/events/v2/{bucket}/booking/{uid}/available_tickets",
        200,
        None,
    ),
    (
        "attendance",
        "GET",
        "/events/v2/demo/booking/{past_event_uid}/attendance/all",
        {},
        "/events/v2/{bucket}/booking/{uid}/attendance/all",
        200,
        None,
    ),
    (
        "attendance-404",
        "GET",
        "/events/v2/demo/booking/ffffffffffffffffffffffff/attendance/all",
        {},
        "/events/v2/{bucket}/booking/{uid}/attendance/all",
        404,
        None,
    ),
    (
        "set-attendance",
        "PUT",
        "/events/v2/demo/booking/{past_event_uid}/attendance",
        {"person_uri": "{jane_uri}", "status": "attended"},
        "/events/v2/{bucket}/booking/{uid}/attendance",
        200,
        None,
    ),
    (
        "set-attendance-bad",
        "PUT",
        "/events/v2/demo/booking/{past_event_uid}/attendance",
        {"person_uri": "{jane_uri}", "status": "maybe"},
        "/events/v2/{bucket}/booking/{uid}/attendance",
        400,
        None,
    ),
    (
        "set-attendance-uri",
        "PUT",
        "/events/v2/demo/booking/{past_event_uid}/attendance",
        {"person_uri": "/other/person/x/", "status": "attended"},
        "/events/v2/{bucket}/booking/{uid}/attendance",
        400,
        None,
    ),
    (
        "set-attendance-404",
        "PUT",
        "/events/v2/demo/booking/{past_event_uid}/attendance",
        {"person_uri": "{non_member_uri}", "status": "attended"},
        "/events/v2/{bucket}/booking/{uid}/attendance",
        404,
        None,
    ),
    (
        "task",
        "GET",
        "/notifications/v2/demo/task/{my_open_task_uid}",
        {},
        "/notifications/v2/{bucket}/task/{uid}",
        200,
        "task",
    ),
    (
        "task-404",
        "GET",
        "/notifications/v2/demo/task/ffffffffffffffffffffffff",
        {},
        "/notifications/v2/{bucket}/task/{uid}",
        404,
        None,
    ),
    (
        "task-snooze",
        "PUT",
        "/notifications/v2/demo/task/{my_open_task_uid}/snooze",
        {},
        "/notifications/v2/{bucket}/task/{uid}/snooze",
        200,
        "task",
    ),
    (
        "task-complete",
        "PUT",
        "/notifications/v2/demo/task/{my_open_task_uid}/complete",
        {},
        "/notifications/v2/{bucket}/task/{uid}/complete",
        200,
        "task",
    ),
    (
        "task-snooze-done",
        "PUT",
        "/notifications/v2/demo/task/{my_open_task_uid}/snooze",
        {},
        "/notifications/v2/{bucket}/task/{uid}/snooze",
        409,
        None,
    ),
    (
        "task-uncomplete",
        "PUT",
        "/notifications/v2/demo/task/{my_open_task_uid}/uncomplete",
        {},
        "/notifications/v2/{bucket}/task/{uid}/uncomplete",
        200,
        "task",
    ),
    (
        "task-complete-404",
        "PUT",
        "/notifications/v2/demo/task/ffffffffffffffffffffffff/complete",
        {},
        "/notifications/v2/{bucket}/task/{uid}/complete",
        404,
        None,
    ),
    ("segments-active", "GET", "/segments/v2/demo", {}, "/segments/v2/{bucket}", 200, None),
    ("segments-all", "GET", "/segments/v2/demo/all", {"page_size": "3"}, "/segments/v2/{bucket}/all", 200, None),
    ("segments-find", "GET", "/segments/v2/demo/find", {"name": "members"}, "/segments/v2/{bucket}/find", 200, None),
    ("segments-find-400", "GET", "/segments/v2/demo/find", {}, "/segments/v2/{bucket}/find", 400, None),
    (
        "segment-count",
        "GET",
        "/segments/v2/demo/segment/{segment_current_members_uid}/count",
        {},
        "/segments/v2/{bucket}/segment/{uid}/count",
        200,
        None,
    ),
    (
        "segment-count-404",
        "GET",
        "/segments/v2/demo/segment/ffffffffffffffffffffffff/count",
        {},
        "/segments/v2/{bucket}/segment/{uid}/count",
        404,
        None,
    ),
    (
        "segment-all",
        "GET",
        "/segments/v2/demo/segment/{segment_current_members_uid}/all",
        {"page": "2", "page_size": "10"},
        "/segments/v2/{bucket}/segment/{uid}/all",
        200,
        "segment_all",
    ),
    (
        "segment-all-verbose",
        "GET",
        "/segments/v2/demo/segment/{segment_committee_uid}/all",
        {"verbose": "true"},
        "/segments/v2/{bucket}/segment/{uid}/all",
        200,
        "segment_all",
    ),
    (
        "segment-all-400",
        "GET",
        "/segments/v2/demo/segment/{segment_committee_uid}/all",
        {"page_size": "100000"},
        "/segments/v2/{bucket}/segment/{uid}/all",
        400,
        None,
    ),
    (
        "segment-lookup",
        "GET",
        "/segments/v2/demo/segment/{segment_current_members_uid}/lookup",
        {"q": "austen"},
        "/segments/v2/{bucket}/segment/{uid}/lookup",
        200,
        None,
    ),
    (
        "segment-lookup-404",
        "GET",
        "/segments/v2/demo/segment/nope/lookup",
        {},
        "/segments/v2/{bucket}/segment/{uid}/lookup",
        404,
        None,
    ),
    (
        "unauthorized",
        "GET",
        "/events/v2/demo/bookings/all",
        {"_key": "wrong"},
        "/events/v2/{bucket}/bookings/{state}",
        401,
        None,
    ),
    ("other-bucket", "GET", "/segments/v2/elsewhere/all", {}, "/segments/v2/{bucket}/all", 404, None),
]

TASK_LISTS = [
    ("/notifications/v2/demo/tasks", {}),
    ("/notifications/v2/demo/tasks/all", {"page_size": "50"}),
    ("/notifications/v2/demo/tasks/all", {"page": "2"}),
]


@pytest.fixture(scope="module")
def spec_sandbox() -> Any:
    with SandboxServer(key="spec-key") as server:
        yield server


def fill(value: str, facts: dict[str, Any]) -> str:
    return value.format(**{k: v for k, v in facts.items() if isinstance(v, str)})


@pytest.mark.parametrize(
    ("method", "path", "params", "pattern", "status", "shape"), [c[1:] for c in V2_CASES], ids=[c[0] for c in V2_CASES]
)
def test_v2_responses_match_spec(
    spec_sandbox: SandboxServer,
    check_spec: Callable[..., None],
    check_shape: Callable[..., None],
    check_task: Callable[..., None],
    method: str,
    path: str,
    params: dict[str, str],
    pattern: str,
    status: int,
    shape: str | None,
) -> None:
    facts = spec_sandbox.store.demo_facts()
    params = {k: fill(v, facts) for k, v in params.items()}
    key = params.pop("_key", "spec-key")
    with httpx.Client(base_url=spec_sandbox.url, headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.request(method, fill(path, facts), params=params)
    assert response.status_code == status, response.text
    check_spec(response, pattern)
    if shape == "task":  # the spec gives tasks only as the list's item schema
        check_task(response.json())
    elif shape:
        check_shape(response.json(), shape)


@pytest.mark.parametrize(("path", "params"), TASK_LISTS)
def test_task_lists_match_spec_item_schema(
    spec_sandbox: SandboxServer,
    check_spec: Callable[..., None],
    check_task: Callable[..., None],
    path: str,
    params: dict[str, str],
) -> None:
    """`tasks` is a list (the 2025-02 draft); each item is validated against the 2024-12 cut's `tasks` object."""
    with httpx.Client(base_url=spec_sandbox.url, headers={"Authorization": "Bearer spec-key"}) as client:
        response = client.get(path, params=params)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["tasks"], list) and body["tasks"]
    for task in body["tasks"]:
        check_task(task)
    assert set(body) == {"tasks", "total", "user_uri"}  # the 2025-02 draft's TaskList envelope


V1_CASES: list[tuple[str, str, str, dict[str, Any], Any, int, str]] = [
    ("ping", "GET", "/api/v1/ping/", {}, None, 200, "v1_ping"),
    ("bucket", "GET", "/api/v1/demo/", {}, None, 200, "v1_bucket"),
    ("membership", "GET", "/api/v1/demo/user/membership/", {"email": "{jane_email}"}, None, 200, "v1_membership"),
    (
        "membership-lapsed",
        "GET",
        "/api/v1/demo/user/membership/",
        {"email": "{lapsed_email}", "realtime": "Y"},
        None,
        200,
        "v1_membership",
    ),
    (
        "membership-none",
        "GET",
        "/api/v1/demo/user/membership/",
        {"email": "{non_member_email}"},
        None,
        200,
        "v1_membership",
    ),
    ("membership-404", "GET", "/api/v1/demo/user/membership/", {"email": "nobody@example.org"}, None, 404, "v1_error"),
    ("membership-409", "GET", "/api/v1/demo/user/membership/", {"email": "{shared_email}"}, None, 409, "v1_error"),
    ("record", "GET", "/api/v1{jane_uri}", {}, None, 200, "v1_record"),
    ("record-404", "GET", "/api/v1/demo/person/ffffffffffffffffffffffff/", {}, None, 404, "v1_error"),
    (
        "put",
        "PUT",
        "/api/v1{lapsed_uri}",
        {},
        {"telephone": "+44 7700 900999", "postal_code": "YO1 7HH"},
        200,
        "v1_record",
    ),
    ("put-unknown-field", "PUT", "/api/v1{lapsed_uri}", {}, {"shoe_size": 9}, 400, "v1_error"),
    ("put-empty", "PUT", "/api/v1{lapsed_uri}", {}, {}, 400, "v1_error"),
    ("put-bad-email", "PUT", "/api/v1{lapsed_uri}", {}, {"email": ["not-an-email"]}, 409, "v1_error"),
]


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "status", "shape"), [c[1:] for c in V1_CASES], ids=[c[0] for c in V1_CASES]
)
def test_v1_responses_match_notes(
    spec_sandbox: SandboxServer,
    check_shape: Callable[..., None],
    method: str,
    path: str,
    params: dict[str, str],
    body: Any,
    status: int,
    shape: str,
) -> None:
    facts = spec_sandbox.store.demo_facts()
    with httpx.Client(base_url=spec_sandbox.v1_url, headers={"Authorization": "Bearer spec-key"}) as client:
        response = client.request(
            method, fill(path, facts), params={k: fill(v, facts) for k, v in params.items()}, json=body
        )
    assert response.status_code == status, response.text
    check_shape(response.json(), shape)


def test_v1_auth(spec_sandbox: SandboxServer, check_shape: Callable[..., None]) -> None:
    email = spec_sandbox.store.demo_facts()["api_user_email"]
    with httpx.Client(base_url=spec_sandbox.v1_url) as client:
        ok = client.post("/api/v1/auth/", data={"username": email, "password": "sandbox-password"})
        bad = client.post("/api/v1/auth/", data={"username": email, "password": "guess"})
    assert ok.status_code == 200 and ok.json() == {"api_key": "spec-key"}
    check_shape(ok.json(), "v1_auth")
    assert bad.status_code == 403
    check_shape(bad.json(), "v1_auth_error")
