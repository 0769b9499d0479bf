"""Settings: environment (prefix SHEEPCRM_), CLI flags, or a .env file the user names with --env-file.

No .env is read unless it is named: clients start the server in whatever folder the person has
open, and a cloned repository must not be able to switch approvals off or send the key elsewhere.
Even a named file cannot set the security settings (SECURITY); those that decide who approves, where approvals
live or which file is written (OWN_FILE_ONLY) count only from the person's own settings file. A missing or malformed
setting fails at start with one line naming the variable.
"""

from __future__ import annotations

import hmac
import io
import os
import re
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from sheepcrm_mcp.server import __version__
from sheepcrm_mcp.server.files import account_home
from sheepcrm_mcp.sheepcrm.config import ClientConfig
from sheepcrm_mcp.sheepcrm.loopback import listeners
from sheepcrm_mcp.sheepcrm.scope import BUCKET_RE

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Settings a file cannot set: approvals, where the key is sent, what is audited where, what is exposed.
SECURITY = (
    "confirm",
    "base_url",
    "v1_base_url",
    "https_proxy",
    "browser",
    "audit_log",
    "read_only",
    "toolsets",
    "mcp_token",
    "mcp_token_file",
    "http_client_approvals",
    "transport",
    "host",
    "http_allowed_hosts",
    "http_allowed_origins",
    "approval_port",
    "forwarded_allow_ips",
    "redis_url",
    "request_state_key",
    "request_state_old_key",
    *(HOSTED := (  # hosted mode: who signs in, with which roles
        "auth",
        "oauth_issuer",
        "oauth_resource",
        "oauth_jwks_url",
        "oauth_scopes",
        "oauth_roles_claim",
        "oauth_subject_claim",
        "oauth_staff_roles",
        "oauth_helpdesk_roles",
        "oauth_member_roles",
        "helpdesk_writes",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_signin_scope",
        "oauth_approver_roles",
        "oauth_profile",
        "oauth_tenant",
        "oauth_v1_issuer",
        "oauth_audiences",
        "oauth_introspection_client_id",
        "oauth_introspection_client_secret",
        "public_url",
    )),
    "delete_window",
    "metrics",
    "otel",
)


# Settings whose value counts only when the person's own settings file gives it (or, when it gives none, only at the
# default): hosted mode and everything that decides who signs in and with which roles (whoever runs the identity
# provider, or can name it, approves writes), the shared store and the key that seals request state (whoever runs
# that Redis, or holds that key, decides approvals), where a generated token is written (a file it names is
# overwritten), what is served without the bearer token or trusted from a proxy, where traces go, and how long a
# created contact stays deletable. A client's config (a cloned repository's .mcp.json, .vscode/mcp.json,
# .cursor/mcp.json) sets the environment and flags the server starts with, so neither counts for these
# (docs/SECURITY.md).
OWN_FILE_ONLY = (
    *HOSTED,
    "redis_url",
    "request_state_key",
    "request_state_old_key",
    "mcp_token_file",
    "forwarded_allow_ips",
    "http_allowed_hosts",
    "http_allowed_origins",
    "approval_port",
    "metrics",
    "otel",
    "delete_window",
)
# Of those, the ones where a value below the own file's (or the default) is stricter and counts from anywhere.
LOWER_IS_STRICTER = ("delete_window",)


def _default_audit_log() -> Path:
    return Path.home() / ".local" / "state" / "sheepcrm-mcp" / "audit.jsonl"


PREFIX = "SHEEPCRM_"


def _from_environment(names: Iterable[str]) -> dict[str, str]:
    """SHEEPCRM_<FIELD> (any case) for each field name, as given (each field's validator parses it)."""
    env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(PREFIX)}
    return {name: env[PREFIX + name.upper()] for name in names if PREFIX + name.upper() in env}


class Settings(BaseModel):
    """Given values, then the environment (SHEEPCRM_<FIELD>). Files are read by load_settings (the person's own
    file, a named --env-file) and given as values."""

    model_config = ConfigDict(extra="ignore")

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**_from_environment(type(self).model_fields), **values})

    api_key: SecretStr | None = Field(default=None, description="sheepCRM API key (Bearer token)")
    bucket: str = Field(default="", description="sheepCRM bucket (flock) this server may touch")
    base_url: str = "https://sls-api.sheepcrm.com"
    v1_base_url: str = "https://api.sheepcrm.com"
    https_proxy: str = Field(
        default="", description="proxy to sheepCRM; only from your own settings file (HTTPS_PROXY is ignored)"
    )
    browser: str = Field(
        default="",
        description="command that opens the approval page (%s: the file; default: the desktop's opener); "
        "only from your own settings file ($BROWSER is ignored)",
    )
    read_only: bool = False
    toolsets: tuple[str, ...] = ("all",)  # checked against the catalogue at assembly
    confirm: Literal["elicit", "page", "none"] = "elicit"
    audit_log: Path = Field(default_factory=_default_audit_log)
    timeout: float = Field(default=15.0, gt=0, le=300, description="per-request read timeout, seconds")
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    max_concurrency: int = Field(default=8, ge=1, le=64)
    retry_attempts: int = Field(default=4, ge=1, le=10, description="tries per read, first one included")
    retry_budget: float = Field(default=20.0, gt=0, le=300, description="seconds a read may spend retrying")
    retry_wait_max: float = Field(
        default=5.0, gt=0, le=60, description="longest backoff between tries (a wait sheepCRM asks for is kept)"
    )
    cache_ttl: float = Field(default=5.0, ge=0, le=300, description="seconds a read is reused; 0 disables")
    call_deadline: float = Field(default=60.0, gt=0, le=600, description="seconds a read tool call may take")
    max_body: int = Field(default=8_000_000, ge=10_000, description="largest sheepCRM answer accepted, bytes")
    confirm_timeout: float = Field(default=300.0, gt=0, le=3600, description="seconds to wait for a person")
    mcp_token: SecretStr | None = Field(default=None, description="bearer token HTTP clients must send")
    mcp_token_file: Path | None = Field(default=None, description="where a generated bearer token is written")
    transport: Literal["stdio", "http"] = Field(
        default="stdio", description="stdio, or http (streamable HTTP); http only from your own settings file"
    )
    host: str = Field(
        default="127.0.0.1", min_length=1,
        description="HTTP bind address; one other than loopback only from your own settings file",
    )
    http_client_approvals: bool = Field(
        default=False,
        description="over HTTP, the client's own answer to the confirmation (its form, or a link it was handed) "
        "counts as the person's approval; off: the approval page opened in the person's browser decides. Only from "
        "your own settings file",
    )
    http_allowed_hosts: tuple[str, ...] = ()
    http_allowed_origins: tuple[str, ...] = ()
    approval_port: int = Field(default=0, ge=0, le=65535, description="loopback port of the approval page")
    forwarded_allow_ips: tuple[str, ...] = Field(
        default=(), description="proxies whose X-Forwarded-For names the client (none: the socket's address)"
    )
    # Hosted mode (SHEEPCRM_AUTH=oauth, HTTP only): see docs/HOSTING.md.
    auth: Literal["token", "oauth"] = "token"
    oauth_issuer: str = Field(default="", description="the identity provider's issuer URL, exactly as it states it")
    oauth_resource: str = Field(default="", description="public URL of this server's /mcp (the tokens' audience)")
    oauth_jwks_url: str = Field(default="", description="JWKS address; found in the issuer's metadata when empty")
    oauth_scopes: tuple[str, ...] = ("sheepcrm",)
    oauth_roles_claim: str = Field(default="roles", min_length=1, description="claim (or dotted path) with roles")
    oauth_subject_claim: str = Field(default="sub", min_length=1, description="claim naming the person (Entra: oid)")
    oauth_staff_roles: tuple[str, ...] = ("staff",)
    oauth_helpdesk_roles: tuple[str, ...] = ("helpdesk",)
    oauth_member_roles: tuple[str, ...] = ("member",)
    helpdesk_writes: tuple[str, ...] = ("set_attendance", "update_task")
    oauth_client_id: str = Field(default="", description="the approval page's client at the provider (sign-in)")
    oauth_client_secret: SecretStr | None = Field(default=None, description="that client's secret, if confidential")
    oauth_signin_scope: str = Field(default="openid email profile", description="scope the approval page asks for")
    oauth_approver_roles: tuple[str, ...] = ()
    oauth_profile: Literal["standard", "entra"] = Field(
        default="standard", description="what the provider's access tokens look like: RFC 9068, or Entra ID's"
    )
    oauth_tenant: str = Field(default="", description="Entra ID: the tenant id every token's tid must name")
    oauth_v1_issuer: str = Field(default="", description="Entra ID: also accept v1 tokens of this issuer")
    oauth_audiences: tuple[str, ...] = Field(
        default=(), description="further audiences a token may name (Entra: Application ID URI, client id)"
    )
    oauth_introspection_client_id: str = Field(
        default="", description="client that introspects opaque access tokens (RFC 7662); off when empty"
    )
    oauth_introspection_client_secret: SecretStr | None = Field(default=None, description="that client's secret")
    api_key_staff: SecretStr | None = Field(default=None, description="sheepCRM key of the staff profile")
    api_key_helpdesk: SecretStr | None = Field(default=None, description="sheepCRM key of the helpdesk profile")
    api_key_member: SecretStr | None = Field(default=None, description="sheepCRM key of the member profile")
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis shared by replicas: approvals, audit stream, rate limits (redis:// or rediss:// for "
        "TLS; user:password@ for an ACL user)",
    )
    request_state_key: SecretStr | None = Field(
        default=None, description="seals 2026-07-28 request state; the same on every replica (32+ characters)"
    )
    request_state_old_key: SecretStr | None = Field(
        default=None, description="the previous request-state key while a new one rolls out (still unseals)"
    )
    public_url: str = Field(
        default="", description="address people reach the replicas at (the balancer); approval pages live under it"
    )
    metrics: bool = Field(default=False, description="serve Prometheus metrics at /metrics, next to /healthz")
    otel: bool = Field(default=False, description="export OpenTelemetry traces by OTLP (OTEL_* variables)")
    rate_limit: int = Field(default=0, ge=0, le=100_000, description="calls a minute per user and tool; 0 = off")
    delete_window: float = Field(
        default=3600.0,
        ge=0,
        le=7 * 86400,
        description="seconds after create_contact during which delete_contact may delete what it created; 0 = never",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if value and not BUCKET_RE.fullmatch(value):
            raise ValueError("must be letters, digits, '-' or '_' (1-64 characters), e.g. 'demo'")
        return value

    @field_validator("base_url", "v1_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local sandbox)")
        if value.startswith("http://") and (urlsplit(value).hostname or "") not in LOOPBACK_HOSTS:
            raise ValueError("must use https:// (http:// is accepted only for a loopback sandbox)")
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// on loopback), e.g. https://mcp.example.org")
        if value.startswith("http://") and (urlsplit(value).hostname or "") not in LOOPBACK_HOSTS:
            raise ValueError("must use https:// (http:// is accepted only on loopback), e.g. https://mcp.example.org")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else ""
        if value is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be redis://[user:password@]host:port/db, rediss://... (TLS) or unix:///path.sock")
        return value

    @field_validator("request_state_key", "request_state_old_key")
    @classmethod
    def _state_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "must be at least 32 characters (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return value

    @field_validator("mcp_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "must be at least 32 characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return value

    @field_validator("oauth_issuer", "oauth_resource", "oauth_jwks_url", "oauth_v1_issuer")
    @classmethod
    def _oauth_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL (http:// only for a local test provider)")
        return value

    @field_validator(
        "http_allowed_hosts",
        "http_allowed_origins",
        "forwarded_allow_ips",
        "oauth_scopes",
        "oauth_staff_roles",
        "oauth_helpdesk_roles",
        "oauth_member_roles",
        "oauth_approver_roles",
        "oauth_audiences",
        "helpdesk_writes",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        return tuple(str(i).strip() for i in items if str(i).strip())

    @field_validator("toolsets", mode="before")
    @classmethod
    def _toolsets(cls, value: object) -> tuple[str, ...]:
        names = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        chosen = tuple(dict.fromkeys(str(n).strip() for n in names if str(n).strip()))
        if not chosen:
            raise ValueError("name at least one toolset, or 'all'")
        return chosen

    def require_credentials(self) -> None:
        """Fail with one clear line when the upstream cannot be used."""
        if self.api_key is None or not self.api_key.get_secret_value():
            raise ConfigError("SHEEPCRM_API_KEY is not set: put your sheepCRM API key in it (or use --sandbox)")
        if not self.bucket:
            raise ConfigError("SHEEPCRM_BUCKET is not set: name your sheepCRM bucket, e.g. SHEEPCRM_BUCKET=demo")

    def without_secrets(self) -> Settings:
        """A copy with every secret removed: what tools, resources and prompts are given (they read through the
        client they are handed and cannot build another from these settings)."""
        return self.model_copy(update={name: None for name, value in self if isinstance(value, SecretStr)})

    def secret_values(self) -> list[str]:
        """Every secret these settings hold (keys, tokens, the Redis URL, the page's client secret): for scrubbing."""
        return [v.get_secret_value() for _, v in self if isinstance(v, SecretStr) and v.get_secret_value()]

    def subject_claim(self) -> str:
        """The claim that names a person: Entra's `oid` with the entra profile (its `sub` differs per application)."""
        if self.oauth_profile == "entra" and self.oauth_subject_claim == "sub":
            return "oid"
        return self.oauth_subject_claim

    def request_state_keys(self) -> list[str]:
        """The keys that seal (the first) and unseal (all) 2026-07-28 request state; [] = one made per process."""
        return [k.get_secret_value() for k in (self.request_state_key, self.request_state_old_key) if k is not None]

    def public_address(self) -> str:
        """Where people reach this server: SHEEPCRM_PUBLIC_URL, or in hosted mode the resource URL without /mcp."""
        return self.public_url or self.oauth_resource.removesuffix("/").removesuffix("/mcp")

    def profile_key(self, profile: str) -> SecretStr | None:
        """The sheepCRM key a hosted profile uses: its own, or for staff the plain SHEEPCRM_API_KEY."""
        own = {"staff": self.api_key_staff, "helpdesk": self.api_key_helpdesk, "member": self.api_key_member}[profile]
        if own is not None and own.get_secret_value():
            return own
        return self.api_key if profile == "staff" else None

    def client_config(self) -> ClientConfig:
        """What the sheepCRM client needs from these settings."""
        self.require_credentials()
        assert self.api_key is not None
        return ClientConfig(
            api_key=self.api_key.get_secret_value(),
            bucket=self.bucket,
            base_url=self.base_url,
            v1_base_url=self.v1_base_url,
            user_agent=f"sheepcrm-mcp/{__version__}",
            application=f"sheepcrm-mcp/sheepcrm-mcp/{__version__}",
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            max_concurrency=self.max_concurrency,
            retry_attempts=self.retry_attempts,
            retry_budget=self.retry_budget,
            retry_wait_max=self.retry_wait_max,
            cache_ttl=self.cache_ttl,
            max_body=self.max_body,
            proxy=self.https_proxy or None,
        )


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def from_env_file(path: Path) -> dict[str, Any]:
    """The non-security settings of a .env file the user named; the environment wins over it."""
    if not path.is_file():
        raise ConfigError(f"--env-file {path}: no such file")
    names = set(Settings.model_fields)
    out: dict[str, Any] = {}
    ignored = []
    from dotenv import dotenv_values  # only where a file is read: a start without one does not load it

    for key, value in dotenv_values(path).items():
        name = key.upper().removeprefix("SHEEPCRM_").lower()
        if not key.upper().startswith("SHEEPCRM_") or name not in names or value is None:
            continue
        if name in SECURITY:
            ignored.append(key)
        elif key.upper() not in {k.upper() for k in os.environ}:
            out[name] = value
    if ignored:
        print(
            f"sheepcrm-mcp: ignored {', '.join(sorted(ignored))} in {path}: security settings come only from "
            "the environment or flags",
            file=sys.stderr,
        )
    return out


# ---- settings only the person's own file may set --------------------------------------------------------
#
# A client starts the server with whatever environment and arguments its config names, and a project-scoped
# config (.mcp.json, .vscode/mcp.json, .cursor/mcp.json in a cloned repository) names them too. So the settings
# that would hand the key to someone else or let writes through without a person (an upstream outside sheepCRM's
# hosts, a proxy, SHEEPCRM_CONFIRM=none, the program that opens the approval page and so reads its one-time launch
# token: SHEEPCRM_BROWSER, never $BROWSER) count only when the person's own settings file says the same: a file
# at a fixed place in their home folder (found from the account database, not from $HOME or $XDG_CONFIG_HOME,
# which a config could set), owned by them, 0600, in a folder only they can write. A loopback upstream (the
# sandbox) is allowed from anywhere only while a process of this user listens on its port (not another local
# account's), and the client checks that again on every new connection (sheepcrm/loopback.py); whenever an
# upstream outside sheepCRM or approvals off is in effect, the session's first answer says so.

SHEEPCRM_DOMAIN = "sheepcrm.com"
USER_FILE_HINT = "~/.config/sheepcrm-mcp/settings.env"


def user_settings_file() -> Path:
    """The person's own settings file: in their account's home folder, whatever the environment says."""
    return account_home() / ".config" / "sheepcrm-mcp" / "settings.env"


_HOSTNAME = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def is_sheepcrm(url: str) -> bool:
    """An https address at sheepCRM's own hosts (sheepcrm.com and its subdomains): a plain host name of letters,
    digits and hyphens (no escaped dot, percent sign or other character a resolver or another URL parser could read
    otherwise) and no user name or password before it."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return (
        parts.scheme == "https"
        and parts.username is None
        and parts.password is None
        and _HOSTNAME.match(host) is not None
        and (host == SHEEPCRM_DOMAIN or host.endswith("." + SHEEPCRM_DOMAIN))
    )


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def read_user_file(path: Path) -> dict[str, str]:
    """The SHEEPCRM_* lines of the person's own settings file ({} when there is none). It must be a regular file
    owned by this user, readable by no one else (0600), in a folder no one else can write; otherwise nothing in
    it counts and the server says what to fix."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}); it must be a plain file, not a link") from None
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        folder = path.parent.stat()
        uid = os.getuid() if hasattr(os, "getuid") else info.st_uid
        if info.st_uid != uid or info.st_mode & 0o077 or not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} must be your own file, readable only by you: run chmod 600 {path}")
        if folder.st_uid not in (uid, 0) or folder.st_mode & 0o022:
            raise ConfigError(f"{path.parent} must be writable only by you: run chmod 700 {path.parent}")
        text = handle.read()
    from dotenv import dotenv_values

    return {k.upper(): v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def loopback_is_ours(owners: dict[int, list[int]] | None, url: str) -> bool:
    """Whether a loopback upstream is served by this user: something listens on its port and every listener
    on that port is this user's (the sandbox the person started), not another local account's. `owners`: the
    listeners' owners by port (loopback.listeners)."""
    found = (owners or {}).get(_port(url))
    return bool(found) and all(uid == os.getuid() for uid in found or ())


def needs_own_file(settings: Settings) -> dict[str, str]:
    """The settings in effect that only the person's own file may set: variable -> value. A loopback upstream
    counts as sheepCRM's only while this user's own process (the sandbox) listens there."""
    found: dict[str, str] = {}
    if settings.confirm == "none":
        found["SHEEPCRM_CONFIRM"] = "none"
    urls = {name: getattr(settings, name) for name in ("base_url", "v1_base_url")}
    loopback = [url for url in urls.values() if not is_sheepcrm(url) and is_loopback(url)]
    owners = listeners(*{_port(url) for url in loopback}) if loopback else None
    for name, url in urls.items():
        if not is_sheepcrm(url) and not (is_loopback(url) and loopback_is_ours(owners, url)):
            found[f"SHEEPCRM_{name.upper()}"] = url
    if settings.https_proxy:
        found["SHEEPCRM_HTTPS_PROXY"] = settings.https_proxy
    if settings.browser:
        found["SHEEPCRM_BROWSER"] = settings.browser
    if settings.http_client_approvals:
        found["SHEEPCRM_HTTP_CLIENT_APPROVALS"] = "true"
    return found


_TRUE = ("1", "true", "yes", "on")


def _same(own: str | None, value: str) -> bool:
    """Whether the person's own file's `own` says `value` (an address without its final /, a yes in any form)."""
    if own is None:
        return False
    if value == "true":
        return own.strip().lower() in _TRUE
    return own.strip().rstrip("/") == value.rstrip("/")


def _own_view(own: dict[str, str]) -> dict[str, Any]:
    """What the person's own file alone makes of each OWN_FILE_ONLY setting (the default where it says nothing);
    {} when its values do not parse (then nothing but the defaults matches them)."""
    given = {name: own[f"SHEEPCRM_{name.upper()}"] for name in OWN_FILE_ONLY if f"SHEEPCRM_{name.upper()}" in own}
    values = {
        name: given.get(name, Settings.model_fields[name].get_default(call_default_factory=True))
        for name in OWN_FILE_ONLY
    }
    try:
        view = Settings(**values)
    except ValidationError:
        return {}
    return {name: getattr(view, name) for name in OWN_FILE_ONLY}


def _equal(mine: Any, theirs: Any) -> bool:
    if isinstance(mine, SecretStr) and isinstance(theirs, SecretStr):
        return hmac.compare_digest(mine.get_secret_value().encode(), theirs.get_secret_value().encode())
    return bool(mine == theirs)


def own_only_refused(settings: Settings, own: dict[str, str]) -> list[str]:
    """The OWN_FILE_ONLY settings in effect that the person's own file does not give: variable=value lines to put
    there (a secret's value never shown)."""
    view = _own_view(own)
    refused = []
    for name in OWN_FILE_ONLY:
        value = getattr(settings, name)
        default = Settings.model_fields[name].get_default(call_default_factory=True)
        wanted = view.get(name, default)
        if _equal(value, wanted) or (name in LOWER_IS_STRICTER and value <= wanted):
            continue
        if isinstance(value, SecretStr):
            shown = "<the value you gave>"
        elif isinstance(value, tuple):
            shown = ",".join(value)
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        else:
            shown = "" if value is None else str(value)
        refused.append(f"SHEEPCRM_{name.upper()}={shown}")
    return refused


def check_own_only(settings: Settings, own: dict[str, str], own_file: Path) -> None:
    """Refuse to start when a setting only the person's own file may give (OWN_FILE_ONLY) has a value that file does
    not give: it came from the environment, a flag or a client's config, which a cloned repository can set (hosted
    mode against an identity provider another local account runs, a Redis it runs, a token file that is the person's
    SSH key)."""
    refused = own_only_refused(settings, own)
    if refused:
        raise ConfigError(
            f"{', '.join(r.split('=')[0] for r in refused)} decide who may approve writes, where approvals and "
            "request state are kept, or which file is written, so they count only from your own settings file "
            f"{own_file} (yours, chmod 600), not from flags, the environment or a client's config, which a cloned "
            f"repository can set. If you meant them, put these lines there: {'; '.join(refused)}"
        )


def check_http(settings: Settings, own: dict[str, str], own_file: Path) -> None:
    """Serving over HTTP makes the server (and the person's key behind it) reachable by whoever holds its token: the
    transport, a bind address other than loopback and a token that is not generated here count only when the
    person's own file says the same. A cloned repository's client config can set flags and the environment, publish
    the token it sets, and have its own client (another local account, or anyone on the network) use the server."""
    if settings.transport != "http":
        return
    wanted = {"SHEEPCRM_TRANSPORT": "http"}
    if settings.host not in LOOPBACK_HOSTS:
        wanted["SHEEPCRM_HOST"] = settings.host
    refused = [f"{k}={v}" for k, v in wanted.items() if not _same(own.get(k), v)]
    if settings.mcp_token is not None and not hmac.compare_digest(
        own.get("SHEEPCRM_MCP_TOKEN", "").strip().encode(), settings.mcp_token.get_secret_value().encode()
    ):
        refused.append("SHEEPCRM_MCP_TOKEN=<that token>")  # never its value
    if refused:
        raise ConfigError(
            f"serving over HTTP makes this server and your sheepCRM key usable by whoever holds its token, so "
            f"{', '.join(r.split('=')[0] for r in refused)} count only from your own settings file {own_file} (yours, "
            f"chmod 600), not from flags, the environment or a client's config, which a cloned repository can set. "
            f"If you meant to serve over HTTP, put these lines there: {'; '.join(refused)} (or leave "
            "SHEEPCRM_MCP_TOKEN unset on loopback: a token is then generated into a file only you can read)"
        )


def git_tree(path: Path) -> Path | None:
    """The git working tree `path` lies in (the nearest folder above it holding `.git`: a folder, or the file a
    linked worktree has), or None."""
    for folder in Path(os.path.realpath(path)).parents:
        if (folder / ".git").exists():
            return folder
    return None


def check_audit_log(settings: Settings, own: dict[str, str], own_file: Path) -> None:
    """The audit log holds record data, and the ledger is kept beside it: a client's config (a cloned repository's
    .mcp.json) must not put them where they could be committed. A path that is relative (to the folder the client
    starts the server in) or inside a git working tree counts only from the person's own file; so does the default
    when $HOME (which a config can set) is not the account's home folder."""
    path = settings.audit_log
    if own.get("SHEEPCRM_AUDIT_LOG") and Path(own["SHEEPCRM_AUDIT_LOG"]).expanduser() == path.expanduser():
        return
    given = "audit_log" in settings.model_fields_set
    if not given and Path.home() == account_home():
        return  # the default, in the person's own home folder
    where = f"SHEEPCRM_AUDIT_LOG={path}" if given else f"the audit log {path} (the default under $HOME)"
    if not path.is_absolute():
        why = "is a relative path, so it lands in whatever folder the client starts the server in"
    elif (tree := git_tree(path)) is not None:
        why = f"is inside the git working tree {tree}"
    else:
        return
    raise ConfigError(
        f"{where} {why}: the audit log holds record data and the ledger is kept beside it, so they could be committed "
        "with that repository, and a cloned repository's client config can set it. Give an absolute path outside any "
        "git repository (or leave SHEEPCRM_AUDIT_LOG unset: ~/.local/state/sheepcrm-mcp/audit.jsonl), or set it in "
        f"your own settings file {own_file} (yours, chmod 600)"
    )


def default_token_file() -> Path:
    """Where a generated bearer token is kept when SHEEPCRM_MCP_TOKEN_FILE is not set (under $HOME)."""
    return Path.home() / ".local" / "state" / "sheepcrm-mcp" / "http-token"


def check_token_file(settings: Settings, own_file: Path) -> None:
    """The generated token's default file follows $HOME, which a client's config can set: when $HOME is not the
    account's home folder, the default counts only outside any git working tree (where the token could be
    committed with that repository), as for the audit log. SHEEPCRM_MCP_TOKEN_FILE itself comes only from the
    person's own file (OWN_FILE_ONLY), and an existing file there is never overwritten unless it holds a token
    (sheepcrm_mcp/http.py)."""
    if settings.transport != "http" or settings.mcp_token is not None or settings.mcp_token_file is not None:
        return
    if Path.home() == account_home():
        return
    path = default_token_file()
    if path.is_absolute() and git_tree(path) is None:
        return
    why = "is a relative path" if not path.is_absolute() else f"is inside the git working tree {git_tree(path)}"
    raise ConfigError(
        f"the bearer token file {path} (the default under $HOME) is not in your home folder and {why}: "
        "the token could be committed with that repository, and a cloned repository's client config can set $HOME. "
        f"Name the file in your own settings file {own_file} (SHEEPCRM_MCP_TOKEN_FILE=<absolute path>; yours, "
        "chmod 600)"
    )


def trust_notes(settings: Settings) -> list[str]:
    """What a person must know about this server before trusting its answers: approvals off, the key sent
    somewhere other than sheepCRM. Said in the first answer of every session (not only on stderr)."""
    notes = []
    if settings.confirm == "none":
        notes.append(
            "NOTICE: approvals are OFF on this server (SHEEPCRM_CONFIRM=none): write tools change sheepCRM without "
            "asking a person. Tell the person before using a write tool."
        )
    elsewhere = upstream_note(settings)
    if elsewhere:
        notes.append(f"{elsewhere} Tell the person.")
    return notes


def upstream_note(settings: Settings) -> str | None:
    """The notice that the key goes somewhere other than sheepCRM (a sandbox included), or None. Said in the first
    answer of every session and in every approval the person reads."""
    elsewhere = {
        f"SHEEPCRM_{name.upper()}": f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
        for name in ("base_url", "v1_base_url")
        if not is_sheepcrm(url := getattr(settings, name))
    }
    if not elsewhere:
        return None
    return (
        f"NOTICE: this server sends its sheepCRM API key to {', '.join(sorted(set(elsewhere.values())))} "
        f"({', '.join(elsewhere)}), not to sheepCRM ({SHEEPCRM_DOMAIN})."
    )


# Python reads these before any code of this server runs, and each can load code into its process: a folder searched
# before the standard library (a planted sitecustomize.py runs at start), another standard library, a user site with
# .pth files, a bytecode cache to load modules from, a startup file and an interactive prompt on stdin, a breakpoint
# hook. A client's config (a cloned repository's .mcp.json included) can set them, and code they load could switch
# approvals off or approve. `python -I` makes Python ignore them all; otherwise the server refuses to start when one
# is set, unless the person's own settings file says the same. That check runs after such code could have run (and
# could have removed the variable), so it catches a careless or copied config, not a determined one: docs/SECURITY.md.
CODE_VARIABLES = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "PYTHONPYCACHEPREFIX",
    "PYTHONPLATLIBDIR",
    "PYTHONSTARTUP",
    "PYTHONINSPECT",
    "PYTHONEXECUTABLE",
    "PYTHONBREAKPOINT",
)


def isolated_launch() -> str:
    """The launch line under which Python ignores every PYTHON* variable, the user site and the current folder."""
    return f"{sys.executable} -I -m sheepcrm_mcp"


def check_interpreter(user_file: Path | None = None) -> None:
    """Refuse to run when Python was started honouring a variable that loads code (CODE_VARIABLES), unless the
    person's own settings file sets it to the same value (a developer's own PYTHONPATH). Nothing to check under
    `python -I` (or -E): Python ignored them."""
    if sys.flags.ignore_environment:
        return
    found = {name: os.environ[name] for name in CODE_VARIABLES if os.environ.get(name)}
    if not found:
        return
    own_file = user_file or user_settings_file()
    own = read_user_file(own_file)
    refused = sorted(name for name, value in found.items() if own.get(name) != value)
    if refused:
        raise ConfigError(
            f"{', '.join(refused)} is set, and Python loads code from it into this server before the server starts; "
            "a cloned repository's client config can set it to switch approvals off. Remove it from the client's "
            f"config and environment, or launch the server as `{isolated_launch()}` (Python then ignores it); if "
            f"you set it yourself on purpose, write the same line in your own settings file {own_file} (yours, "
            "chmod 600)"
        )


# Lines of the person's own file that allow what a flag asks for, without asking for it themselves: a client that
# starts the server on stdio still gets stdio when the person's file allows HTTP.
ALLOWS_ONLY = ("SHEEPCRM_TRANSPORT", "SHEEPCRM_HOST")


def _from_user_file(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The person's own file: settings it sets that the environment does not (the environment wins), and the
    raw SHEEPCRM_* values it holds (to check the settings only it may set)."""
    raw = read_user_file(path)
    names = set(Settings.model_fields)
    environment = {k.upper() for k in os.environ}
    values = {
        key.removeprefix("SHEEPCRM_").lower(): value
        for key, value in raw.items()
        if key.startswith("SHEEPCRM_") and key.removeprefix("SHEEPCRM_").lower() in names and key not in environment
        and key not in ALLOWS_ONLY
    }
    return values, raw


def _environ(name: str) -> str | None:
    return next((v for k, v in os.environ.items() if k.upper() == name), None)


_CONFIRM_STRICTNESS = {"none": 0, "elicit": 1, "page": 2}


def _stricter_own(own: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """Where the person's own file is stricter than the environment, flags or a client's config, the file wins:
    SHEEPCRM_CONFIRM=page over elicit (or none), SHEEPCRM_READ_ONLY=true over false."""
    out: dict[str, Any] = {}
    mine = own.get("SHEEPCRM_CONFIRM", "").strip().lower()
    theirs = str(values.get("confirm", _environ("SHEEPCRM_CONFIRM") or "elicit")).strip().lower()
    if mine in _CONFIRM_STRICTNESS and _CONFIRM_STRICTNESS[mine] > _CONFIRM_STRICTNESS.get(theirs, 0):
        out["confirm"] = mine
    if own.get("SHEEPCRM_READ_ONLY", "").strip().lower() in ("1", "true", "yes", "on"):
        out["read_only"] = True
    return out


def load_settings(env_file: Path | None = None, *, user_file: Path | None = None, **overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one line per bad variable.

    Sources, later ones winning: the person's own file (`user_settings_file()`), a named --env-file (not its
    security settings), the environment, flags. What only the person's own file may set is then checked.
    """
    own_file = user_file or user_settings_file()
    values, own = _from_user_file(own_file)
    values.update(from_env_file(env_file) if env_file is not None else {})
    values.update(overrides)
    values.update(_stricter_own(own, values))
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            lines.append(f"SHEEPCRM_{field.upper()}: {err['msg']}")
        raise ConfigError("; ".join(lines)) from None
    refused = [f"{k}={v}" for k, v in needs_own_file(settings).items() if not _same(own.get(k), v)]
    if refused:
        raise ConfigError(
            f"{', '.join(refused)} would send the API key outside sheepCRM or let writes through without a person, "
            f"so it counts only in your own settings file {own_file} (yours, chmod 600), not from the environment, "
            "flags or a client's config, which a cloned repository can set"
        )
    check_own_only(settings, own, own_file)
    check_http(settings, own, own_file)
    check_audit_log(settings, own, own_file)
    check_token_file(settings, own_file)
    return settings
