"""A direct SheepClient read from its own process, as the server subprocess makes it.

Reads one line per call from stdin, does `record(uri)` (the v1 record get_contact reads), prints the seconds it took.
Env: the same SHEEPCRM_* variables as `sheepcrm-mcp`; argv[1]: the contact uri.
"""

from __future__ import annotations

import asyncio
import sys
import time


def main() -> None:
    from sheepcrm_mcp.server.settings import load_settings
    from sheepcrm_mcp.sheepcrm import SheepClient
    from sheepcrm_mcp.sheepcrm.scope import parse_uri

    settings = load_settings()
    uri = parse_uri(sys.argv[1], settings.bucket)

    async def serve() -> None:
        async with SheepClient(settings.client_config()) as client:
            while await asyncio.to_thread(sys.stdin.readline):
                t0 = time.perf_counter()
                await client.record(uri)
                sys.stdout.write(f"{time.perf_counter() - t0}\n")
                sys.stdout.flush()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
