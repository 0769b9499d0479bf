"""Streamable HTTP: DNS-rebinding checks, bearer token, bind policy, sessions, stateless mode, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.http import http_app
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.settings import ConfigError
from tests.helpers import (
    ACCEPT,
    AUTH,
    HTTP_TOKEN,
    PROTOCOL,
    clean_env,
    free_port,
    http_session,
    initialize,
    parse_body,
    rpc,
    run_http,
    sandbox_env,
    serve_http,
    settings_for,
    wait_healthy,
)

TOKEN = "t0ken-" + "x" * 40


def post(url: str, body: dict[str, Any], token: str | None = HTTP_TOKEN, **headers: str) -> httpx.Response:
    auth = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url + "/mcp", json=body, headers={"accept": ACCEPT, **auth, **headers}, timeout=10)


# --- how answers are sent -------------------------------------------------------------------------


@pytest.mark.parametrize(("client_approvals", "kind"), [(False, "application/json"), (True, "text/event-stream")])
def test_a_call_is_answered_in_one_json_body_unless_the_client_may_be_asked_to_approve(
    shared_sandbox: SandboxServer, tmp_path: Path, client_approvals: bool, kind: str
) -> None:
    """Streamable HTTP lets the server answer a request with one JSON body or with a stream; a client accepts either.
    In token mode the server sends a client nothing during a call but the confirmation gate's form or link, offered
    over HTTP only when the person's own file says SHEEPCRM_HTTP_CLIENT_APPROVALS=true: then every request of the
    session is answered with a stream (which carries the form); otherwise with one JSON body."""
    jane = shared_sandbox.store.demo_facts()["jane_uri"]
    with serve_http(shared_sandbox, tmp_path, http_client_approvals=client_approvals) as url:
        opened = post(url, initialize())
        assert opened.status_code == 200 and opened.headers["content-type"].startswith(kind), opened.headers
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
        assert post(url, rpc("notifications/initialized", id=None), **session).status_code == 202
        called = post(url, rpc("tools/call", {"name": "get_contact", "arguments": {"uri": jane}}, 2), **session)
        assert called.status_code == 200 and called.headers["content-type"].startswith(kind), called.headers
        [answer] = parse_body(called)
        assert answer["id"] == 2 and answer["result"]["structuredContent"]["uri"] == jane


# --- DNS rebinding: Host and Origin ---------------------------------------------------------------


def test_foreign_origin_and_host_are_refused(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    with serve_http(shared_sandbox, tmp_path) as url:
        port = url.rsplit(":", 1)[1]
        foreign_origin = post(url, initialize(), origin="http://evil.example.com")
        assert foreign_origin.status_code == 403, foreign_origin.text
        foreign_host = post(url, initialize(), host=f"evil.example.com:{port}")
        assert foreign_host.status_code == 421, foreign_host.text
        # The same request from a loopback origin (a local browser page) or with no Origin works.
        local = post(url, initialize(), origin=f"http://localhost:{port}")
        assert local.status_code == 200, local.text
        assert parse_body(local)[0]["result"]["serverInfo"]["name"] == "sheepcrm-mcp"
        assert post(url, initialize()).status_code == 200


def test_allowed_origins_setting_extends_the_list(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    with serve_http(shared_sandbox, tmp_path, http_allowed_origins="https://app.example.org") as url:
        assert post(url, initialize(), origin="https://app.example.org").status_code == 200
        assert post(url, initialize(), origin="https://other.example.org").status_code == 403


# --- bearer token ------------------------------------------------------------------------------


def test_token_required_on_every_request(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    with serve_http(shared_sandbox, tmp_path, mcp_token=TOKEN) as url:
        missing = post(url, initialize(), token=None)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "SHEEPCRM_MCP_TOKEN" in missing.json()["error"]
        assert post(url, initialize(), authorization=f"Bearer {TOKEN}x").status_code == 401
        assert post(url, initialize(), authorization=f"Bearer {TOKEN[:-1]}").status_code == 401
        assert post(url, initialize(), authorization=f"Basic {TOKEN}").status_code == 401
        assert post(url, initialize(), authorization=TOKEN).status_code == 401
        # GET and DELETE on the endpoint need it too, not only POST.
        assert httpx.get(url + "/mcp", headers={"accept": "text/event-stream"}).status_code == 401
        assert httpx.delete(url + "/mcp").status_code == 401

        good = post(url, initialize(), authorization=f"Bearer {TOKEN}")
        assert good.status_code == 200, good.text
        session = good.headers["mcp-session-id"]
        # ...and a session id alone is not a credential.
        listed = post(url, rpc("tools/list", {}, 2), token=None,
                      **{"mcp-session-id": session, "mcp-protocol-version": PROTOCOL})
        assert listed.status_code == 401
        # Health checks need no token.
        health = httpx.get(url + "/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_mcp_client_with_token(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    with serve_http(shared_sandbox, tmp_path, mcp_token=TOKEN) as url:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            transport = streamable_http_client(url + "/mcp", http_client=http)
            async with Client(transport, mode="legacy") as client:  # type: ignore[arg-type]
                found = await client.call_tool("search_contacts", {"query": "austen"})
        assert not found.is_error
        assert found.structured_content is not None
        assert any("Austen" in c["name"] for c in found.structured_content["contacts"])


# --- bind policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_non_loopback_bind_needs_a_token(shared_sandbox: SandboxServer, tmp_path: Path, host: str) -> None:
    settings = settings_for(shared_sandbox, tmp_path)
    with pytest.raises(ConfigError, match="SHEEPCRM_MCP_TOKEN"):
        http_app(build_app(settings), host, False)
    with_token = settings_for(shared_sandbox, tmp_path, mcp_token=TOKEN)
    assert http_app(build_app(with_token), host, False) is not None


@pytest.mark.slow
def test_cli_refuses_non_loopback_bind_without_token(tmp_path: Path) -> None:
    port = free_port()
    with run_http(["--sandbox", "--host", "0.0.0.0", "--port", str(port)], clean_env()) as proc:
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err.decode()
    assert b"refusing to listen on 0.0.0.0 without SHEEPCRM_MCP_TOKEN" in err
    with pytest.raises(httpx.TransportError):  # and it never listened
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


# --- sessions ---------------------------------------------------------------------------------


async def test_concurrent_sessions_are_separate(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    with serve_http(shared_sandbox, tmp_path) as url:
        async with httpx.AsyncClient(base_url=url, headers={"accept": ACCEPT, **AUTH}, timeout=10) as http:

            async def open_session() -> dict[str, str]:
                r = await http.post("/mcp", json=initialize())
                assert r.status_code == 200, r.text
                headers = {"mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
                assert (await http.post("/mcp", json=rpc("notifications/initialized", id=None),
                                        headers=headers)).status_code == 202
                return headers

            a, b = await asyncio.gather(open_session(), open_session())
            assert a["mcp-session-id"] != b["mcp-session-id"]

            async def search(headers: dict[str, str], query: str, id: int) -> dict[str, Any]:
                r = await http.post("/mcp", json=rpc("tools/call", {"name": "search_contacts",
                                                                    "arguments": {"query": query}}, id),
                                    headers=headers)
                assert r.status_code == 200, r.text
                [msg] = [m for m in parse_body(r) if m.get("id") == id]
                return msg

            # Interleave: each session's answers match its own questions and ids.
            calls = [(a, "austen", 11), (b, "bronte", 21), (a, "dickens", 12), (b, "austen", 22)]
            results = await asyncio.gather(*(search(h, q, i) for h, q, i in calls))
            for (_, query, id), msg in zip(calls, results, strict=True):
                assert msg["id"] == id
                contacts = msg["result"]["structuredContent"]["contacts"]
                assert contacts, f"no contacts for {query}"
                assert all(query in json.dumps(c).lower() for c in contacts), (query, contacts)

            # Ending one session leaves the other alive; the ended id is gone for good.
            assert (await http.delete("/mcp", headers=a)).status_code == 200
            gone = await http.post("/mcp", json=rpc("tools/list", {}, 30), headers=a)
            assert gone.status_code == 404
            alive = await http.post("/mcp", json=rpc("tools/list", {}, 31), headers=b)
            assert alive.status_code == 200
            assert any(t["name"] == "search_contacts" for t in parse_body(alive)[0]["result"]["tools"])
            # A made-up session id is not accepted either.
            forged = {**b, "mcp-session-id": "0" * 32}
            assert (await http.post("/mcp", json=rpc("tools/list", {}, 32), headers=forged)).status_code == 404


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_mcp_client_over_http(shared_sandbox: SandboxServer, tmp_path: Path, mode: str) -> None:
    with serve_http(shared_sandbox, tmp_path) as url:
        async with http_session(url, mode=mode) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            found = await client.call_tool("search_contacts", {"query": "austen"})
    assert {"search_contacts", "update_contact"} <= tools
    assert not found.is_error and found.structured_content is not None
    assert found.structured_content["contacts"]


async def test_stateless_mode(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    with serve_http(shared_sandbox, tmp_path, stateless=True) as url:
        r = post(url, initialize())
        assert r.status_code == 200
        assert "mcp-session-id" not in r.headers
        call = post(url, rpc("tools/call", {"name": "search_contacts", "arguments": {"query": "austen"}}, 2),
                    **{"mcp-protocol-version": PROTOCOL})
        assert call.status_code == 200, call.text
        assert parse_body(call)[0]["result"]["structuredContent"]["contacts"]
        async with http_session(url, mode="legacy") as client:
            assert (await client.call_tool("search_contacts", {"query": "bronte"})).structured_content


# --- the real binary: healthz and graceful shutdown --------------------------------------------


@pytest.mark.slow
def test_sigterm_lets_an_in_flight_call_finish(tmp_path: Path) -> None:
    # Searches take 1.5 s upstream; SIGTERM arrives while one is in flight.
    with SandboxServer(faults=["latency=1500:1:/search/"]) as sb:
        port = free_port()
        env = sandbox_env(sb, tmp_path, SHEEPCRM_MCP_TOKEN=HTTP_TOKEN)
        with run_http(["--port", str(port)], env) as proc:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc)
            assert httpx.get(url + "/healthz").json()["version"]
            init = post(url, initialize())
            headers = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
            post(url, rpc("notifications/initialized", id=None), **headers)

            box: dict[str, Any] = {}

            def call() -> None:
                box["response"] = post(url, rpc("tools/call", {"name": "search_contacts",
                                                               "arguments": {"query": "austen"}}, 5), **headers)

            worker = threading.Thread(target=call)
            worker.start()
            time.sleep(0.5)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            worker.join(timeout=15)
            _, err = proc.communicate(timeout=15)
            took = time.monotonic() - started
        assert "response" in box, err.decode()
        [msg] = parse_body(box["response"])
        assert msg["id"] == 5 and not msg["result"].get("isError"), msg
        assert msg["result"]["structuredContent"]["contacts"]
        # uvicorn re-raises SIGTERM once drained: the conventional "terminated by SIGTERM" status.
        assert proc.returncode in (0, -signal.SIGTERM), err.decode()
        assert b"stopped serving MCP over HTTP" in err
        assert took < 12, f"shutdown took {took:.1f}s"
        with pytest.raises(httpx.TransportError):  # new connections are refused once it stopped
            httpx.get(url + "/healthz", timeout=1)
