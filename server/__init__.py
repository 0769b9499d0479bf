"""The MCP machinery, free of any sheepCRM domain: how a tool is declared and registered (toolkit),
the one confirmation gate (gate, writes, approvals), the audit log, logging and settings."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sheepcrm-mcp")  # the one source is pyproject.toml
except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
    __version__ = "0+unknown"
