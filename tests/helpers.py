"""Shared test helpers (import them from here, never from conftest): settings pointed at a sandbox,
the real HTTP app on a loopback port, the real binary as a subprocess."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import httpx2
import jwt
import mcp_types as mt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.http import http_app
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.store import Store
from sheepcrm_mcp.server.approvals import signins
from sheepcrm_mcp.server.approvals.pending import ApprovalRequest, Contest, Pending
from sheepcrm_mcp.server.approvals.store import Approvals
from sheepcrm_mcp.server.caller import Caller, set_caller
from sheepcrm_mcp.server.settings import CODE_VARIABLES, Settings
from sheepcrm_mcp.server.threadserver import ThreadServer
from sheepcrm_mcp.tools.profiles import PROFILES

REPO = Path(__file__).resolve().parents[1]
CANARY_KEY = "sk-canary-3f9a7c21d4e8b6"  # the sandboxes' API key; tests search every output for it
HTTP_TOKEN = "test-bearer-" + "k" * 40  # the bearer token serve_http's server expects unless told otherwise
AUTH = {"Authorization": f"Bearer {HTTP_TOKEN}"}
BIN_DIR = Path(sys.executable).parent
BINARY = shutil.which("sheepcrm-mcp", path=str(BIN_DIR)) or shutil.which("sheepcrm-mcp")
ACCEPT = "application/json, text/event-stream"
# Characters of the whole tools/list for a client without apps (every character is paid on every turn);
# 14,000 until create_contact and delete_contact added their 1,780, then 15,800 until output schemas stopped
# repeating what the answer's JSON shows and the write tools stopped repeating WriteResult.
TOOLS_LIST_BUDGET = 12_000
# Characters each tool may take in tools/list (its compact JSON, as in its snapshot), so a new or grown tool is
# judged by its own size; together with the list's own brackets and commas they fit in TOOLS_LIST_BUDGET.
# list_events and list_attendees grew by 10 each when a guest session's person_ref/guest_ref were described as
# either the guest's or the booker's (the documents give them no meaning), after trimming their descriptions.
TOOL_ALLOWANCES = {
    "search_contacts": 950,
    "get_contact": 575,
    "update_contact": 700,
    "create_contact": 775,
    "delete_contact": 425,
    "check_membership": 825,
    "list_events": 1060,
    "get_event": 700,
    "list_attendees": 960,
    "set_attendance": 600,
    "list_tasks": 825,
    "get_task": 550,
    "update_task": 475,
    "search_help": 600,
    "find_segments": 500,
    "query_segment": 675,
    "get_record_history": 575,
}
PROTOCOL = "2025-11-25"


def binary() -> str:
    if BINARY is None:
        pytest.fail("the sheepcrm-mcp console script is not installed (pip install -e '.[dev]')")
    return BINARY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any SHEEPCRM_* setting (nor a PYTHONPATH-like variable, which the
    server refuses), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEEPCRM_") and k not in CODE_VARIABLES}
    env.update(extra)
    return env


def settings_for(sb: SandboxServer, audit_dir: Path, **over: Any) -> Settings:
    """Settings pointing at a running sandbox (the one way tests do it), with a private audit log."""
    values: dict[str, Any] = {
        **sb.settings(), "audit_log": audit_dir / "audit.jsonl", "retry_wait_max": 0.2, "timeout": 5.0,
    }
    values.update(over)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def sandbox_env(sb: SandboxServer, tmp: Path, **extra: str) -> dict[str, str]:
    """The same settings as environment variables, as a user would export them; `extra` overrides."""
    values = {**sb.env(), "SHEEPCRM_AUDIT_LOG": str(tmp / "audit.jsonl")}
    return clean_env(**{**values, **extra})


class Served(str):
    """A served app's base URL; `.opened` lists the approval links the server would open in a browser."""

    opened: list[str]


@contextmanager
def serve_http(sb: SandboxServer, tmp: Path, *, host: str = "127.0.0.1", stateless: bool = False,
               **over: Any) -> Iterator[Served]:
    """The real ASGI app of `--transport http` (lifespan on) in a thread; yields its base URL.

    It expects HTTP_TOKEN (send AUTH) unless `mcp_token` says otherwise."""
    over.setdefault("mcp_token", HTTP_TOKEN)
    settings = settings_for(sb, tmp, **over)
    built = build_app(settings)
    opened: list[str] = []
    built.page.opener = lambda target: opened.append(launch_link(target)) is None
    app = http_app(built, host, stateless)
    ts = ThreadServer(app)
    ts.config.lifespan = "on"  # the SDK's session manager runs in the app's lifespan
    ts.start()
    served = Served(ts.url)
    served.opened = opened
    try:
        yield served
    finally:
        ts.stop()  # the app's lifespan closes the server's upstream client


@asynccontextmanager
async def http_session(base: str, *, token: str = HTTP_TOKEN, **client_kw: Any) -> AsyncIterator[Client]:
    """A real MCP client session over streamable HTTP to `base`, sending the bearer token."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        transport = streamable_http_client(base + "/mcp", http_client=http)
        async with Client(transport, **client_kw) as client:  # type: ignore[arg-type]
            yield client


def launch_link(target: str) -> str:
    """The one-time launch link inside the private launch file the server opens the browser on (a file:// path,
    which is all the browser's command line shows): what the person's browser posts, as a link a test can follow."""
    text = Path(urlsplit(target).path).read_text()
    action = re.search(r'action="([^"]+)"', text)
    token = re.search(r'name="launch" value="([^"]+)"', text)
    assert action and token, text
    return f"{action.group(1)}/{token.group(1)}"


def person_decides(launch_url: str, action: str = "approve") -> httpx.Response:
    """What the person does in the browser the server opened: follow the launch link, click a button."""
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        page = browser.get(launch_url)
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        origin = re.match(r"https?://[^/]+", launch_url)
        assert origin
        return browser.post(str(page.url), data={"action": action, "csrf": csrf.group(1)},
                            headers={"Origin": origin.group(0)})


def rpc(method: str, params: dict[str, Any] | None = None, id: int | None = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if id is not None:
        msg["id"] = id
    return msg


def initialize(id: int = 1) -> dict[str, Any]:
    return rpc("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                              "clientInfo": {"name": "transport-test", "version": "1"}}, id)


def parse_body(response: httpx.Response) -> list[dict[str, Any]]:
    """JSON-RPC messages from a JSON or SSE response body."""
    if response.headers.get("content-type", "").startswith("application/json"):
        data = response.json()
        return data if isinstance(data, list) else [data]
    out = []
    for line in response.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            out.append(json.loads(line[5:]))
    return out


def http_own(args: list[str], env: dict[str, str]) -> str:
    """What the person's own settings file says when they mean to serve over HTTP with these arguments: the
    transport, a bind address other than loopback, and the token the environment names."""
    lines = ["SHEEPCRM_TRANSPORT=http"]
    if "--host" in args and args[args.index("--host") + 1] not in ("127.0.0.1", "localhost", "::1"):
        lines.append(f"SHEEPCRM_HOST={args[args.index('--host') + 1]}")
    if env.get("SHEEPCRM_MCP_TOKEN"):
        lines.append(f"SHEEPCRM_MCP_TOKEN={env['SHEEPCRM_MCP_TOKEN']}")
    return "\n".join(lines) + "\n" + own_lines(env)


def own_lines(env: dict[str, str]) -> str:
    """The lines of the person's own settings file for the settings in `env` that count only from there
    (OWN_FILE_ONLY: hosted mode, the shared store, the token file, ...): a deployment writes them there."""
    from sheepcrm_mcp.server.settings import OWN_FILE_ONLY

    names = {f"SHEEPCRM_{name.upper()}" for name in OWN_FILE_ONLY}
    return "".join(f"{k}={v}\n" for k, v in env.items() if k in names and v != "")


def as_person(own: str, folder: Path) -> tuple[list[str], dict[str, str]]:
    """The command prefix and environment that start the server with `own` as the person's own settings file (at
    `folder`/settings.env, 0600 in a 0700 folder), through tests/person_browser.py: the real file is found from the
    account database, which a test cannot point elsewhere. "The person's browser" records launch links in
    `folder`/launches.txt."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "settings.env"
    path.write_text(own)
    path.chmod(0o600)
    return ([sys.executable, "-I", str(REPO / "tests" / "person_browser.py"), str(folder / "launches.txt")],
            {PERSON_SETTINGS: str(path)})


PERSON_SETTINGS = "PERSON_SETTINGS"  # tests/person_browser.py: where the person's own settings file is


@contextmanager
def run_binary(args: list[str], env: dict[str, str], *, own: str | None = None,
               **kw: Any) -> Iterator[subprocess.Popen[bytes]]:
    """The server as a process; with `own`, the person's own settings file says that (see as_person)."""
    command, folder = [binary()], None
    if own is not None:
        folder = Path(tempfile.mkdtemp(prefix="own-"))
        command, extra = as_person(own, folder / "person")
        env = {**env, **extra}
    proc = subprocess.Popen([*command, *args], env=env, cwd=kw.pop("cwd", REPO), stdin=kw.pop("stdin", None),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def run_http(args: list[str], env: dict[str, str], *, own_also: str = "", **kw: Any) -> Any:
    """`sheepcrm-mcp --transport http ARGS` as the person starts it: their own settings file says so (http_own),
    and `own_also` (lines only that file may hold, e.g. SHEEPCRM_HTTP_CLIENT_APPROVALS=true)."""
    full = ["--transport", "http", *args]
    return run_binary(full, env, own=http_own(full, env) + own_also, **kw)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"server exited with {proc.returncode} before it was healthy:\n{err}")
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} not healthy after {timeout}s")


async def approve(context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
    """A scripted person who approves every confirmation (pass as `elicitation=` to `connect`)."""
    return mt.ElicitResult(action="accept", content={"confirm": True})


async def decline(context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
    """A scripted person who declines every confirmation."""
    return mt.ElicitResult(action="decline")

# --- the local OpenID provider (.ci/idp, oidc-provider) and sign-in through it ---------------

IDP_CLIENT = "sheepcrm-test"  # public PKCE client of .ci/idp/provider.mjs; passwords are "<username>-pw"
IDP_REDIRECT = "http://127.0.0.1:53682/callback"  # nothing listens there: the code is read from the redirect


@contextmanager
def running_idp(timeout: float = 120.0, **env: str) -> Iterator[str]:
    """The project's OpenID provider (`bash .ci/idp.sh`, which installs it once) on a free port; yields its issuer."""
    proc = subprocess.Popen(["bash", str(REPO / ".ci" / "idp.sh"), "--port", "0"], cwd=REPO,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not ready or not ready[0].strip():
            proc.kill()
            pytest.fail(f"the OpenID provider did not start: {proc.stderr.read() if proc.stderr else ''}")  # type: ignore[union-attr]
        yield str(json.loads(ready[0])["issuer"])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def browse(http: httpx.Client, start: str | httpx.Response, user: str, until: str | None = None) -> Any:
    """A person's browser, scripted: follows redirects and signs in as `user` at the provider's login form.

    Returns the first page that is neither (an httpx.Response), or, when a redirect's address contains `until`,
    that address unfollowed (a str: where the provider sends the code back)."""
    response = http.get(start) if isinstance(start, str) else start
    for _ in range(25):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if until is not None and until in location:
                return location
            response = http.get(location)
        elif 'id="login-form"' in response.text and response.status_code == 200:
            action = re.search(r'<form id="login-form" method="post" action="([^"]+)"', response.text)
            assert action is not None
            response = http.post(urljoin(str(response.url), action.group(1)),
                                 data={"username": user, "password": f"{user}-pw"})
        elif until is not None:
            raise AssertionError(f"sign-in stopped at {response.status_code} {response.url}: {response.text[:200]}")
        else:
            return response
    raise AssertionError("the sign-in never ended")


def sign_in(issuer: str, user: str, resource: str, scope: str = "sheepcrm", client: str = IDP_CLIENT) -> str:
    """Authorization code + PKCE at the provider, posting its login form as a person would; the access token.

    A fresh cookie jar per sign-in: a shared one would silently reuse the first user's session."""
    verifier = _b64url(secrets.token_bytes(32))
    challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    with httpx.Client(timeout=10) as http:
        meta = http.get(f"{issuer}/.well-known/oauth-authorization-server").raise_for_status().json()
        response = http.get(meta["authorization_endpoint"], params={
            "client_id": client, "response_type": "code", "redirect_uri": IDP_REDIRECT, "scope": scope,
            "resource": resource, "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
        callback = browse(http, response, user, until=IDP_REDIRECT)
        assert isinstance(callback, str), "the provider never redirected back"
        query = parse_qs(urlsplit(callback).query)
        assert query.get("state") == [state] and "code" in query, query
        token = http.post(meta["token_endpoint"], data={
            "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": IDP_REDIRECT,
            "code_verifier": verifier, "client_id": client, "resource": resource})
        assert token.status_code == 200, token.text
        return str(token.json()["access_token"])


@contextmanager
def serve_hosted(sb: SandboxServer, tmp: Path, issuer: str, *, http: Any = None, **over: Any) -> Iterator[str]:
    """Hosted mode (SHEEPCRM_AUTH=oauth) in a thread on a free port, every profile on the sandbox's key.

    Yields the base URL; the resource (token audience) is base + "/mcp". `http` replaces the client
    that fetches the issuer's keys (unit tests serve a local key set through it)."""
    from sheepcrm_mcp.hosted import build_hosted, hosted_app

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    values: dict[str, Any] = {"auth": "oauth", "oauth_issuer": issuer, "oauth_resource": resource,
                              "api_key_helpdesk": sb.key, "api_key_member": sb.key}
    settings = settings_for(sb, tmp, **{**values, **over})
    hosted = build_hosted(settings, http=http)
    ts = ThreadServer(hosted_app(hosted, "127.0.0.1", False), "127.0.0.1", port)
    ts.config.lifespan = "on"
    ts.start()
    try:
        yield ts.url
    finally:
        ts.stop()


STRANGER = "sheepcrm-stranger"  # the second local user the attack tests run as


def stranger() -> str:
    """A real second local account (created once when the tests run as root): another user on this machine."""
    import pwd

    try:
        pwd.getpwnam(STRANGER)
    except KeyError:
        if os.geteuid() != 0:
            if os.environ.get("CI"):
                pytest.fail(f"CI runs as root so that it can create the local user {STRANGER}")
            pytest.skip(f"needs root to create the local user {STRANGER}")
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", STRANGER],
                       check=True, capture_output=True)
    return STRANGER


def as_stranger(*command: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command as the second local user (uid other than ours), from a folder it may enter."""
    user = stranger()
    return subprocess.run(["runuser", "-u", user, "--", *command], capture_output=True, text=True, timeout=timeout,
                          cwd="/", **kw)


@asynccontextmanager
async def open_session(sb: SandboxServer, audit_dir: Path, *, mode: str = "legacy",
                       elicitation: ElicitationFnT | None = None, profile: str = "staff",
                       **over: Any) -> AsyncIterator[Client]:
    """A real client session on a freshly built app pointed at `sb`; `client.runtime` is the app and
    `client.opened` lists the launch links the server would have opened in the person's browser.

    `profile`: `staff` (the catalogue, as stdio serves it) or `member` (the self-service tools, signed in as
    the demo member Jane, as the hosted layer would set her)."""
    built = build_app(settings_for(sb, audit_dir, **over), profile=PROFILES[profile])
    opened: list[str] = []
    built.page.opener = lambda target: opened.append(launch_link(target)) is None
    facts = sb.store.demo_facts()
    set_caller(Caller("member-jane", facts["jane_email"], "member", person=facts["jane_uri"])
               if profile == "member" else None)
    try:
        async with Client(built.server, mode=mode, elicitation_callback=elicitation) as client:  # type: ignore[arg-type]
            client.runtime = built  # type: ignore[attr-defined]
            client.opened = opened  # type: ignore[attr-defined]
            yield client
    finally:
        set_caller(None)
        await built.aclose()


class Readers:
    """`await readers(mode)`: one client session per mode on the shared read-only sandbox, opened on first use
    and kept for the whole test module (a session costs about as much as twenty calls). Only for tests that
    read: the shared sandbox fails the run if it sees a write. Each session is held by a task of its own,
    since a session must be closed by the task that opened it."""

    def __init__(self, sb: SandboxServer, audit_dir: Path) -> None:
        self.sb, self.audit_dir = sb, audit_dir
        self.held: dict[str, tuple[Client, asyncio.Event, asyncio.Task[None]]] = {}

    async def __call__(self, mode: str = "legacy") -> Client:
        if mode not in self.held:
            opened: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
            done = asyncio.Event()

            async def hold() -> None:
                try:
                    async with open_session(self.sb, self.audit_dir, mode=mode) as client:
                        opened.set_result(client)
                        await done.wait()
                except BaseException as exc:
                    if not opened.done():
                        opened.set_exception(exc)
                    raise

            task = asyncio.create_task(hold())
            self.held[mode] = (await opened, done, task)
        return self.held[mode][0]

    async def aclose(self) -> None:
        for _, done, task in self.held.values():
            done.set()
            await task


# --- answers through a real client session, and sandbox data shaped for one test -------------


async def answer(connect: Any, sb: SandboxServer, tool: str, args: dict[str, Any], **over: Any) -> mt.CallToolResult:
    """One tool call through a real MCP client session (the `connect` fixture) against `sb`."""
    async with connect(sb, **over) as client:
        result: mt.CallToolResult = await client.call_tool(tool, args)
    return result


def error_text(result: mt.CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return "".join(getattr(c, "text", "") for c in result.content)


@asynccontextmanager
async def member_session(sb: SandboxServer, tmp: Path, person: str, email: str) -> AsyncIterator[Client]:
    """The member profile served in process to a real client, its caller set as the hosted layer sets it per
    request (the context variable the SDK carries into tool calls)."""
    from sheepcrm_mcp.server.caller import Caller, set_caller
    from sheepcrm_mcp.tools.profiles import MEMBER

    built = build_app(settings_for(sb, tmp), profile=MEMBER)
    set_caller(Caller(sub=f"member-{person}", email=email, profile="member", person=person))
    try:
        async with Client(built.server, mode="legacy") as client:
            yield client
    finally:
        set_caller(None)
        await built.aclose()


def clone_records(sb: SandboxServer, uri: str, copies: int, **data: Any) -> list[str]:
    """`copies` new records like `uri` (new uids), with `data` over its data: more of a kind than the seed has."""
    from sheepcrm_mcp.sandbox.records import sort_key_for

    store = sb.store
    record = store.get(uri)
    assert record is not None
    made = []
    with store.transaction() as db:
        for _ in range(copies):
            uid = secrets.token_hex(12)
            new = f"/{record.bucket}/{record.type}/{uid}/"
            body = {**record.data, **data}
            body.update({k: v for k, v in (("uid", uid), ("uri", new)) if k in record.data})
            db.execute(
                "INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?)",
                (new, record.type, uid, record.display_value, record.link, sort_key_for(record.type, body),
                 record.created, record.last_updated, record.state, json.dumps(body)),
            )
            made.append(new)
    return made


def sandbox_answers(monkeypatch: pytest.MonkeyPatch, handler: str, change: Any) -> None:
    """Sandboxes started after this answer `change(request, body)` where sandbox/app.py's route function `handler`
    answers 200 with the JSON `body`: an answer sheepCRM's documents allow that the sandbox does not serve (the
    routes are built when a sandbox starts, from the module's functions)."""
    from starlette.responses import JSONResponse

    import sheepcrm_mcp.sandbox.app as sandbox_app

    served = getattr(sandbox_app, handler)

    async def changed(request: Any) -> Any:
        response = await served(request)
        if response.status_code != 200:
            return response
        return JSONResponse(change(request, json.loads(response.body)))

    monkeypatch.setattr(sandbox_app, handler, changed)


# --- calling tools and reading what they did ---------------------------------------------------

MODES = ["legacy", "auto"]  # the two protocol eras a test runs in (legacy: 2025-11-25; auto: the newest)


async def answer_body(connect: Any, sb: SandboxServer, tool: str, args: dict[str, Any], **over: Any) -> dict[str, Any]:
    """The structured content of `answer`, which must not be an error (it fails the test)."""
    async with connect(sb, **over) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    body: dict[str, Any] = result.structured_content
    assert body is not None
    return body


async def read(readers: Readers, tool: str, args: dict[str, Any], mode: str = "legacy") -> dict[str, Any]:
    """The structured answer of one call on the module's shared read-only session of `mode`."""
    client = await readers(mode)
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    body: dict[str, Any] = result.structured_content
    assert body is not None
    return body


async def answer_sized(connect: Any, sb: SandboxServer, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The structured answer and the size of the text the model reads."""
    async with connect(sb) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content, len(result.content[0].text)  # type: ignore[union-attr]


def text_of(result: Any) -> str:
    """Everything a tool result says: its text and its structured content."""
    return " ".join(getattr(c, "text", "") for c in result.content) + json.dumps(result.structured_content or {})


def answering(action: str, content: dict[str, Any] | None = None, seen: list[str] | None = None) -> Any:
    """A scripted person who answers every confirmation with `action`, noting each question in `seen`."""

    async def callback(context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
        if seen is not None:
            seen.append(params.message)
        return mt.ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    return callback


def writes(sb: SandboxServer) -> list[Any]:
    """The write requests (PUT, POST, PATCH, DELETE) the sandbox received."""
    return [r for r in sb.request_log if r.method in ("PUT", "POST", "PATCH", "DELETE")]


def puts(sb: SandboxServer) -> int:
    return len([r for r in sb.request_log if r.method == "PUT"])


def audit_lines(tmp_path: Path) -> list[dict[str, Any]]:
    """The audit log `connect` writes under tmp_path, one dict per line."""
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def task_status(sb: SandboxServer, uid: str) -> str:
    """A task's status as the sandbox's store has it."""
    task = sb.store.get_record("journal", uid)
    assert task is not None
    return Store.task_status(task)


def scripted(answers: dict[str, Any]) -> Any:
    """Deps over a client whose upstream answers `answers[path]` (200) or 404: a handler called on its own."""
    from sheepcrm_mcp.server.specs import Deps
    from sheepcrm_mcp.sheepcrm import SheepClient

    def handler(request: httpx.Request) -> httpx.Response:
        for path, body in answers.items():
            if request.url.path == path:
                return httpx.Response(200, json=body)
        return httpx.Response(404, json={"error": "not found"})

    settings = Settings(_env_file=None, api_key="k", bucket="demo", cache_ttl=0)  # type: ignore[call-arg]
    client = SheepClient(settings.client_config(), transport=httpx.MockTransport(handler))
    return Deps(client=client.reader, settings=settings)


# --- hosted sessions and a real browser ---------------------------------------------------------

@asynccontextmanager
async def hosted_session(url: str, token: str, **kw: Any) -> AsyncIterator[Client]:
    """A client session with a hosted server (SHEEPCRM_AUTH=oauth), on a bearer token from the provider."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with Client(streamable_http_client(url + "/mcp", http_client=http), mode="legacy",  # type: ignore[arg-type]
                          **kw) as client:
            yield client


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def launch_chromium(pw: Any) -> Any:
    """Debian's Chromium, headless, through Playwright."""
    assert CHROMIUM, "CI must install Debian's chromium (see .ci/run)"
    return await pw.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
              "--disable-component-update", "--disable-sync", "--disable-quic"],
    )


def post_initialize(url: str, token: str | None) -> httpx.Response:
    """A bare `initialize` POST to a hosted server's /mcp, with a bearer token or none."""
    headers = {"accept": ACCEPT, **({"authorization": f"Bearer {token}"} if token else {})}
    return httpx.post(url + "/mcp", json=initialize(), headers=headers, timeout=10)


# --- tokens signed by a local key, served as an issuer's key set through httpx's mock transport ---------

ISSUER = "https://idp.example.test"


RESOURCE = "https://mcp.example.test/mcp"


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_transport(fetches: list[int] | None = None) -> httpx.MockTransport:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        if request.url.path == "/jwks":
            if fetches is not None:
                fetches.append(1)
            return httpx.Response(200, json={"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})
        return httpx.Response(404)

    return httpx.MockTransport(handler)


def token(*, key: Any = KEY, alg: str = "RS256", typ: str = "at+jwt", kid: str = "k1", **over: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": RESOURCE, "sub": "u-1", "iat": now, "exp": now + 300, "scope": "sheepcrm",
              "client_id": "c", "email": "staff@example.test", "email_verified": True, "roles": ["staff"]}
    claims.update(over)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": typ})


# --- the hosted approval page: a helpdesk's write waiting for a person who signs in --------------------

PAGE = {  # the approval page's client in .ci/idp/provider.mjs; staff may approve for others here
    "oauth_client_id": "sheepcrm-approvals",
    "oauth_client_secret": "sheepcrm-approvals-secret-for-tests-only",
    "oauth_signin_scope": "openid email profile roles",
    "oauth_approver_roles": ("staff",),
}


USED: set[str] = set()


def fresh_task(sb: SandboxServer) -> str:
    """An open task no other test here completes: each test asks for its own change."""
    for task in sb.store.by_type("journal"):
        if Store.task_status(task) == "open" and task.uid not in USED:
            USED.add(task.uid)
            return task.uid
    raise AssertionError("the sandbox has no open task left")


async def ask_to_complete(url: str, token: str, uid: str) -> dict[str, Any]:
    """The helpdesk's client asks to complete a task; it has no elicitation, so the page is the way."""
    async with hosted_session(url, token) as client:
        result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
    assert not result.is_error, result.content
    return dict(result.structured_content or {})


def link_in(answer: dict[str, Any], url: str) -> str:
    found = re.search(re.escape(url) + r"/approve/[\w-]+", answer["message"])
    assert answer["status"] == "approval_required" and found, answer
    return found.group(0)


def decide(http: httpx.Client, page: httpx.Response, url: str, action: str = "approve") -> httpx.Response:
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None, page.text
    return http.post(str(page.url), data={"csrf": csrf.group(1), "action": action}, headers={"origin": url})


def audit_of(tmp: Path, tool: str = "update_task") -> list[dict[str, Any]]:
    return [x for x in map(json.loads, (tmp / "audit.jsonl").read_text().splitlines()) if x["tool"] == tool]


# --- Prometheus metrics of a running server -------------------------------------------------------

def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(base + "/metrics")  # no bearer token, like /healthz
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def delta(before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
          after: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


# --- sandbox data shaped for one test ------------------------------------------------------------

def as_guest_only(sb: SandboxServer) -> tuple[str, str]:
    """Thomas Hardy came to the past event as Jane's guest: the guest session names him (where it named the seeded
    guest: guest_ref, or person_ref under variant guest-ref-booker), no session or order of his own does."""
    store, facts = sb.store, sb.store.demo_facts()
    event, thomas = facts["past_event_uid"], facts["non_member_uri"]
    session, key = next(
        (s, k)
        for s in store.attendance(f"/demo/booking/{event}/")
        for k in ("guest_ref", "person_ref")
        if s.data.get("guest") and s.data.get(k) == facts["past_event_guest_uri"]
    )
    store.update(session.uri, {key: thomas, "attendee_name": "Thomas Hardy"}, message="t")
    assert event not in {e.uid for e in store.events_of(thomas)}
    return thomas, event

MEMBER_TOOLS = {"my_membership", "my_bookings", "upcoming_events", "search_help"}  # the member profile's tools


async def ask(client: Any, args: dict[str, Any]) -> dict[str, Any]:
    """A write call that must not be an error: its structured answer (update_task when `action` is given)."""
    result = await client.call_tool("update_task" if "action" in args else "update_contact", args)
    assert not result.is_error, result.content
    body: dict[str, Any] = result.structured_content
    return body


# --- the approval page's sign-ins in progress (server/approvals/signins.py) -----------------------


def started_sign_in(approval: str, client: str) -> signins.SignInRecord:
    """A sign-in of the approval page, as begun from the address `client`."""
    browser = signins.digest("browser")
    return signins.SignInRecord(approval, time.time(), "sheepcrm_signin_x", browser, signins.digest(client))


async def check_sign_in_caps(store: signins.SignIns, tag: str) -> None:
    """What every SignIns must do with repeated starts (`tag` keeps runs on a shared store apart)."""
    approval, other = f"{tag}-a1", f"{tag}-a2"
    states = [f"{tag}-s{n}" for n in range(signins.PENDING_PER_APPROVAL + 2)]
    for state in states:  # one approval, many browsers: only the newest are kept
        assert await store.begin(state, started_sign_in(approval, f"{tag}-{state}"), 600)
    dropped, kept = states[:2], states[2:]
    for state in dropped:
        assert await store.take(state, 600) is None
    for state in kept:
        assert isinstance(await store.take(state, 600), signins.SignInRecord)
    one = f"{tag}-198.51.100.7"  # one address starting sign-ins for many approvals
    for n in range(signins.PENDING_PER_CLIENT):
        assert await store.begin(f"{tag}-c{n}", started_sign_in(f"{tag}-x{n}", one), 600)
    assert not await store.begin(f"{tag}-c-over", started_sign_in(other, one), 600)
    assert await store.take(f"{tag}-c-over", 600) is None  # refused: nothing kept
    assert await store.begin(f"{tag}-elsewhere", started_sign_in(other, f"{tag}-203.0.113.9"), 600)  # elsewhere
    assert isinstance(await store.take(f"{tag}-c0", 600), signins.SignInRecord)  # taking one frees its place
    assert await store.begin(f"{tag}-c-next", started_sign_in(other, one), 600)


# --- a launch link used twice (server/approvals/store.py, redis_store.py) -------------------------------------------


async def check_launch_contest(store: Approvals, tag: str) -> None:
    """What every Approvals store does when one launch token is presented a second time, by any browser (`tag` keeps
    runs on a shared store apart): an approval not yet spent is contested, never approved or spent, and said once."""

    async def launched(n: int) -> tuple[Pending, str, str]:
        item = await store.create(ApprovalRequest("update_task", f"{tag}-{n}", "state", "summary", ["line"]))
        token = await store.new_launch(item.id)
        cookie = await store.launch(item.id, token)
        assert isinstance(cookie, str)
        return item, token, cookie

    item, token, cookie = await launched(1)  # still pending
    seen = await store.get(item.id)
    assert seen is not None and seen.launched > time.time() - 60  # when it was first used, for the page's hold
    assert await store.launch(item.id, "another-token") is None
    assert await store.launch(item.id, token) == Contest("pending")
    assert await store.decide(item.id, cookie, approve=True) == "contested"  # the first browser can no longer approve
    assert await store.consume("update_task", f"{tag}-1", "state") == "contested"
    assert await store.consume("update_task", f"{tag}-1", "state") is None  # said once
    assert await store.decision(item.id) == "cancelled"
    fresh = await store.create(ApprovalRequest("update_task", f"{tag}-1", "state", "summary", ["line"]))
    assert fresh.id != item.id and fresh.status == "pending"  # the person is asked again
    assert await store.launch(item.id, token) == Contest("cancelled")

    item, token, cookie = await launched(2)  # approved, not yet spent: withdrawn
    assert await store.decide(item.id, cookie, approve=True) == "approved"
    assert await store.launch(item.id, token) == Contest("approved")
    assert await store.consume("update_task", f"{tag}-2", "state") == "contested"

    item, token, cookie = await launched(3)  # spent: it stays so, and the second browser is told
    assert await store.decide(item.id, cookie, approve=True) == "approved"
    used = await store.consume("update_task", f"{tag}-3", "state")
    assert isinstance(used, Pending) and used.id == item.id
    assert await store.launch(item.id, token) == Contest("used") and await store.decision(item.id) == "used"
    await store.applied(item.id, 'update_task with {"action": "reopen"}')
    kept = await store.get(item.id)
    assert kept is not None and kept.undo == 'update_task with {"action": "reopen"}'  # for the page to say

    item, token, cookie = await launched(5)  # rejected and told: it stays rejected, never "used" (as if applied)
    assert await store.decide(item.id, cookie, approve=False) == "rejected"
    assert await store.consume("update_task", f"{tag}-5", "state") == "rejected"
    assert await store.consume("update_task", f"{tag}-5", "state") is None
    assert await store.decision(item.id) == "rejected"
    assert await store.launch(item.id, token) == Contest("rejected")

    item, first, _ = await launched(4)  # a new launch token replaces the old one; its first use is no contest
    second = await store.new_launch(item.id)
    assert await store.launch(item.id, first) is None
    assert isinstance(await store.launch(item.id, second), str)


def events_as_summary_packets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sandboxes started after this list events without saying whether their ticket types share one stock (no
    ticket_stock_control, total_stock_available): openapi.yaml calls the event lists "a summary packet, call
    individual events for full details"."""
    from sheepcrm_mcp.tools.contract import STOCK

    def summary(request: Any, body: dict[str, Any]) -> dict[str, Any]:
        return {"bookings": [{k: v for k, v in e.items() if k not in STOCK} for e in body["bookings"]]}

    sandbox_answers(monkeypatch, "events_by_state", summary)
