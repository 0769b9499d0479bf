"""The SDK's floor: a bare MCPServer with an `echo` tool and nothing of ours.

It also has `fetch`: one plain httpx GET of a contact's v1 record (the read get_contact makes) from the sandbox
named by SHEEPCRM_V1_BASE_URL / SHEEPCRM_API_KEY, returned as raw JSON. That is what any MCP server answering from
sheepCRM must at least do, so `get_contact` vs `fetch` measures our code alone, with the upstream call on both sides.

`python -m bench.echo_server` serves stdio; `--transport http --port N` serves streamable HTTP at /mcp
(stateful, like `sheepcrm-mcp --transport http`; `--stateless` like a replica's `--stateless`, with the replicas'
/healthz for the balancer's health checks; `--json` answers each request with one JSON body, the SDK's
`json_response=True`, instead of its default SSE stream).

httpx loads with the first fetch, not at start: sheepcrm-mcp loads its HTTP client with its first call, so the
start-up rows compare the SDK's own floor with ours, neither paying for an HTTP client before it is used.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer

if TYPE_CHECKING:
    import httpx


def build() -> MCPServer:
    server = MCPServer(name="echo")

    @server.tool()
    def echo(text: str) -> str:
        """Return text unchanged."""
        return text

    http: dict[str, httpx.AsyncClient] = {}

    @server.tool()
    async def fetch(uri: str) -> dict[str, Any]:
        """Return the raw v1 record of the contact uri."""
        if "client" not in http:
            import httpx  # with the first fetch, as sheepcrm-mcp loads its client with its first call

            http["client"] = httpx.AsyncClient(
                base_url=os.environ.get("SHEEPCRM_V1_BASE_URL", "http://127.0.0.1:8090"),
                headers={"Authorization": f"Bearer {os.environ.get('SHEEPCRM_API_KEY', '')}"},
            )
        response = await http["client"].get(f"/api/v1{uri}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    return server


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--stateless", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    server = build()
    if args.transport == "http":
        import uvicorn
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse

        app = server.streamable_http_app(host="127.0.0.1", stateless_http=args.stateless, json_response=args.json)

        async def healthz(request: Request) -> PlainTextResponse:
            return PlainTextResponse("ok")

        app.add_route("/healthz", healthz)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
