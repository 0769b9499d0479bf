"""The one error path of every tool: what the model is told when a call cannot be carried out.

A `Refusal` (or a sheepCRM error) carries a message meant for the model; `answering` turns it, bad
arguments (`arguments`, worded by `explain_validation`, by name and rule only) and an answer model that
sheepCRM's values do not fit ("could not read sheepCRM's answer", by field name only) into a ToolError; anything else is
logged and answered without a traceback. `or_refuse` is the one not-found path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ValidationError

from sheepcrm_mcp.server.logs import scrub
from sheepcrm_mcp.server.telemetry import error_kind
from sheepcrm_mcp.sheepcrm.errors import V1_404_CAVEAT, NotFoundError, SheepError

log = logging.getLogger("sheepcrm_mcp.tools")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Refusal(Exception):
    """A request the tool will not carry out; the message tells the model what to do instead."""


EXPECTED = (Refusal, SheepError)  # failures whose message is meant for the model (scope errors included)


class _BadArguments(Exception):
    """Arguments that failed their tool's input model (see `arguments`): the caller's to fix."""


def arguments(tool: str, model: type[M], values: dict[str, Any]) -> M:
    """The tool's arguments validated by its input model. Only here is a validation failure the caller's: one raised
    later (an answer model built from sheepCRM's values) is "could not read sheepCRM's answer" (`answering`)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _BadArguments(explain_validation(tool, exc)) from None


def _fields(exc: ValidationError) -> str:
    """The answer fields a validation failure names, keys only (positions and values left out)."""
    names = {".".join(str(p) for p in err["loc"] if not isinstance(p, int)) for err in exc.errors(include_url=False)}
    return ", ".join(sorted(n for n in names if n)) or "(the whole answer)"


@dataclass(frozen=True)
class InvalidArguments:
    """Stands in for arguments that failed validation; the tool answers with `message` (see build_tool)."""

    message: str


def refuse_invalid(arguments: dict[str, Any]) -> None:
    for value in arguments.values():
        if isinstance(value, InvalidArguments):
            raise ToolError(value.message)


@contextmanager
def answering(tool: str) -> Iterator[None]:
    """The one error path: expected failures become a ToolError the model can act on; the rest is logged.
    Each is noted for /metrics by its kind (an exception's class name, never its text)."""
    try:
        yield
    except _BadArguments as exc:
        error_kind("invalid_arguments")
        raise ToolError(scrub(str(exc))) from None
    except ValidationError as exc:  # an answer built from sheepCRM's values, not the caller's arguments
        error_kind("unreadable_answer")
        raise ToolError(
            f"{tool} could not read sheepCRM's answer (field {_fields(exc)}: not a value sheepCRM's documents "
            "allow). This is not 'none' or 'no': the answer is unknown. `sheepcrm-mcp doctor --contract` checks "
            "every read."
        ) from None
    except EXPECTED as exc:
        error_kind(type(exc).__name__)
        raise ToolError(scrub(str(exc))) from None
    except ToolError as exc:
        error_kind("refused")
        raise ToolError(scrub(str(exc))) from None
    except ExceptionGroup as group:  # reads made side by side (a task group) that failed in the expected ways
        expected, rest = group.split(EXPECTED)
        if expected is not None and rest is None:
            error_kind(type(_first(expected)).__name__)
            raise ToolError(scrub(str(_first(expected)))) from None
        raise _unexpected(tool) from None
    except Exception:
        raise _unexpected(tool) from None


def _unexpected(tool: str) -> ToolError:
    """A failure nobody planned for: logged with its traceback, answered without it."""
    error_kind("unexpected")
    log.exception("tool %s failed unexpectedly", tool)
    return ToolError(
        f"{tool} failed unexpectedly; nothing was changed by this call. "
        "Try again; if it keeps failing, report it with the server log."
    )


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf exception of a (possibly nested) exception group."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


async def or_refuse(call: Awaitable[T], message: str) -> T:
    """The one not-found path: a 404 from sheepCRM becomes a Refusal saying where to find the record."""
    try:
        return await call
    except NotFoundError as exc:
        raise Refusal(f"{message} {V1_404_CAVEAT}" if exc.api == "v1" else message) from None


# pydantic's words for an unreadable date ("invalid character in year", "input is too short") say nothing of the
# format to send; every date or datetime argument of every tool is answered with the format instead.
DATE_ERRORS = {"date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact", "date_type"}


DATETIME_ERRORS = {"datetime_parsing", "datetime_from_date_parsing", "datetime_type", "datetime_object_invalid"}


DATE_FORMAT = "use a date as YYYY-MM-DD (e.g. 2026-12-31)"


DATETIME_FORMAT = "use a date and time as YYYY-MM-DDTHH:MM:SSZ (e.g. 2026-12-31T09:30:00Z)"


def explain_validation(tool: str, exc: ValidationError) -> str:
    """Our words for bad arguments, by name and rule only: values, which may be secrets, are never echoed."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "is not an argument of this tool"
        elif err["type"] in DATE_ERRORS:
            msg = DATE_FORMAT
        elif err["type"] in DATETIME_ERRORS:
            msg = DATETIME_FORMAT
        parts.append(f"{where}: {msg}")
    return f"Invalid arguments for {tool}: " + "; ".join(parts) + ". Fix them and call again."
