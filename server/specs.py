"""How a tool is declared.

A tool is a `ReadTool` (handler `(input, Deps) -> output`, given a client that can only read)
or a `WriteTool` (handler `(input, WriteDeps) -> WritePlan`, which only the gate runs; its
destructive and idempotent hints are required). Inputs derive from `Input` (unknown arguments
refused), outputs from `Output` (unset fields left out). `registration.build_tool` turns a spec
into the SDK's tool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from sheepcrm_mcp.server.settings import Settings
from sheepcrm_mcp.server.writes import WritePlan
from sheepcrm_mcp.sheepcrm import SheepClient, SheepReader

if TYPE_CHECKING:
    from sheepcrm_mcp.server.stores import Ledger

I = TypeVar("I", bound=BaseModel)  # noqa: E741


O = TypeVar("O", bound=BaseModel)  # noqa: E741


class Input(BaseModel):
    """Base of tool input models: unknown arguments are refused, not ignored. Each is built on its tool's first
    call, not at import (start-up publishes the tools' schemas from their fields)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class Output(BaseModel):
    """Base of tool output models. Unset (None) fields are left out of answers to keep them short. Each is built
    when first used (a call's answer), not at import: tools/list publishes the cached schemas."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


@dataclass
class Deps:
    """What a read handler may use: a client that can only read, the settings and the request context."""

    client: SheepReader
    settings: Settings
    ctx: Context | None = None


class GatedWrites:
    """The client's write methods, reachable only while the gate applies a plan a person approved.

    A write handler builds its plan with the read-only `deps.client`; its `apply` reaches the writes
    through `deps.writes.client`, which the gate opens only around `WritePlan.apply` (Gate._apply).
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
    """What a write handler may use: the read-only client to build its plan, the gated writes for apply, the
    ledger of what writes must remember across calls (a create: which call made which record), and the names of
    the tools this caller is offered (an undo is offered only when the caller can make it)."""

    writes: GatedWrites = field(kw_only=True)
    ledger: Ledger = field(kw_only=True)
    offered: frozenset[str] = field(kw_only=True)


@dataclass(frozen=True, kw_only=True)
class ReadTool(Generic[I, O]):
    name: str
    description: str
    toolset: str
    input: type[I]
    output: type[O]
    handler: Callable[[I, Deps], Awaitable[O]]
    about: str = ""  # the longer account for people (the README's tool table); the model reads `description`

    @property
    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(read_only_hint=True, open_world_hint=False)


@dataclass(frozen=True, kw_only=True)
class WriteTool(Generic[I]):
    """A gated write: the handler returns the plan; the gate previews, asks a person and applies it."""

    name: str
    description: str
    toolset: str
    input: type[I]
    handler: Callable[[I, WriteDeps], Awaitable[WritePlan]]
    destructive: bool
    idempotent: bool
    about: str = ""  # the longer account for people (the README's tool table); the model reads `description`

    @property
    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(
            read_only_hint=False,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=False,
        )


ToolSpec = ReadTool[Any, Any] | WriteTool[Any]
