"""8. Hosted mode's cost per call: the same `get_contact` over HTTP with a signed-in user's JWT (SHEEPCRM_AUTH=oauth)
and with the shared bearer token (token mode), interleaved call by call; and verifying one token alone.

Like for like, the baseline is token mode answering as hosted mode does: an SSE stream per request, which a server
needs to ask the client for a confirmation during a call (hosted mode may always ask a signed-in person's client;
token mode only when SHEEPCRM_HTTP_CLIENT_APPROVALS is on, and otherwise answers with one JSON body, shown beside).

The JWTs are RS256, signed by a key made here; the server fetches that key set once (served through httpx's mock
transport, so no identity provider's latency is measured). "token reused" is what a client does between refreshes;
"new token each call" forces a full verification (signature, claims) on every call.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.common import BENCH_TOKEN, Row, free_port, ms, p50, p95
from bench.overhead import bench_settings, check, measure

ISSUER = "https://idp.bench.test"
TARGET_ADDED_MS = 1.0  # added p50 per call with a reused token
TARGET_NEW_MS = 3.0  # added p50 per call with a new token every call


def _keys() -> tuple[Any, httpx.AsyncClient]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        if request.url.path == "/jwks":
            return httpx.Response(200, json={"keys": [{**public, "kid": "b1", "use": "sig", "alg": "RS256"}]})
        return httpx.Response(404)

    return key, httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _token(key: Any, resource: str, n: int) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": resource, "sub": "u-bench", "iat": now, "exp": now + 3600, "scope": "sheepcrm",
              "email": "staff@example.test", "email_verified": True, "roles": ["staff"], "jti": str(n)}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "b1", "typ": "at+jwt"})


class Bearer(httpx2.Auth):
    """Sends whatever token `current` holds: a new one per call for the full-verification path."""

    def __init__(self, token: str) -> None:
        self.current = token

    def auth_flow(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.current}"
        yield request


async def run(sb: Any, quick: bool) -> tuple[list[Row], list[str]]:
    from sheepcrm_mcp.assembly import build_app
    from sheepcrm_mcp.hosted import build_hosted, hosted_app
    from sheepcrm_mcp.http import http_app
    from sheepcrm_mcp.server.auth import JWKSCache, JWTVerifier
    from sheepcrm_mcp.server.threadserver import ThreadServer

    rounds, warmup = (40, 5) if quick else (500, 30)
    jane = sb.store.demo_facts()["jane_uri"]
    args = {"uri": jane}
    key, jwks_http = _keys()
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    audit = Path(tempfile.gettempdir()) / "sheepcrm-bench-audit.jsonl"
    hosted = build_hosted(bench_settings(sb, auth="oauth", oauth_issuer=ISSUER, oauth_resource=resource,
                                         audit_log=audit), http=jwks_http)
    token_mode = build_app(bench_settings(sb, mcp_token=BENCH_TOKEN, http_client_approvals=True))
    token_json = build_app(bench_settings(sb, mcp_token=BENCH_TOKEN))
    servers = [ThreadServer(hosted_app(hosted, "127.0.0.1", False), "127.0.0.1", port),
               ThreadServer(http_app(token_mode, "127.0.0.1", False)),
               ThreadServer(http_app(token_json, "127.0.0.1", False))]
    for server in servers:
        server.config.lifespan = "on"
        server.start()
    issued = 0

    def fresh() -> str:
        nonlocal issued
        issued += 1
        return _token(key, resource, issued)

    try:
        async with AsyncExitStack() as stack:
            reused, renewed = Bearer(fresh()), Bearer(fresh())
            clients: dict[str, Client] = {}
            for name, url, auth in (("hosted_reused", resource, reused), ("hosted_new", resource, renewed),
                                    ("token_mode", servers[1].url + "/mcp", Bearer(BENCH_TOKEN)),
                                    ("token_json", servers[2].url + "/mcp", Bearer(BENCH_TOKEN))):
                http = await stack.enter_async_context(httpx2.AsyncClient(auth=auth, timeout=30))
                clients[name] = await stack.enter_async_context(
                    Client(streamable_http_client(url, http_client=http), mode="legacy")  # type: ignore[arg-type]
                )
                check(await clients[name].call_tool("get_contact", args), "Jane Austen")

            minted = iter([fresh() for _ in range(rounds + warmup)])  # signing is the provider's cost: not timed

            async def new_token_call() -> Any:
                renewed.current = next(minted)
                return await clients["hosted_new"].call_tool("get_contact", args)

            paths = {
                "hosted_reused": lambda: clients["hosted_reused"].call_tool("get_contact", args),
                "hosted_new": new_token_call,
                "token_mode": lambda: clients["token_mode"].call_tool("get_contact", args),
                "token_json": lambda: clients["token_json"].call_tool("get_contact", args),
            }
            times = await measure(paths, rounds, warmup)

            # Verifying alone: a new token (keys cached) against PyJWT's own decode of the same token.
            verifier = JWTVerifier(issuer=ISSUER, resource=resource, jwks=JWKSCache(f"{ISSUER}/jwks", jwks_http))
            await verifier.verify_token(fresh())  # fetches the key set once
            public = key.public_key()
            tokens = [fresh() for _ in range(rounds)]
            ours, bare, cached = [], [], []
            for raw in tokens:
                t0 = time.perf_counter()
                jwt.decode(raw, public, algorithms=["RS256"], audience=resource, issuer=ISSUER)
                t1 = time.perf_counter()
                await verifier.verify_token(raw)
                t2 = time.perf_counter()
                await verifier.verify_token(raw)
                t3 = time.perf_counter()
                bare.append(t1 - t0)
                ours.append(t2 - t1)
                cached.append(t3 - t2)
    finally:
        for server in servers:
            server.stop()
        await jwks_http.aclose()

    base = p50(times["token_mode"])
    added_reused = p50(times["hosted_reused"]) - base
    added_new = p50(times["hosted_new"]) - base
    like = f"token mode, SSE {ms(base)}"
    rows = [
        Row("hosted call, token reused: get_contact p50", ms(p50(times["hosted_reused"])), like,
            f"{added_reused * 1000:+.2f} ms", f"+<= {TARGET_ADDED_MS:g} ms", added_reused <= TARGET_ADDED_MS / 1000),
        Row("hosted call, new token each call: p50", ms(p50(times["hosted_new"])), like,
            f"{added_new * 1000:+.2f} ms", f"+<= {TARGET_NEW_MS:g} ms", added_new <= TARGET_NEW_MS / 1000),
        Row("token mode call p50: one JSON body vs SSE stream", ms(p50(times["token_json"])), f"SSE {ms(base)}",
            f"{(p50(times['token_json']) - base) * 1000:+.2f} ms", "info", None),
        Row("verify a new JWT (RS256, keys cached): p50", ms(p50(ours)), f"PyJWT decode {ms(p50(bare))}",
            f"{p50(ours) / p50(bare):.2f}x", "<= 1.5x", p50(ours) <= 1.5 * p50(bare)),
        Row("verify a token seen before: p50", f"{p50(cached) * 1e6:.1f} us", f"PyJWT decode {ms(p50(bare))}",
            f"{p50(cached) / p50(bare):.3f}x", "info", None),
    ]
    notes = [
        f"{rounds} rounds, interleaved; p95 hosted reused {ms(p95(times['hosted_reused']))}, new "
        f"{ms(p95(times['hosted_new']))}, token mode {ms(p95(times['token_mode']))}.",
        "Hosted mode also routes by the caller's roles (staff here); a member's first call adds one email lookup "
        "upstream, then reused for 60 s.",
    ]
    return rows, notes
