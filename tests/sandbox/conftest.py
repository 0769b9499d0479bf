"""Fixtures for the sandbox tests: running servers, an authenticated client, spec checks."""

from __future__ import annotations

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

SPEC = Path(__file__).resolve().parents[2] / ".." / "shared" / "sheepcrm-api" / "openapi-with-tasks.yaml"
KEY = "test-key"

# Shapes for responses the spec leaves without a schema (documented in sandbox/README.md).
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
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
        "required": ["uri", "uid", "resource", "display_value", "membership", "last_updated"],
        "properties": {
            "uri": _STR,
            "display_value": _STR,
            "primary_email": _STR,
            "tags": _STRS,
            "membership": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"enum": ["current", "lapsed", "future", "none"]},
                    "plan": _STR,
                    "start_date": _STR,
                    "end_date": _STR,
                },
            },
        },
    },
    "communications": {
        "type": "object",
        "required": ["uri", "email", "telephone", "address_lines"],
        "properties": {
            "email": _STRS,
            "telephone": _STRS,
            "address_lines": _STRS,
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
        "required": ["results", "count"],
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
        "required": ["results", "total", "page", "page_size", "pages"],
        "properties": {"results": {"type": "array", "items": _SEARCH_ITEM}, "total": {"type": "integer"}},
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
def openapi() -> OpenAPI:
    # The spec has unresolvable path parameters (e.g. tasks declare resource_type), so skip spec validation.
    return OpenAPI.from_file_path(str(SPEC), config=Config(spec_validator_cls=None))


@pytest.fixture(scope="session")
def spec_schemas() -> dict[str, Any]:
    """components/schemas of the spec as plain JSON (use only the $ref-free ones directly)."""
    schemas: dict[str, Any] = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    return schemas


@pytest.fixture(scope="session")
def check_spec(openapi: OpenAPI, spec_schemas: dict[str, Any]) -> Callable[[httpx.Response, str], None]:
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
        mock = MockResponse(
            response.content,
            response.status_code,
            headers=dict(response.headers),
            content_type=response.headers.get("content-type", ""),
        )
        try:
            openapi.validate_response(request, mock)
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
        made.append(httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, **kwargs))
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
