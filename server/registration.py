"""How a tool spec becomes an MCP tool.

A `Registration` is what the model sees and the call behind it (`read_registration` for a read tool,
`Gate.registration` for a write). `build_tool` exposes the input model's fields as the tool's
parameters (so the model sees a flat schema), re-validates with the model itself (so cross-field
rules hold), refuses unknown arguments, and maps every failure through `errors.answering`:
nothing reaches the client as a traceback.

`build_tools` lists the tools from their published schemas when a tool cache holds them (computed by an earlier
start of the same code), and builds each tool's SDK form on its first call; otherwise it builds them as above.
The cache also lists the catalogue (`read_listing`: each tool's name, toolset, read or write, description and
hints), so that a later start can choose and list the tools without loading the modules that declare them.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import anyio
import pydantic
import pydantic_core
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator
from pydantic_core import PydanticUndefined

from sheepcrm_mcp.server.errors import (
    InvalidArguments,
    Refusal,
    answering,
    arguments,
    explain_validation,
    refuse_invalid,
)
from sheepcrm_mcp.server.files import account_home, check_private, private_folder
from sheepcrm_mcp.server.paging import compact_answer
from sheepcrm_mcp.server.schema import answer_schema, argument_schema, compact_schema
from sheepcrm_mcp.server.specs import Deps, Output, ReadTool


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


def listed_hints(hints: ToolAnnotations) -> ToolAnnotations:
    """The hints as tools/list says them: a false readOnlyHint or idempotentHint is what MCP assumes without
    the hint, as does a client that reads a missing hint as false. destructiveHint and openWorldHint default
    to true, so they are always said."""
    return hints.model_copy(update={
        "read_only_hint": hints.read_only_hint or None, "idempotent_hint": hints.idempotent_hint or None,
    })


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


# Building the SDK tools (each tool's argument model and the JSON schemas of its arguments and answer) is most of
# a stdio start-up's own work. What tools/list publishes is the same for the same code, so it is kept in a file
# in this account's cache folder under a key made from the package's source files and the versions of Python, mcp
# and pydantic: a key that differs, or a file that is missing, unreadable, not this user's own or readable by
# others, is ignored and the tools are built as ever. The file only shortens what tools/list needs: every call
# validates its arguments and its answer with the tool built from the models themselves, on its first call.


def tool_cache_file() -> Path:
    """One file per installed copy (named by where it is), so two copies of different code do not take turns."""
    where = hashlib.sha256(str(Path(__file__).parents[1].resolve()).encode()).hexdigest()[:16]
    return account_home() / ".cache" / "sheepcrm-mcp" / f"tools-{where}.json"


def source_key() -> str:
    """A hash of this package's Python sources (the sandbox aside), each named by its path, size and modification
    time (as Python's bytecode cache tells a changed source: a few stat calls, where reading every file took a
    few milliseconds of each start), and the versions that shape the schemas."""
    from importlib.metadata import version

    digest = hashlib.sha256(
        f"{sys.version}|mcp {version('mcp')}|pydantic {pydantic.VERSION}|core {pydantic_core.__version__}".encode()
    )
    root = Path(__file__).parents[1]  # the sheepcrm_mcp package folder
    paths = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d not in ("sandbox", "__pycache__")]
        paths += [Path(folder, name) for name in files if name.endswith(".py")]
    for path in sorted(paths):
        status = path.stat()
        digest.update(f"{path.relative_to(root)}\0{status.st_size}\0{status.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _fingerprint(spec: Registration) -> str:
    """What a tool's published schemas are built from, besides the sources."""
    extras = ",".join(p.name for p in spec.extra_params)  # their types are in the sources
    return (f"{spec.name}|{spec.input.__module__}.{spec.input.__qualname__}|{spec.output.__module__}."
            f"{spec.output.__qualname__}|{extras}|{spec.list_output_fields}")


class LazyTool(Tool):
    """A tool listed from its cached published schemas; the SDK tool behind it is built on its first call, from the
    registration `make` gives then (on a start that listed the tools from the tool cache, that is when the tool's
    module loads)."""

    model_config = ConfigDict(defer_build=True)  # only ever made by model_construct

    _make: Callable[[], Registration] = PrivateAttr()
    _listed_output: dict[str, Any] | None = PrivateAttr(default=None)
    _built: Tool | None = PrivateAttr(default=None)

    @classmethod
    def listed(cls, spec: Registration, parameters: dict[str, Any], output: dict[str, Any] | None) -> LazyTool:
        return cls.ahead(spec.name, spec.description, spec.annotations, parameters, output, lambda: spec)

    @classmethod
    def ahead(cls, name: str, description: str, annotations: ToolAnnotations, parameters: dict[str, Any],
              output: dict[str, Any] | None, make: Callable[[], Registration]) -> LazyTool:
        # No fn or fn_metadata: those are the built tool's, which runs every call (see run).
        tool = cls.model_construct(  # type: ignore[call-arg]
            name=name, title=None, description=description, parameters=parameters, is_async=True,
            context_kwarg="ctx", annotations=listed_hints(annotations),
        )
        tool._make, tool._listed_output = make, output
        return tool

    @cached_property
    def output_schema(self) -> dict[str, Any] | None:
        return self._listed_output

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        if self._built is None:
            spec = self._make()
            if spec.name != self.name:
                raise RuntimeError(f"{self.name}: the tool cache listed another tool under this name")
            self._built = build_tool(spec)
        return await self._built.run(arguments, context, convert_result=convert_result)


@dataclass(frozen=True)
class Listed:
    """A tool as the tool cache lists it: what choosing it (its toolset, read or write) and listing it need, not
    its models or its call."""

    name: str
    toolset: str
    write: bool
    description: str
    annotations: ToolAnnotations
    fingerprint: str

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "toolset": self.toolset, "write": self.write, "description": self.description,
                "annotations": self.annotations.model_dump(mode="json", by_alias=True, exclude_none=True),
                "fingerprint": self.fingerprint}

    @classmethod
    def of(cls, spec: Registration, toolset: str, write: bool) -> Listed:
        return cls(spec.name, toolset, write, spec.description, spec.annotations, _fingerprint(spec))


@dataclass(frozen=True)
class Listing:
    """The catalogue as an earlier start of the same code listed it: its toolsets and tools, and the published
    schemas (parameters, answer) of the tools that start built."""

    toolsets: tuple[str, ...]
    tools: list[Listed]
    schemas: dict[str, Any]

    def published(self, tool: Listed) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        hit = self.schemas.get(tool.fingerprint)
        if isinstance(hit, list) and len(hit) == 2 and isinstance(hit[0], dict) and isinstance(hit[1], dict | None):
            return hit[0], hit[1]
        return None


def _read_cache(path: Path, key: str) -> dict[str, Any]:
    """The cache's contents when it is for this code (`key`) and private to this user, else nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return {}
    with os.fdopen(fd, "rb") as handle:
        try:
            check_private(handle.fileno(), path, "the tool cache", "")
            data = json.loads(handle.read())
        except (OSError, ValueError):
            return {}
    return data if isinstance(data, dict) and data.get("key") == key else {}


def _schemas(data: dict[str, Any]) -> dict[str, Any]:
    tools = data.get("tools")
    return tools if isinstance(tools, dict) else {}


def read_listing(cache: Path) -> Listing | None:
    """The catalogue as the tool cache `cache` lists it for this code; None when the cache is missing, for other
    code, not private or lists no catalogue (then the tools are built)."""
    data = _read_cache(cache, source_key())
    catalogue = data.get("catalogue")
    try:
        tools = [
            Listed(str(entry["name"]), str(entry["toolset"]), entry["write"] is True, str(entry["description"]),
                   ToolAnnotations.model_validate(entry["annotations"]), str(entry["fingerprint"]))
            for entry in catalogue["tools"]  # type: ignore[index]
        ]
        toolsets = tuple(str(t) for t in catalogue["toolsets"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None
    return Listing(toolsets, tools, _schemas(data)) if tools else None


def _write_cache(path: Path, key: str, tools: dict[str, Any], catalogue: dict[str, Any] | None) -> None:
    """Replaces the file whole (a reader sees the old file or the new one); a folder that cannot be made or is
    not this user's own leaves it unwritten."""
    try:
        folder = private_folder(path.parent)
        temp = folder / f".{path.name}.{os.getpid()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(temp, flags, 0o600), "w", encoding="utf-8") as handle:
            json.dump({"key": key, "tools": tools, **({"catalogue": catalogue} if catalogue else {})}, handle)
        os.replace(temp, path)
    except OSError:
        return


def build_tools(specs: list[Registration], cache: Path | None, catalogue: tuple[tuple[str, ...], list[Listed]] | None
                = None) -> list[Tool]:
    """The SDK tools for `specs`: from the tool cache `cache` where it holds their published schemas for this
    code (built on first call), else built now and their schemas written there for the next start, with
    `catalogue` (toolsets and every tool's listing) when given, so that the next start can list the tools from
    the cache alone (read_listing)."""
    if cache is None:
        return [build_tool(spec) for spec in specs]
    key = source_key()
    data = _read_cache(cache, key)
    known = _schemas(data)
    tools: list[Tool] = []
    fresh: dict[str, Any] = {}
    for spec in specs:
        hit = known.get(fp := _fingerprint(spec))
        if isinstance(hit, list) and len(hit) == 2:
            tools.append(LazyTool.listed(spec, hit[0], hit[1]))
        else:
            tool = build_tool(spec)
            tools.append(tool)
            fresh[fp] = [tool.parameters, tool.output_schema]
    listed = {"toolsets": list(catalogue[0]), "tools": [t.entry() for t in catalogue[1]]} if catalogue else None
    stored = data.get("catalogue")
    if fresh or (listed is not None and listed != stored):
        _write_cache(cache, key, known | fresh, listed or (stored if isinstance(stored, dict) else None))
    return tools
