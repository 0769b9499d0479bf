"""Client setup that users copy: the README's snippets, claude_config.example.json and server.json.

Every JSON snippet parses; client configs launch the real command; every SHEEPCRM_* variable named
is a real setting; every `sheepcrm-mcp ...` shell line uses flags the real parser accepts.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from sheepcrm_mcp.cli import _parser
from sheepcrm_mcp.server import __version__
from sheepcrm_mcp.server.settings import Settings
from tests.helpers import REPO

README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
VARIABLE = re.compile(r"\bSHEEPCRM_[A-Z0-9_]+\b")
COMMAND = "sheepcrm-mcp"
SETTINGS = {f"SHEEPCRM_{name.upper()}" for name in Settings.model_fields}


def blocks(lang: set[str]) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return [body for kind, body in FENCE.findall(text) if kind in lang]


def json_blocks() -> list[str]:
    return blocks({"json", "jsonc"})


def shell_blocks() -> list[str]:
    return blocks({"sh", "bash", "shell", "console"})


def client_entries(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    servers = {**config.get("mcpServers", {}), **config.get("servers", {})}
    return list(servers.items())


def launched_args(entry: dict[str, Any]) -> list[str] | None:
    """The arguments given to sheepcrm-mcp by a stdio entry (run directly or through uvx/pipx)."""
    command, args = Path(entry["command"]).name, list(entry.get("args", []))
    if command == COMMAND:
        return args
    if command.startswith("python") and args[:3] == ["-I", "-m", "sheepcrm_mcp"]:  # the isolated launch line
        return args[3:]
    if command in ("uvx", "pipx") and COMMAND in args:
        if command == "pipx":
            assert args[0] == "run", args
        return args[args.index(COMMAND) + 1:]
    return None


def check_flags(args: list[str], where: str) -> None:
    try:
        _parser().parse_args(args)
    except SystemExit as exc:
        if exc.code != 0:  # --help/--version exit 0 and are fine
            raise AssertionError(f"{where}: `{COMMAND} {' '.join(args)}` is refused by the real parser") from None


def check_variables(text: str, where: str) -> None:
    unknown = set(VARIABLE.findall(text)) - SETTINGS
    assert not unknown, f"{where} names {sorted(unknown)}, which are not settings (have: {sorted(SETTINGS)})"


def test_readme_has_the_client_section() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count("<!-- clients:start -->") == 1 and text.count("<!-- clients:end -->") == 1
    assert len(json_blocks()) >= 4 and len(shell_blocks()) >= 4


@pytest.mark.parametrize("index", range(len(json_blocks())))
def test_readme_json_snippets(index: int) -> None:
    body = json_blocks()[index]
    where = f"README json block #{index + 1}"
    config = json.loads(body)  # valid JSON, no comments, no trailing commas
    check_variables(body, where)
    entries = client_entries(config)
    if not entries:
        return  # not a client config (e.g. a sample answer)
    for name, entry in entries:
        if entry.get("type") in ("http", "sse") or "url" in entry:
            continue
        args = launched_args(entry)
        assert args is not None, f"{where}: server {name!r} does not launch {COMMAND}: {entry}"
        check_flags(args, f"{where} ({name})")
        if "servers" in config:  # VS Code's format
            assert entry.get("type") == "stdio", f"{where}: VS Code entries need \"type\": \"stdio\""


def test_example_config_file() -> None:
    path = REPO / "claude_config.example.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    check_variables(path.read_text(encoding="utf-8"), path.name)
    entries = dict(client_entries(config))
    assert set(entries) == {"sheepcrm", "sheepcrm-sandbox"}
    real, sandbox = entries["sheepcrm"], entries["sheepcrm-sandbox"]
    assert real["command"] == sandbox["command"] == COMMAND
    assert {"SHEEPCRM_API_KEY", "SHEEPCRM_BUCKET"} <= set(real["env"])
    assert sandbox.get("args") == ["--sandbox"] and not sandbox.get("env")
    for name, entry in entries.items():
        check_flags(entry.get("args", []), f"{path.name} ({name})")


def test_registry_server_json() -> None:
    path = REPO / "server.json"
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    check_variables(text, path.name)
    assert doc["$schema"].endswith("/server.schema.json")
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", doc["name"]) and doc["name"].startswith("io.github.")
    assert 0 < len(doc["description"]) <= 100  # the registry's limit
    assert doc["version"] == __version__
    [package] = doc["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == COMMAND
    assert package["version"] == __version__ and package["transport"] == {"type": "stdio"}
    variables = {v["name"]: v for v in package["environmentVariables"]}
    assert variables["SHEEPCRM_API_KEY"]["isSecret"] is True and variables["SHEEPCRM_API_KEY"]["isRequired"]
    assert variables["SHEEPCRM_BUCKET"]["isRequired"] is True
    for v in variables.values():
        assert set(v) <= {"name", "description", "isRequired", "isSecret", "format", "default", "choices", "value"}
    # The registry checks a PyPI package's README names the server.
    assert f"mcp-name: {doc['name']}" in README.read_text(encoding="utf-8")


def shell_commands() -> list[tuple[str, list[str]]]:
    """(line, args) for every README shell line that runs sheepcrm-mcp."""
    found = []
    for body in shell_blocks():
        for line in body.splitlines():
            if COMMAND not in line:
                continue
            tokens = shlex.split(line, comments=True)
            for i, token in enumerate(tokens):
                if token != COMMAND or (i and tokens[i - 1] == "install"):
                    continue  # `pipx install sheepcrm-mcp` names the distribution
                args = []
                for arg in tokens[i + 1:]:
                    if arg in ("|", "||", "&&", "&", ";"):
                        break
                    args.append(arg)
                found.append((line, args))
    return found


def test_readme_shell_snippets() -> None:
    commands = shell_commands()
    assert len(commands) >= 6, commands
    for line, args in commands:
        check_flags(args, f"README: {line.strip()}")
    for body in shell_blocks():
        check_variables(body, "README shell block")


def uses_the_package_index(line_or_args: list[str]) -> bool:
    """True when a command would fetch `sheepcrm-mcp` from the package index, where it is not published yet."""
    tokens = [t for t in line_or_args if not t.startswith("-")]
    if tokens[:1] == ["uvx"] or (tokens[:2] == ["uv", "tool"]):
        return "--from" not in line_or_args
    if tokens[:2] in (["pipx", "install"], ["pip", "install"], ["pipx", "run"]):
        return COMMAND in tokens[2:]
    return False


def test_snippets_need_no_package_index() -> None:
    for body in shell_blocks():
        for line in body.splitlines():
            tokens = shlex.split(line, comments=True)
            assert not uses_the_package_index(tokens), f"README: `{line.strip()}` needs the unpublished package"
    for index, body in enumerate(json_blocks()):
        for name, entry in client_entries(json.loads(body)):
            if "command" in entry:
                argv = [Path(entry["command"]).name, *entry.get("args", [])]
                assert not uses_the_package_index(argv), f"README json block #{index + 1} ({name}) needs the index"
    text = README.read_text(encoding="utf-8")
    for form in ("pipx install git+", "pipx install .", ".whl", "uvx --from git+"):
        assert form in text, f"the install section lost the {form!r} form"


def test_the_checker_catches_mistakes() -> None:
    assert uses_the_package_index(["uvx", "sheepcrm-mcp", "--sandbox"])
    assert uses_the_package_index(["pipx", "install", "sheepcrm-mcp"])
    assert not uses_the_package_index(["uvx", "--from", "git+https://x/sheepcrm-mcp", "sheepcrm-mcp"])
    with pytest.raises(AssertionError, match="refused by the real parser"):
        check_flags(["--sandbx"], "a typo")
    with pytest.raises(AssertionError, match="SHEEPCRM_APIKEY"):
        check_variables("SHEEPCRM_APIKEY=x", "a typo")
    assert launched_args({"command": "python", "args": ["-m", "server"]}) is None
