"""The MCP machinery, free of any sheepCRM domain: how a tool is declared (specs), answers when it cannot
(errors), publishes its schema (schema), pages and sizes its answers (paging) and is registered
(registration), and how the published tools are kept between starts (toolcache); the one confirmation gate
(gate, writes) and the approvals a person gives (approvals/); the audit log, the shared stores, logging and
settings."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sheepcrm-mcp")  # the one source is pyproject.toml
except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
    __version__ = "0+unknown"
