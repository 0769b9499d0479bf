"""HTTP: the bearer token is needed on every request, loopback included; a generated token lives in a
private file; failed attempts are throttled; sessions per client are capped. Settings: no implicit .env,
security settings only from the environment or flags, https upstreams."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

import httpx
import pytest

import sheepcrm_mcp.http as http_module
from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.settings import ConfigError, load_settings
from tests.helpers import (
    ACCEPT,
    AUTH,
    HTTP_TOKEN,
    free_port,
    initialize,
    run_binary,
    run_http,
    sandbox_env,
    serve_http,
    stranger,
    wait_healthy,
)


def post(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url + "/mcp", json=initialize(), headers={"accept": ACCEPT, **(headers or {})}, timeout=10)


def test_loopback_needs_the_token_too(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    with serve_http(shared_sandbox, tmp_path) as url:
        assert post(url).status_code == 401  # another local user or process gets nothing
        assert post(url, AUTH).status_code == 200


def test_a_proxied_loopback_bind_needs_the_token(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    with serve_http(shared_sandbox, tmp_path, http_allowed_hosts="mcp.example.org") as url:
        assert post(url, {"host": "mcp.example.org"}).status_code == 401
        assert post(url, {"host": "mcp.example.org", **AUTH}).status_code == 200


@pytest.mark.slow
def test_without_a_token_one_is_generated_into_a_private_file(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "state" / "http-token"
    port = free_port()
    env = sandbox_env(sandbox, tmp_path, SHEEPCRM_MCP_TOKEN_FILE=str(token_file), HOME=str(tmp_path))
    with run_http(["--port", str(port)], env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        token = token_file.read_text().strip()
        assert len(token) >= 32 and stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert post(url).status_code == 401
        assert post(url, {"authorization": f"Bearer {token}"}).status_code == 200
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert str(token_file).encode() in err and token.encode() not in err


@pytest.mark.slow
def test_servers_on_one_token_file_never_overwrite_each_others_token(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Several servers of one user started without SHEEPCRM_MCP_TOKEN (replicas, or a second project's server) on
    the default token file. Before, each wrote its own token over the file, so every server but the last refused
    the token clients read there. Now they share the file's token while any of them runs; once none runs, the next
    to start writes a new one."""
    token_file = tmp_path / ".local" / "state" / "sheepcrm-mcp" / "http-token"  # the default, under this HOME
    env = sandbox_env(sandbox, tmp_path, HOME=str(tmp_path))
    ports = [free_port() for _ in range(2)]
    with contextlib.ExitStack() as stack:  # started together: they race for the file
        procs = [stack.enter_context(run_http(["--port", str(p)], env)) for p in ports]
        for port, proc in zip(ports, procs, strict=True):
            wait_healthy(f"http://127.0.0.1:{port}", proc)
        token = token_file.read_text().strip()
        assert len(token) >= 32 and stat.S_IMODE(token_file.stat().st_mode) == 0o600
        for port in ports:
            url = f"http://127.0.0.1:{port}"
            assert post(url, {"authorization": f"Bearer {token}"}).status_code == 200, port
            assert post(url, {"authorization": f"Bearer {'x' * 43}"}).status_code == 401
    port = free_port()
    with run_http(["--port", str(port)], env) as proc:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        fresh = token_file.read_text().strip()
        assert fresh != token  # none was running: a new token, the old one is worth nothing
        assert post(f"http://127.0.0.1:{port}", {"authorization": f"Bearer {fresh}"}).status_code == 200
        assert post(f"http://127.0.0.1:{port}", {"authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.slow
def test_another_users_token_file_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    """A token file another account made (so it knows the token) in a folder anyone can write: not used."""
    import pwd

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    planted = shared / "http-token"
    planted.write_text("planted-" + "p" * 40 + "\n")
    os.chown(planted, pwd.getpwnam(stranger()).pw_uid, -1)
    planted.chmod(0o666)
    port = free_port()
    env = sandbox_env(sandbox, tmp_path, SHEEPCRM_MCP_TOKEN_FILE=str(planted), HOME=str(tmp_path))
    with run_http(["--port", str(port)], env) as proc:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and b"chown" in err and b"Traceback" not in err
    assert planted.read_text() == "planted-" + "p" * 40 + "\n"


def test_short_tokens_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEEPCRM_MCP_TOKEN", "x" * 31)
    with pytest.raises(ConfigError, match=r"SHEEPCRM_MCP_TOKEN.*32"):
        load_settings()


def test_failed_attempts_are_throttled(shared_sandbox: SandboxServer, tmp_path: Path) -> None:
    with serve_http(shared_sandbox, tmp_path) as url:
        codes = [post(url, {"authorization": f"Bearer guess-{n:040d}"}).status_code for n in range(12)]
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
        locked = post(url, {"authorization": f"Bearer guess-{99:040d}"})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        # Someone's wrong guesses (behind a balancer: anyone's) never lock out the client holding the token.
        assert post(url, AUTH).status_code == 200


def guesses(url: str, forwarded_for: str | None = None, n: int = 12) -> list[int]:
    extra = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    return [
        post(url, {"authorization": f"Bearer guess-{i:040d}", **extra, **({} if forwarded_for else
             {"x-forwarded-for": f"203.0.113.{i}"})}).status_code
        for i in range(n)
    ]


@pytest.mark.slow
def test_a_client_cannot_name_its_own_address_to_escape_the_throttle(sandbox: SandboxServer, tmp_path: Path) -> None:
    """uvicorn took X-Forwarded-For from any request arriving from 127.0.0.1, so each guess could claim a new
    address. By default no proxy is trusted: the socket's address is the one counted."""
    port = free_port()
    with run_http(["--port", str(port)], sandbox_env(sandbox, tmp_path)) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        codes = guesses(url)  # each one claims another address
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]


@pytest.mark.slow
def test_behind_a_named_proxy_one_client_failing_does_not_lock_out_another(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    port = free_port()
    env = sandbox_env(sandbox, tmp_path, SHEEPCRM_FORWARDED_ALLOW_IPS="127.0.0.1", SHEEPCRM_MCP_TOKEN=HTTP_TOKEN)
    with run_http(["--port", str(port)], env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        assert guesses(url, "198.51.100.7")[10:] == [429, 429]  # the proxy names the client: it is throttled
        assert guesses(url, "198.51.100.8", n=3) == [401] * 3  # another client behind the same proxy is not
        assert post(url, {**AUTH, "x-forwarded-for": "198.51.100.7"}).status_code == 200


def test_sessions_per_client_are_capped(
    shared_sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_module, "MAX_SESSIONS_PER_CLIENT", 3)
    with serve_http(shared_sandbox, tmp_path) as url:
        sessions = [post(url, AUTH) for _ in range(3)]
        assert all(r.status_code == 200 for r in sessions)
        assert post(url, AUTH).status_code == 429
        ended = httpx.delete(url + "/mcp", headers={**AUTH, "mcp-session-id": sessions[0].headers["mcp-session-id"]})
        assert ended.status_code == 200
        assert post(url, AUTH).status_code == 200  # a closed session frees its place


# --- settings ------------------------------------------------------------------------------------

HOSTILE_ENV = """SHEEPCRM_CONFIRM=none
SHEEPCRM_BASE_URL=https://attacker.example
SHEEPCRM_V1_BASE_URL=https://attacker.example
SHEEPCRM_AUDIT_LOG=/tmp/elsewhere.jsonl
SHEEPCRM_READ_ONLY=false
SHEEPCRM_TOOLSETS=all
SHEEPCRM_MCP_TOKEN=attacker-known-token-0123456789abcdef
SHEEPCRM_API_KEY=from-the-file
SHEEPCRM_BUCKET=filebucket
SHEEPCRM_TIMEOUT=7
"""


def clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [k for k in os.environ if k.startswith("SHEEPCRM_")]:
        monkeypatch.delenv(name)


def test_a_dotenv_in_the_launch_folder_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_env(monkeypatch)
    (tmp_path / ".env").write_text(HOSTILE_ENV)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.confirm == "elicit" and settings.base_url == "https://sls-api.sheepcrm.com"
    assert settings.api_key is None and settings.mcp_token is None


def test_a_named_env_file_cannot_set_security_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clear_env(monkeypatch)
    env_file = tmp_path / "my.env"
    env_file.write_text(HOSTILE_ENV)
    monkeypatch.setenv("SHEEPCRM_TIMEOUT", "9")  # the real environment wins over the file
    settings = load_settings(env_file)
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "from-the-file"
    assert settings.bucket == "filebucket" and settings.timeout == 9
    assert settings.confirm == "elicit" and settings.base_url == "https://sls-api.sheepcrm.com"
    assert settings.mcp_token is None and str(settings.audit_log) != "/tmp/elsewhere.jsonl"
    assert "SHEEPCRM_CONFIRM" in capsys.readouterr().err
    monkeypatch.setenv("SHEEPCRM_CONFIRM", "page")  # from the environment it counts
    assert load_settings(env_file).confirm == "page"


@pytest.mark.parametrize("url", ["http://attacker.example", "http://10.0.0.5:8080", "ftp://x"])
def test_non_loopback_upstreams_need_https(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    clear_env(monkeypatch)
    monkeypatch.setenv("SHEEPCRM_BASE_URL", url)
    with pytest.raises(ConfigError, match="SHEEPCRM_BASE_URL"):
        load_settings()
    with socket.socket() as mine:  # loopback, served by this user (the sandbox)
        mine.bind(("127.0.0.1", 0))
        mine.listen()
        sandbox = f"http://127.0.0.1:{mine.getsockname()[1]}"
        monkeypatch.setenv("SHEEPCRM_BASE_URL", sandbox)
        assert load_settings().base_url == sandbox


@pytest.mark.slow
def test_the_binary_ignores_a_dotenv_in_its_folder(sandbox: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(HOSTILE_ENV)
    with run_binary(["doctor"], sandbox_env(sandbox, tmp_path), cwd=tmp_path) as proc:
        out, _ = proc.communicate(timeout=60)
    assert b"confirm=elicit" in out and b"attacker" not in out and proc.returncode == 0




@pytest.mark.parametrize("held", [
    "-----BEGIN OPENSSH PRIVATE KEY-----\nthe-persons-key\n-----END OPENSSH PRIVATE KEY-----\n",
    "a" * 43 + "\nsecond line\n",
    "notes\n",
])
def test_a_token_file_that_holds_something_else_is_never_overwritten(tmp_path: Path, held: str) -> None:
    """SHEEPCRM_MCP_TOKEN_FILE names a private file of the person's that is not a token file (their SSH key): the
    server refuses to start and leaves the file, and its folder, as they were."""
    folder = tmp_path / ".ssh"
    folder.mkdir(mode=0o700)
    key = folder / "id_test"
    key.write_text(held)
    key.chmod(0o600)
    with pytest.raises(ConfigError, match=f"token file {key} already holds something other than a bearer token"):
        http_module.generated_token(key)
    assert key.read_text() == held and sorted(folder.iterdir()) == [key]
    key.write_text("")  # an empty file, or one holding a token this server wrote, is the token file
    first = http_module.generated_token(key)
    assert key.read_text() == first + "\n"
