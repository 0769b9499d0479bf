"""The SDK's floor: a bare MCPServer with one `echo` tool, nothing of ours.

`python -m bench.echo_server` serves stdio; `--transport http --port N` serves streamable HTTP at /mcp
(stateful, like `sheepcrm-mcp --transport http`).
"""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import MCPServer


def build() -> MCPServer:
    server = MCPServer(name="echo")

    @server.tool()
    def echo(text: str) -> str:
        """Return text unchanged."""
        return text

    return server


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--port", type=int, default=8766)
    args = p.parse_args()
    server = build()
    if args.transport == "http":
        import uvicorn

        app = server.streamable_http_app(host="127.0.0.1")
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
