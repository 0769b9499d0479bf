"""sheepcrm-mcp: the machine room (settings, client, scope, gate, audit, MCP wiring)."""

__version__ = "0.1.0"
