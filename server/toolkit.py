"""How a tool is declared and turned into an MCP tool.

A tool is a `ReadTool` (handler `(input, Deps) -> output`, given a client that can only read)
or a `WriteTool` (handler `(input, WriteDeps) -> WritePlan`, which only the gate runs; its
destructive and idempotent hints are required). `build_tool` exposes the input model's fields
as the tool's parameters (so the model sees a flat schema), re-validates with the model itself
(so cross-field rules hold), and maps every failure through `answering`, the one error path:
nothing reaches the client as a traceback.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import anyio
import pydantic_core
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticUndefined

from sheepcrm_mcp.server.logs import scrub
from sheepcrm_mcp.server.settings import Settings
from sheepcrm_mcp.server.writes import WritePlan
from sheepcrm_mcp.sheepcrm import NotFoundError, SheepClient, SheepError, SheepReader
from sheepcrm_mcp.sheepcrm.errors import V1_404_CAVEAT

log = logging.getLogger("sheepcrm_mcp.tools")

I = TypeVar("I", bound=BaseModel)  # noqa: E741
O = TypeVar("O", bound=BaseModel)  # noqa: E741
T = TypeVar("T")

RESPONSE_CAP = 20_000  # characters of structured content a list answer may carry
STRING_CAP = 2_000  # longest single string value in an answer; longer ones are cut and say so
HARD_CAP = 100_000  # no answer is ever longer than this, whatever the upstream sent


class Input(BaseModel):
    """Base of tool input models: unknown arguments are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    """Base of tool output models. Unset (None) fields are left out of answers to keep them short."""

    model_config = ConfigDict(extra="forbid")

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class Refusal(Exception):
    """A request the tool will not carry out; the message tells the model what to do instead."""


EXPECTED = (Refusal, SheepError)  # failures whose message is meant for the model (scope errors included)


@dataclass
class Deps:
    """What a read handler may use: a client that can only read, the settings and the request context."""

    client: SheepReader
    settings: Settings
    ctx: Context | None = None


class GatedWrites:
    """The client's write methods, reachable only while the gate applies a plan a person approved.

    A write handler builds its plan with the read-only `deps.client`; its `apply` reaches the writes
    through `deps.writes.client`, which the gate opens only around `WritePlan.apply` (Gate._commit).
    Anywhere else, including while the plan is built or previewed, it raises."""

    def __init__(self, client: SheepClient) -> None:
        self._client = client
        self._open = False

    @property
    def client(self) -> SheepClient:
        if not self._open:
            raise RuntimeError("write methods are reachable only inside WritePlan.apply, after a person approved")
        return self._client

    @contextmanager
    def opened(self) -> Iterator[None]:
        self._open = True
        try:
            yield
        finally:
            self._open = False


@dataclass
class WriteDeps(Deps):
    """What a write handler may use: the read-only client to build its plan, and the gated writes for apply."""

    writes: GatedWrites = field(kw_only=True)


@dataclass(frozen=True, kw_only=True)
class ReadTool(Generic[I, O]):
    name: str
    title: str
    description: str
    toolset: str
    input: type[I]
    output: type[O]
    handler: Callable[[I, Deps], Awaitable[O]]

    @property
    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(read_only_hint=True, open_world_hint=False)


@dataclass(frozen=True, kw_only=True)
class WriteTool(Generic[I]):
    """A gated write: the handler returns the plan; the gate previews, asks a person and applies it."""

    name: str
    title: str
    description: str
    toolset: str
    input: type[I]
    handler: Callable[[I, WriteDeps], Awaitable[WritePlan]]
    destructive: bool
    idempotent: bool

    @property
    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(
            read_only_hint=False,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=False,
        )


ToolSpec = ReadTool[Any, Any] | WriteTool[Any]


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
    """The one error path: expected failures become a ToolError the model can act on; the rest is logged."""
    try:
        yield
    except ValidationError as exc:
        raise ToolError(scrub(explain_validation(tool, exc))) from None
    except EXPECTED as exc:
        raise ToolError(scrub(str(exc))) from None
    except ToolError as exc:
        raise ToolError(scrub(str(exc))) from None
    except ExceptionGroup as group:  # reads made side by side (a task group) that failed in the expected ways
        expected, rest = group.split(EXPECTED)
        if expected is not None and rest is None:
            raise ToolError(scrub(str(_first(expected)))) from None
        log.exception("tool %s failed unexpectedly", tool)
        raise ToolError(
            f"{tool} failed unexpectedly; nothing was changed by this call. "
            "Try again; if it keeps failing, report it with the server log."
        ) from None
    except Exception:
        log.exception("tool %s failed unexpectedly", tool)
        raise ToolError(
            f"{tool} failed unexpectedly; nothing was changed by this call. "
            "Try again; if it keeps failing, report it with the server log."
        ) from None


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


@dataclass
class Registration:
    """Everything build_tool needs: what the model sees and the call behind it."""

    name: str
    title: str
    description: str
    input: type[BaseModel]
    output: type[BaseModel]
    annotations: ToolAnnotations
    call: Callable[[BaseModel, Context, dict[str, Any]], Awaitable[BaseModel]]
    extra_params: tuple[inspect.Parameter, ...] = ()


def read_registration(spec: ReadTool[Any, Any], make_deps: Callable[[Context], Deps]) -> Registration:
    async def call(request: BaseModel, ctx: Context, _: dict[str, Any]) -> BaseModel:
        deps = make_deps(ctx)
        result: BaseModel | None = None
        with anyio.move_on_after(deps.settings.call_deadline):
            result = await spec.handler(request, deps)
        if result is None:
            raise Refusal(
                f"{spec.name} took longer than {deps.settings.call_deadline:g}s (sheepCRM is slow or unwell); "
                "nothing was changed. Try again shortly, or narrow the request."
            )
        return result

    return Registration(spec.name, spec.title, spec.description, spec.input, spec.output, spec.annotations, call)


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


def _parameters(model: type[BaseModel]) -> list[inspect.Parameter]:
    params = []
    for name, info in model.model_fields.items():
        meta = copy.copy(info)
        default = info.get_default(call_default_factory=True) if not info.is_required() else inspect.Parameter.empty
        meta.default = PydanticUndefined
        meta.default_factory = None
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[info.annotation, meta]
            )
        )
    return params


def build_tool(spec: Registration) -> Tool:
    """The SDK tool for `spec`: flat parameters from the input model, unknown arguments refused."""

    async def call(**kwargs: Any) -> BaseModel | CallToolResult:
        refuse_invalid(kwargs)
        ctx: Context = kwargs.pop("ctx")
        extras = {p.name: kwargs.pop(p.name) for p in spec.extra_params if p.name in kwargs}
        with answering(spec.name):
            request = spec.input.model_validate(kwargs)
            result = await spec.call(request, ctx, extras)
            return compact_answer(result) if isinstance(result, Output) else result

    params = [
        *_parameters(spec.input),
        *spec.extra_params,
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
    ]
    call.__name__ = spec.name
    call.__signature__ = inspect.Signature(params, return_annotation=spec.output)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params} | {"return": spec.output}
    tool = Tool.from_function(
        call,
        name=spec.name,
        title=spec.title,
        description=spec.description,
        annotations=spec.annotations,
        structured_output=True,
    )
    # The SDK ignores unknown arguments; refuse them instead, so a model cannot smuggle in
    # strings (for example text copied from an earlier result) and believe they had an effect.
    base = tool.fn_metadata.arg_model
    known = sorted(spec.input.model_fields)

    def no_strangers(cls: type[BaseModel], data: Any) -> Any:
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(known))):
            raise ValueError(
                f"unknown argument(s) {', '.join(unknown)[:200]}; {spec.name} takes only: {', '.join(known)}"
            )
        return data

    class Strict(base):  # type: ignore[valid-type,misc]
        model_config = {**base.model_config, "extra": "forbid"}
        _no_strangers = model_validator(mode="before")(classmethod(no_strangers))  # type: ignore[arg-type]

        @classmethod
        def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
            """Bad arguments become our own message (by name and rule only: values, which may be secrets,
            are not echoed), carried to the tool as an InvalidArguments stand-in: the SDK would otherwise
            answer with pydantic's "1 validation error for ..." report."""
            try:
                return super().model_validate(obj, **kwargs)
            except ValidationError as exc:
                invalid = InvalidArguments(explain_validation(spec.name, exc))
                return cls.model_construct(**dict.fromkeys(cls.model_fields, invalid))

    Strict.__name__ = f"{spec.name}_arguments"
    strict: type[BaseModel] = Strict
    tool.fn_metadata.arg_model = strict  # type: ignore[assignment]
    tool.parameters = argument_schema(compact_schema(strict.model_json_schema(by_alias=True)))
    if tool.fn_metadata.output_schema is not None:
        tool.fn_metadata.output_schema = answer_schema(compact_schema(tool.fn_metadata.output_schema))
    return tool


def compact_answer(result: Output) -> CallToolResult:
    """structuredContent plus the same JSON as text, compact. The SDK's default text is indented
    (about a third more characters for the model to read, and to send); bench/RESULTS.md measures it."""
    data = json.loads(scrub(pydantic_core.to_json(shorten(result.model_dump(mode="json", by_alias=True))).decode()))
    text = pydantic_core.to_json(data).decode()
    if len(text) > HARD_CAP:
        raise Refusal(
            f"The answer would be {len(text)} characters, over the {HARD_CAP} limit; nothing is returned. "
            "Ask for fewer records (a smaller limit) or a narrower query."
        )
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def shorten(value: Any) -> Any:
    """Every string cut to STRING_CAP characters, saying how much was left out (an upstream may send megabytes)."""
    if isinstance(value, str) and len(value) > STRING_CAP:
        return value[:STRING_CAP] + f"... [cut: {len(value) - STRING_CAP} more characters]"
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten(v) for v in value]
    return value


def argument_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Published input schema: optional means omit it (null is never needed). Lengths and unknown arguments
    are still checked on every call, with an error naming the allowed arguments; they are left out here
    because every character of tools/list is paid for in the model's context on every turn."""
    props = {}
    for name, sub in schema.get("properties", {}).items():
        sub = {k: v for k, v in sub.items() if k not in ("maxLength", "minLength")}
        if isinstance(sub.get("type"), list) and "null" in sub["type"]:
            rest = [t for t in sub["type"] if t != "null"]
            sub["type"] = rest[0] if len(rest) == 1 else rest
        props[name] = sub
    return {k: v for k, v in schema.items() if k != "additionalProperties"} | {"properties": props}


def answer_schema(schema: Any, top: bool = True) -> Any:
    """Output schemas describe answers: None is never sent (see Output), so nullable means optional.

    Descriptions, defaults, additionalProperties and nested record shapes are dropped here: the tool
    description carries the meaning, and every byte of tools/list costs the model context on every turn.
    """
    if isinstance(schema, list):
        return [answer_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("description", "default") or (key == "additionalProperties" and value is False):
            continue
        if key == "$defs":
            continue  # nested records are described by the tool description, not re-listed here
        if key == "$ref":
            out["type"] = "object"
        elif key == "properties":
            out[key] = {name: answer_schema(sub, False) for name, sub in value.items()}
        else:
            out[key] = answer_schema(value, top)
    kind = out.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        out["type"] = rest[0] if len(rest) == 1 else rest
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del out["anyOf"]
        out = {**rest[0], **out} if len(rest) == 1 else {**out, "anyOf": rest}
    out.pop("required", None)  # answers omit unset fields, so nothing is promised to be present
    return out


def compact_schema(schema: Any) -> Any:
    """The same JSON schema in fewer tokens: no generated titles, `null` folded into `type`, no null defaults."""
    if isinstance(schema, list):
        return [compact_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        else:
            out[key] = compact_schema(value)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other.get("type"), str) and "$ref" not in other:
            del out["anyOf"]
            out = {**other, **out, "type": [other["type"], "null"]}
    return out


def fit(items: list[Any], cap: int = RESPONSE_CAP) -> int:
    """How many leading items fit in `cap` characters of JSON (at least one)."""
    used = 0
    for i, item in enumerate(items):
        data = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
        used += len(json.dumps(data, default=str)) + 1
        if used > cap and i > 0:
            return i
    return len(items)


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def encode_cursor(offset: int, key: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{_fingerprint(key)}".encode()).decode().rstrip("=")


MALFORMED_CURSOR = (
    "cursor is malformed: pass the next_cursor of the previous answer unchanged, "
    "or omit cursor to start from the first page"
)


def _split_cursor(cursor: str) -> tuple[int, str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    offset_text, fp = raw.split(":")
    return int(offset_text), fp


def check_cursor(cursor: str | None) -> str | None:
    """Input validator: a cursor must have the shape this server issues (checked before any upstream call)."""
    if cursor:
        try:
            _split_cursor(cursor)
        except (ValueError, UnicodeDecodeError):
            raise ValueError(MALFORMED_CURSOR) from None
    return cursor


def decode_cursor(cursor: str | None, key: str) -> int:
    """Offset encoded in `cursor`; `key` names the query so a cursor cannot be reused for another."""
    if not cursor:
        return 0
    try:
        offset, fp = _split_cursor(cursor)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(MALFORMED_CURSOR) from None
    if fp != _fingerprint(key) or offset < 0:
        raise Refusal(
            "cursor belongs to a different query: call again with the same arguments as the "
            "answer that gave it, or omit cursor to start again"
        )
    return offset


@dataclass
class Page(Generic[O]):
    items: list[O]
    next_cursor: str | None
    note: str | None


def paginate(items: list[O], limit: int, cursor: str | None, key: str, cap: int = RESPONSE_CAP) -> Page[O]:
    """One page of `items` of at most `limit`, cut at a record boundary if it would exceed `cap` characters."""
    start = decode_cursor(cursor, key)
    chunk = items[start : start + limit]
    keep = fit(chunk, cap)
    note = None
    if keep < len(chunk):
        note = (
            f"Answer cut after {keep} of {len(chunk)} records to stay under {cap} characters; "
            "pass next_cursor for the rest."
        )
        chunk = chunk[:keep]
    end = start + len(chunk)
    return Page(chunk, encode_cursor(end, key) if end < len(items) else None, note)


def list_page(
    items: list[O], limit: int, cursor: str | None, key: str, empty: str, *, cut: str | None = None
) -> tuple[list[O], dict[str, Any]]:
    """The one list-answer helper: a page of `items` and the envelope fields (total, next_cursor, note).

    `empty` is the note when nothing matched ("no" is an answer, not an error). `cut` says why `items` may
    not be everything that matches (an upstream page or budget ran out): then there is no total, and the
    note says so, because a page length is never a total."""
    page = paginate(items, limit, cursor, key)
    notes = [n for n in (cut, page.note or (None if items else empty)) if n]
    return page.items, {
        "total": None if cut else len(items),
        "next_cursor": page.next_cursor,
        "note": " ".join(notes) or None,
    }


def as_of() -> str:
    """When a list answer was read, to the minute (UTC): 'today', 'overdue' and 'running' are relative to it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")
