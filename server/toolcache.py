"""The tool cache: what tools/list publishes, kept between starts.

Building the SDK tools (each tool's argument model and the JSON schemas of its arguments and answer) is most of
a stdio start-up's own work. What tools/list publishes is the same for the same code, so it is kept in a file
in this account's cache folder under a key made from the package's source files and the versions of Python, mcp
and pydantic: a key that differs, or a file that is missing, unreadable, not this user's own or readable by
others, is ignored and the tools are built as ever. The file only shortens what tools/list needs: every call
validates its arguments and its answer with the tool built from the models themselves, on its first call.

A start whose cache lists the catalogue (`read_listing`: each tool's name, toolset, read or write, description,
hints and published schemas) lists the tools as `LazyTool`s without loading the modules that declare them, the
specs or the registration code: each is built on its first call (registration.build_tool).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mcp
import mcp_types
import pydantic
import pydantic_core
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import ConfigDict, PrivateAttr

from sheepcrm_mcp.server.files import account_home, check_private, private_folder

if TYPE_CHECKING:
    from sheepcrm_mcp.server.registration import Registration


def tool_cache_file() -> Path:
    """One file per installed copy (named by where it is), so two copies of different code do not take turns."""
    where = hashlib.sha256(str(Path(__file__).parents[1].resolve()).encode()).hexdigest()[:16]
    return account_home() / ".cache" / "sheepcrm-mcp" / f"tools-{where}.json"


def source_key() -> str:
    """A hash of this package's Python sources (the sandbox aside), each named by its path, size and modification
    time (as Python's bytecode cache tells a changed source: a few stat calls, where reading every file took a
    few milliseconds of each start), and of what else shapes the schemas: Python's version, pydantic's and
    pydantic-core's, and the installed mcp and mcp_types packages (named by their own first file's path, size and
    modification time, which any install writes anew: cheaper than reading the installed packages' metadata)."""
    digest = hashlib.sha256(f"{sys.version}|pydantic {pydantic.VERSION}|core {pydantic_core.__version__}".encode())
    for installed in (mcp.__file__, mcp_types.__file__):
        status = os.stat(str(installed))
        digest.update(f"{installed}\0{status.st_size}\0{status.st_mtime_ns}\0".encode())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the sheepcrm_mcp package folder
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d not in ("sandbox", "__pycache__")]
        found += [os.path.join(folder, name) for name in files if name.endswith(".py")]
    for path in sorted(found):
        status = os.stat(path)
        digest.update(f"{os.path.relpath(path, root)}\0{status.st_size}\0{status.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def fingerprint(spec: Registration) -> str:
    """What a tool's published schemas are built from, besides the sources."""
    extras = ",".join(p.name for p in spec.extra_params)  # their types are in the sources
    return (f"{spec.name}|{spec.input.__module__}.{spec.input.__qualname__}|{spec.output.__module__}."
            f"{spec.output.__qualname__}|{extras}|{spec.list_output_fields}")


class LazyTool(Tool):
    """A tool listed from its cached published schemas; the SDK tool behind it is `make()`, called on its first call
    (on a start that listed the tools from the tool cache, that is when the tool's module loads)."""

    model_config = ConfigDict(defer_build=True)  # only ever made by model_construct

    _make: Callable[[], Tool] = PrivateAttr()
    _listed_output: dict[str, Any] | None = PrivateAttr(default=None)
    _built: Tool | None = PrivateAttr(default=None)

    @classmethod
    def ahead(cls, name: str, description: str, annotations: ToolAnnotations, parameters: dict[str, Any],
              output: dict[str, Any] | None, make: Callable[[], Tool]) -> LazyTool:
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
            built = self._make()
            if built.name != self.name:
                raise RuntimeError(f"{self.name}: the tool cache listed another tool under this name")
            self._built = built
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
        return cls(spec.name, toolset, write, spec.description, spec.annotations, fingerprint(spec))


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


def read_cache(path: Path, key: str) -> dict[str, Any]:
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


def cached_schemas(data: dict[str, Any]) -> dict[str, Any]:
    tools = data.get("tools")
    return tools if isinstance(tools, dict) else {}


def read_listing(cache: Path) -> Listing | None:
    """The catalogue as the tool cache `cache` lists it for this code; None when the cache is missing, for other
    code, not private or lists no catalogue (then the tools are built)."""
    data = read_cache(cache, source_key())
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
    return Listing(toolsets, tools, cached_schemas(data)) if tools else None


def write_cache(path: Path, key: str, tools: dict[str, Any], catalogue: dict[str, Any] | None) -> None:
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


def listed_hints(hints: ToolAnnotations) -> ToolAnnotations:
    """The hints as tools/list says them: a false readOnlyHint or idempotentHint is what MCP assumes without
    the hint, as does a client that reads a missing hint as false. destructiveHint and openWorldHint default
    to true, so they are always said."""
    return hints.model_copy(update={
        "read_only_hint": hints.read_only_hint or None, "idempotent_hint": hints.idempotent_hint or None,
    })
