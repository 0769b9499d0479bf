"""How a tool spec becomes an MCP tool.

A `Registration` is what the model sees and the call behind it (`read_registration` for a read tool,
`Gate.registration` for a write). `build_tool` exposes the input model's fields as the tool's
parameters (so the model sees a flat schema), re-validates with the model itself (so cross-field
rules hold), refuses unknown arguments, and maps every failure through `errors.answering`:
nothing reaches the client as a traceback.

`build_tools` lists the tools from their published schemas when a tool cache holds them (computed by an earlier
start of the same code), and builds each tool's SDK form on its first call; otherwise it builds them as above,
and writes the cache with the catalogue's listing. The cache itself, and a start that lists the tools from it
alone, are `toolcache`'s.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, ValidationError, model_validator
from pydantic_core import PydanticUndefined

from sheepcrm_mcp.server.errors import (
    InvalidArguments,
    Refusal,
    answering,
    arguments,
    explain_validation,
    refuse_invalid,
)
from sheepcrm_mcp.server.paging import compact_answer
from sheepcrm_mcp.server.schema import answer_schema, argument_schema, compact_schema
from sheepcrm_mcp.server.specs import Deps, Output, ReadTool
from sheepcrm_mcp.server.toolcache import (
    LazyTool,
    Listed,
    cached_schemas,
    fingerprint,
    listed_hints,
    read_cache,
    source_key,
    write_cache,
)


@dataclass
class Registration:
    """Everything build_tool needs: what the model sees and the call behind it."""

    name: str
    description: str
    input: type[BaseModel]
    output: type[BaseModel]
    annotations: ToolAnnotations
    call: Callable[[BaseModel, Context, dict[str, Any]], Awaitable[BaseModel]]
    extra_params: tuple[inspect.Parameter, ...] = ()
    # False when the answer's fields are described once for every tool that shares them (the write tools'
    # WriteResult, in the server's instructions) rather than repeated in each tool's output schema.
    list_output_fields: bool = True


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

    return Registration(spec.name, spec.description, spec.input, spec.output, spec.annotations, call)


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
            request = arguments(spec.name, spec.input, kwargs)
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
        description=spec.description,
        annotations=listed_hints(spec.annotations),
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
        # Built on its tool's first call, not at start-up (its published schema is the SDK's, below).
        model_config = {**base.model_config, "extra": "forbid", "defer_build": True}
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
    # The SDK's schema of the same fields: Strict only forbids unknown arguments, which argument_schema leaves out.
    tool.parameters = argument_schema(compact_schema(tool.parameters))
    if tool.fn_metadata.output_schema is not None:
        listed = answer_schema(compact_schema(tool.fn_metadata.output_schema))
        tool.fn_metadata.output_schema = listed if spec.list_output_fields else {"type": listed["type"]}
    return tool






def build_tools(specs: list[Registration], cache: Path | None, catalogue: tuple[tuple[str, ...], list[Listed]] | None
                = None) -> list[Tool]:
    """The SDK tools for `specs`: from the tool cache `cache` where it holds their published schemas for this
    code (built on first call), else built now and their schemas written there for the next start, with
    `catalogue` (toolsets and every tool's listing) when given, so that the next start can list the tools from
    the cache alone (read_listing)."""
    if cache is None:
        return [build_tool(spec) for spec in specs]
    key = source_key()
    data = read_cache(cache, key)
    known = cached_schemas(data)
    tools: list[Tool] = []
    fresh: dict[str, Any] = {}
    for spec in specs:
        hit = known.get(fp := fingerprint(spec))
        if isinstance(hit, list) and len(hit) == 2:
            tools.append(LazyTool.ahead(spec.name, spec.description, spec.annotations, hit[0], hit[1],
                                        functools.partial(build_tool, spec)))
        else:
            tool = build_tool(spec)
            tools.append(tool)
            fresh[fp] = [tool.parameters, tool.output_schema]
    listed = {"toolsets": list(catalogue[0]), "tools": [t.entry() for t in catalogue[1]]} if catalogue else None
    stored = data.get("catalogue")
    if fresh or (listed is not None and listed != stored):
        write_cache(cache, key, known | fresh, listed or (stored if isinstance(stored, dict) else None))
    return tools
