"""9. Hosted mode on replicas: the same `get_contact` calls, each client signed in as its own person at the project's
OpenID provider (.ci/idp, per-user access tokens), through HAProxy to N hosted replicas sharing Redis, and straight
to one of those replicas (the baseline), in alternating rounds of one run.

The ratio says what the balancer and the spread over replicas cost or give a signed-in caller; the cores are shared
by the clients, the provider, HAProxy, Redis, the sandbox and every replica, so it is a floor, not what separate
machines would give.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.cluster import Cluster
from bench.common import REPO, Row, ms, p50, p95
from bench.overhead import check

REPLICAS = 3
CLIENTS = 8  # callers at once, each signed in as a person of their own
CLIENT_ID = "sheepcrm-test"  # the provider's public PKCE client (.ci/idp/provider.mjs)
REDIRECT = "http://127.0.0.1:53682/callback"  # nothing listens there: the code is read from the redirect
ROUNDS = 3  # alternating rounds: balancer, one replica, balancer, ...


@contextmanager
def provider(accounts: Path) -> Iterator[str]:
    """`bash .ci/idp.sh --port 0` with these accounts; yields its issuer."""
    proc = subprocess.Popen(["bash", str(REPO / ".ci" / "idp.sh"), "--port", "0"], cwd=REPO, text=True,
                            env={**os.environ, "IDP_ACCOUNTS_FILE": str(accounts)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""))
        reader.start()
        reader.join(180)
        if not line or not line[0].strip():
            raise RuntimeError("the OpenID provider did not start (bash .ci/idp.sh --install once)")
        yield str(json.loads(line[0])["issuer"])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_in(issuer: str, user: str, resource: str) -> str:
    """Authorization code + PKCE at the provider, its login form posted as the person would; the access token."""
    verifier = _b64url(secrets.token_bytes(32))
    challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
    with httpx.Client(timeout=15) as http:
        meta = http.get(f"{issuer}/.well-known/oauth-authorization-server").raise_for_status().json()
        response = http.get(meta["authorization_endpoint"], params={
            "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT, "scope": "sheepcrm",
            "resource": resource, "state": "bench", "code_challenge": challenge, "code_challenge_method": "S256"})
        for _ in range(25):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(REDIRECT):
                    break
                response = http.get(location)
            elif action := re.search(r'<form id="login-form" method="post" action="([^"]+)"', response.text):
                response = http.post(urljoin(str(response.url), action.group(1)),
                                     data={"username": user, "password": f"{user}-pw"})
            else:
                raise RuntimeError(f"sign-in of {user} stopped at {response.status_code} {response.url}")
        code = parse_qs(urlsplit(location).query)["code"][0]
        token = http.post(meta["token_endpoint"], data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
            "client_id": CLIENT_ID, "resource": resource}).raise_for_status()
        return str(token.json()["access_token"])


async def calls(url: str, host: str, tokens: list[str], uri: str, seconds: float) -> tuple[float, list[float]]:
    """One client per token calling get_contact at `url` (Host: `host`, as the balancer passes it on) for
    `seconds`; calls/s and latencies."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def worker(token: str) -> None:
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}", "Host": host}, timeout=30))
            client = await stack.enter_async_context(
                Client(streamable_http_client(f"{url}/mcp", http_client=http), mode="legacy")  # type: ignore[arg-type]
            )
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                check(await client.call_tool("get_contact", {"uri": uri}), "uri")
                latencies.append(time.perf_counter() - t0)

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for token in tokens:
            tg.start_soon(worker, token)
    return len(latencies) / (time.monotonic() - t0), latencies


async def run(sb: Any, quick: bool) -> tuple[list[Row], list[str]]:
    seconds = 2.0 if quick else 8.0  # per round and path
    uri = next(r.uri for r in sb.store.by_type("person"))
    people = {f"staff{n}": {"sub": f"u-staff{n}", "password": f"staff{n}-pw", "name": f"Staff {n}",
                            "email": f"staff{n}@sheepcrm.test", "email_verified": True, "roles": ["staff"]}
              for n in range(CLIENTS)}
    rates: dict[str, list[float]] = {"balancer": [], "replica": []}
    latencies: dict[str, list[float]] = {"balancer": [], "replica": []}
    with tempfile.TemporaryDirectory(prefix="sheepcrm-bench-hosted-") as tmp:
        accounts = Path(tmp) / "accounts.json"
        accounts.write_text(json.dumps(people))
        with provider(accounts) as issuer:
            hosted = Cluster(sb, REPLICAS, Path(tmp) / "cluster", SHEEPCRM_AUTH="oauth", SHEEPCRM_OAUTH_ISSUER=issuer,
                             SHEEPCRM_API_KEY_STAFF=sb.key, SHEEPCRM_MCP_TOKEN="")
            hosted.env["SHEEPCRM_OAUTH_RESOURCE"] = f"{hosted.lb}/mcp"
            hosted.env = {k: v for k, v in hosted.env.items() if v}
            with hosted:
                tokens = [sign_in(issuer, user, f"{hosted.lb}/mcp") for user in people]
                host = urlsplit(hosted.lb).netloc
                replica = f"http://127.0.0.1:{hosted.base}"  # replica 1, reached as the balancer would
                paths = {"balancer": hosted.lb, "replica": replica}
                for url in paths.values():  # warm-up: connections, key sets, imports on every replica
                    await calls(url, host, tokens, uri, 1.0)
                for _ in range(ROUNDS):
                    for name, url in paths.items():
                        rate, times = await calls(url, host, tokens, uri, seconds)
                        rates[name].append(rate)
                        latencies[name] += times
    lb_rate, one_rate = p50(rates["balancer"]), p50(rates["replica"])
    lb_p50, one_p50 = p50(latencies["balancer"]), p50(latencies["replica"])
    nproc = os.cpu_count() or 0
    rows = [
        Row(f"hosted calls x{CLIENTS} people: HAProxy to {REPLICAS} replicas vs straight to 1 (calls/s)",
            f"{lb_rate:.0f}/s", f"{one_rate:.0f}/s", f"{lb_rate / one_rate:.2f}x", f"info ({nproc} cores shared)",
            None),
        Row(f"hosted calls x{CLIENTS} people: HAProxy to {REPLICAS} replicas vs straight to 1, p50", ms(lb_p50),
            ms(one_p50), f"{lb_p50 / one_p50:.2f}x", "info", None),
    ]
    notes = [
        f"- {CLIENTS} clients, each signed in as a person of its own at the project's OpenID provider (authorization "
        f"code + PKCE, RFC 9068 access tokens for the balancer's /mcp), call get_contact for {seconds:g} s per "
        f"round, {ROUNDS} rounds alternating: through HAProxy to {REPLICAS} hosted replicas sharing Redis "
        "(scripts/cluster.sh, SHEEPCRM_AUTH=oauth, SHEEPCRM_CACHE_TTL=0), then straight to replica 1 with the "
        "balancer's Host, after a 1 s warm-up of each path. Calls/s are the rounds' median; latencies pooled. "
        f"p95: balancer {ms(p95(latencies['balancer']))}, one replica {ms(p95(latencies['replica']))}; rounds "
        f"(calls/s): balancer {', '.join(f'{r:.0f}' for r in rates['balancer'])}, one replica "
        f"{', '.join(f'{r:.0f}' for r in rates['replica'])}.",
        f"- On this {nproc}-core machine the clients, the provider, HAProxy, Redis, the sandbox and the "
        f"{REPLICAS} replicas share the cores: more replicas can only help as far as a core is idle.",
    ]
    return rows, notes
