"""A loopback proxy that adds `Authorization: Bearer $TOKEN` to every request, for outside clients that
cannot send a header (the MCP conformance suite). Everything else (Host, Origin, bodies, SSE streams)
passes through unchanged, so the server's own checks still see what the client sent.

    python .ci/bearer_proxy.py LISTEN_PORT UPSTREAM_PORT    (token in $SHEEPCRM_MCP_TOKEN)
"""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx
import uvicorn

UPSTREAM = f"http://127.0.0.1:{sys.argv[2]}"
TOKEN = os.environ["SHEEPCRM_MCP_TOKEN"].encode()
client = httpx.AsyncClient(timeout=httpx.Timeout(600.0))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"] + [(b"authorization", b"Bearer " + TOKEN)]
    query = ("?" + scope["query_string"].decode()) if scope["query_string"] else ""
    request = client.build_request(scope["method"], UPSTREAM + scope["path"] + query, headers=headers, content=body)
    response = await client.send(request, stream=True)
    drop = {b"content-length", b"transfer-encoding", b"connection"}
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in drop]})
    try:
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        await response.aclose()
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off",
                timeout_graceful_shutdown=1)  # open event streams must not hold the shutdown
