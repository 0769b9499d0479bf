"""The one error path (server/errors.py): bad arguments are the caller's to fix; an answer model that sheepCRM's
values do not fit is "could not read sheepCRM's answer", naming fields, never values, never the caller's fault."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from sheepcrm_mcp.server.errors import answering, arguments
from sheepcrm_mcp.server.specs import Output


class Answer(Output):
    sold_out: bool | None = None


class Request(BaseModel):
    limit: int = Field(1, ge=1)


def test_an_answer_built_from_an_unreadable_value_is_not_invalid_arguments() -> None:
    with pytest.raises(ToolError) as caught, answering("list_events"):
        Answer(sold_out=["secret-value"])  # type: ignore[arg-type]
    said = str(caught.value)
    assert "could not read sheepCRM's answer (field sold_out" in said and "unknown" in said, said
    assert "Invalid arguments" not in said and "secret-value" not in said, said


def test_bad_arguments_are_still_the_callers_to_fix() -> None:
    with pytest.raises(ToolError) as caught, answering("list_events"):
        arguments("list_events", Request, {"limit": 0})
    assert str(caught.value).startswith("Invalid arguments for list_events: limit:"), caught.value
