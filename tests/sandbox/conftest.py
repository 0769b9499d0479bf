"""Fixtures for the sandbox tests: running servers, an authenticated client, spec checks.

Answers are checked against the project's contract table (tests/contract_table.json: documented statuses, the
types of the fields the tools read); with SHEEPCRM_API_DOCS pointing at a copy of sheepCRM's documents they are
also validated against the full OpenAPI documents."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from sheepcrm_mcp.sandbox import SandboxServer
from tests.contract import check_answer, docs

KEY = "test-key"

# Shapes for responses the spec leaves without a schema (documented in sandbox/README.md).
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_LIST = {"type": "array", "items": {"type": ["string", "null"]}}  # v1 positional lists may hold nulls
_SEARCH_ITEM = {
    "type": "object",
    "required": ["display_value", "id", "resource"],
    "properties": {
        "display_value": _STR,
        "id": _STR,
        "primary_email": _STR,
        "primary_telephone": _STR,
        "resource": {"enum": ["person", "organisation"]},
    },
}
SHAPES: dict[str, dict[str, Any]] = {
    "summary": {
        "type": "object",
        "required": ["uri", "uid", "resource", "display_value", "last_updated"],
        "not": {"required": ["membership"]},  # no document gives the summary a membership block
        "properties": {"uri": _STR, "display_value": _STR, "primary_email": _STR, "tags": _STRS},
    },
    "communications": {
        "type": "object",
        "required": ["uri", "email", "telephone", "address_lines"],
        "properties": {
            "email": _LIST,
            "telephone": _LIST,
            "address_lines": _LIST,
            "postal_code": _STR,
            "locality": _STR,
        },
    },
    "personal": {
        "type": "object",
        "required": ["uri", "first_name", "last_name", "formatted_name"],
        "properties": {"first_name": _STR, "last_name": _STR, "notes": _STR},
    },
    "person_search": {
        "type": "object",
        "required": ["results"],
        "properties": {"results": {"type": "array", "items": _SEARCH_ITEM}},
    },
    "help": {  # EVIDENCE.md: {docs, q, results: [{link, title}]}, no snippet; include_text/_html add text/html
        "type": "object",
        "required": ["docs", "q", "results"],
        "properties": {
            "q": _STR,
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["link", "title"],
                    "properties": {"title": _STR, "link": _STR, "text": _STR, "html": _STR},
                    "not": {"required": ["snippet"]},
                },
            },
        },
    },
    "segment_all": {
        "type": "object",
        "required": ["results"],
        "not": {"anyOf": [{"required": ["total"]}, {"required": ["pages"]}]},  # no total is documented
        "properties": {"results": {"type": "array", "items": _SEARCH_ITEM}},
    },
    "v1_ping": {"type": "object", "required": ["message"], "properties": {"message": {"const": "pong"}}},
    "v1_auth": {"type": "object", "required": ["api_key"], "properties": {"api_key": _STR}},
    "v1_auth_error": {"type": "object", "required": ["error", "error_detail"]},
    "v1_bucket": {
        "type": "object",
        "required": ["resource_type"],
        "properties": {
            "resource_type": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["count", "name", "last_modified"],
                    "properties": {"count": {"type": "integer"}, "name": _STR},
                },
            }
        },
    },
    "v1_membership": {
        "type": "object",
        "required": [
            "active_memberships_for_display",
            "first_name",
            "last_name",
            "member_since",
            "member_till",
            "member_till_plus_grace",
            "membership_numbers",
            "membership_record_status",
            "primary_email",
            "person",
        ],
        "properties": {
            "active_memberships_for_display": _STRS,
            "membership_numbers": _STRS,
            "membership_record_status": {"enum": ["active", "lapsed", "future", "none"]},
            "member_till": {"type": ["string", "null"]},
        },
    },
    "v1_record": {
        "type": "object",
        "required": ["bucket", "data", "display_value", "meta", "resource", "uri"],
        "properties": {
            "data": {"type": "object"},
            "meta": {"type": "object", "required": ["created", "last_updated", "state"]},
        },
    },
    "v1_error": {"type": "object", "required": ["error"], "properties": {"error": _STR}},
}


class Documents:
    """sheepCRM's full OpenAPI documents (SHEEPCRM_API_DOCS), for the deeper check."""

    def __init__(self, folder: Path) -> None:
        import yaml
        from openapi_core import Config, OpenAPI

        main, tasks = folder / "openapi.yaml", folder / "openapi-with-tasks.yaml"  # tasks: only the 2024-12 cut
        # The specs have unresolvable path parameters (e.g. tasks declare resource_type): skip spec validation.
        self.main = OpenAPI.from_file_path(str(main), config=Config(spec_validator_cls=None))
        self.tasks = OpenAPI.from_file_path(str(tasks), config=Config(spec_validator_cls=None))
        self.schemas: dict[str, Any] = yaml.safe_load(tasks.read_text())["components"]["schemas"]
        self.schemas.update(yaml.safe_load(main.read_text())["components"]["schemas"])

    def validate(self, response: httpx.Response, pattern: str) -> None:
        """Validate a response against the operation at `pattern` (a path template of the spec); the request
        carries `path_pattern`, so templates like /api/v2{contact_uri}summary need no matching. An error status
        the operation does not list is checked against components/schemas/error."""
        from openapi_core.exceptions import OpenAPIError
        from openapi_core.templating.responses.exceptions import ResponseNotFound
        from openapi_core.testing import MockRequest, MockResponse

        request = MockRequest(
            "https://sls-api.sheepcrm.com", response.request.method, response.request.url.path,
            path_pattern=pattern, args=dict(response.request.url.params),
        )
        content = json.dumps(without_nulls(response.json())).encode() if response.content else b""
        mock = MockResponse(
            content, response.status_code, headers=dict(response.headers),
            content_type=response.headers.get("content-type", ""),
        )
        spec = self.tasks if pattern.startswith("/notifications/") else self.main
        try:
            spec.validate_response(request, mock)
        except ResponseNotFound:
            assert response.status_code >= 400, f"{response.status_code} not in spec for {pattern}"
            jsonschema.validate(response.json(), self.schemas["error"])
        except OpenAPIError as exc:
            raise AssertionError(f"{pattern} {response.status_code}: {str(exc)[:500]}") from None
        if response.status_code >= 400:
            jsonschema.validate(response.json(), self.schemas["error"])


@pytest.fixture(scope="session")
def documents() -> Documents | None:
    folder = docs()
    return Documents(folder) if folder else None


def without_nulls(value: Any) -> Any:
    """The answer with null-valued keys left out: the reference text shows nulls (e.g. payment_date) on fields
    the specs type as strings without `nullable`, so a null is checked as an absent optional field."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


@pytest.fixture(scope="session")
def check_spec(documents: Documents | None) -> Callable[[httpx.Response, str], None]:
    """Check a response to the operation at `pattern` (a path template): against the project's contract table,
    and against the full documents when SHEEPCRM_API_DOCS is set."""

    def check(response: httpx.Response, pattern: str) -> None:
        body = response.json() if response.content else None
        problems = check_answer(response.request.method, pattern, response.status_code, body)
        assert not problems, "\n".join(problems)
        if documents is not None:
            documents.validate(response, pattern)

    return check


@pytest.fixture(scope="session")
def check_task(documents: Documents | None) -> Callable[[Any], None]:
    """Check one task object: the table's task fields and types (both cuts), and with the full documents the
    2024-12 cut's `tasks` object schema (the spec gives tasks only as the list's item schema)."""

    def check(task: Any) -> None:
        problems = check_answer("GET", "/notifications/v2/{bucket}/task/{uid}", 200, task)
        assert not problems, "\n".join(problems)
        if documents is not None:
            jsonschema.validate(task, documents.schemas["getTasks"]["properties"]["tasks"])

    return check


@pytest.fixture(scope="session")
def check_shape() -> Callable[[Any, str], None]:
    def check(body: Any, shape: str) -> None:
        jsonschema.validate(body, SHAPES[shape])

    return check


@pytest.fixture(scope="session")
def read_sandbox() -> Iterator[SandboxServer]:
    """A shared demo sandbox for read tests (tests that write use `fresh`)."""
    with SandboxServer(key=KEY) as server:
        yield server


@pytest.fixture
def fresh() -> Iterator[SandboxServer]:
    with SandboxServer(key=KEY) as server:
        yield server


MakeClient = Callable[..., httpx.Client]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """make_client(server, key=KEY, **httpx options): a client closed after the test."""
    made: list[httpx.Client] = []

    def make(server: SandboxServer, key: str = KEY, **kwargs: Any) -> httpx.Client:
        """v2 paths go to the v2 listener, /api/v1/ paths to the v1 listener (separate hosts, as at sheepCRM)."""

        def route(request: httpx.Request) -> None:
            if request.url.path.startswith("/api/v1/"):
                request.url = request.url.copy_with(port=server.v1_port)

        hooks = {"request": [route]}
        made.append(
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, event_hooks=hooks, **kwargs)
        )
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def client(read_sandbox: SandboxServer, make_client: MakeClient) -> httpx.Client:
    return make_client(read_sandbox)


@pytest.fixture
def fresh_client(fresh: SandboxServer, make_client: MakeClient) -> httpx.Client:
    return make_client(fresh)


@pytest.fixture(scope="session")
def facts(read_sandbox: SandboxServer) -> dict[str, Any]:
    return read_sandbox.store.demo_facts()
