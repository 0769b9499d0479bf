"""Fixtures for the sandbox tests: running servers, an authenticated client, spec checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse

from sheepcrm_mcp.sandbox import SandboxServer

DOCS = Path(__file__).resolve().parents[2] / ".." / "shared" / "sheepcrm-api"
SPEC = DOCS / "openapi.yaml"  # the contract (2025-04-22) for everything it covers
TASKS_SPEC = DOCS / "openapi-with-tasks.yaml"  # tasks only: later cuts dropped them
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
    "help": {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["uid", "title", "link", "snippet"],
                    "properties": {"title": _STR, "link": _STR, "snippet": _STR, "text": _STR, "html": _STR},
                },
            }
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


@pytest.fixture(scope="session")
def openapi() -> dict[str, OpenAPI]:
    # The specs have unresolvable path parameters (e.g. tasks declare resource_type), so skip spec validation.
    return {
        "main": OpenAPI.from_file_path(str(SPEC), config=Config(spec_validator_cls=None)),
        "tasks": OpenAPI.from_file_path(str(TASKS_SPEC), config=Config(spec_validator_cls=None)),
    }


@pytest.fixture(scope="session")
def spec_schemas() -> dict[str, Any]:
    """components/schemas of both specs as plain JSON (use only the $ref-free ones directly)."""
    schemas: dict[str, Any] = yaml.safe_load(TASKS_SPEC.read_text())["components"]["schemas"]
    schemas.update(yaml.safe_load(SPEC.read_text())["components"]["schemas"])
    return schemas


def without_nulls(value: Any) -> Any:
    """The answer with null-valued keys left out: the reference text shows nulls (e.g. payment_date) on fields
    the specs type as strings without `nullable`, so a null is checked as an absent optional field."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


@pytest.fixture(scope="session")
def check_spec(openapi: dict[str, OpenAPI], spec_schemas: dict[str, Any]) -> Callable[[httpx.Response, str], None]:
    """Validate a response against the operation at `pattern` (a path template of the spec).

    The request carries `path_pattern`, so templates like /api/v2{contact_uri}summary need no matching.
    An error status the operation does not list is checked against components/schemas/error."""
    error_schema = spec_schemas["error"]

    def check(response: httpx.Response, pattern: str) -> None:
        request = MockRequest(
            "https://sls-api.sheepcrm.com",
            response.request.method,
            response.request.url.path,
            path_pattern=pattern,
            args=dict(response.request.url.params),
        )
        content = json.dumps(without_nulls(response.json())).encode() if response.content else b""
        mock = MockResponse(
            content,
            response.status_code,
            headers=dict(response.headers),
            content_type=response.headers.get("content-type", ""),
        )
        spec = openapi["tasks" if pattern.startswith("/notifications/") else "main"]
        try:
            spec.validate_response(request, mock)
        except ResponseNotFound:
            assert response.status_code >= 400, f"{response.status_code} not in spec for {pattern}"
            jsonschema.validate(response.json(), error_schema)
        except OpenAPIError as exc:
            raise AssertionError(f"{pattern} {response.status_code}: {str(exc)[:500]}") from None
        if response.status_code >= 400:
            jsonschema.validate(response.json(), error_schema)

    return check


@pytest.fixture(scope="session")
def check_shape() -> Callable[[Any, str], None]:
    def check(body: Any, shape: str) -> None:
        jsonschema.validate(body, SHAPES[shape])

    return check


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
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
def client(sandbox: SandboxServer, make_client: MakeClient) -> httpx.Client:
    return make_client(sandbox)


@pytest.fixture
def fresh_client(fresh: SandboxServer, make_client: MakeClient) -> httpx.Client:
    return make_client(fresh)


@pytest.fixture(scope="session")
def facts(sandbox: SandboxServer) -> dict[str, Any]:
    return sandbox.store.demo_facts()
