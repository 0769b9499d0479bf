"""Settings: environment (prefix SHEEPCRM_), a .env file, or CLI flags.

A missing or malformed setting fails at start with one line naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sheepcrm_mcp.server import __version__
from sheepcrm_mcp.sheepcrm import ClientConfig
from sheepcrm_mcp.sheepcrm.scope import BUCKET_RE


def _default_audit_log() -> Path:
    return Path.home() / ".local" / "state" / "sheepcrm-mcp" / "audit.jsonl"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHEEPCRM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    api_key: SecretStr | None = Field(default=None, description="sheepCRM API key (Bearer token)")
    bucket: str = Field(default="", description="sheepCRM bucket (flock) this server may touch")
    base_url: str = "https://sls-api.sheepcrm.com"
    v1_base_url: str = "https://api.sheepcrm.com"
    read_only: bool = False
    toolsets: Annotated[tuple[str, ...], NoDecode] = ("all",)  # checked against the catalogue at assembly
    confirm: Literal["elicit", "none"] = "elicit"
    audit_log: Path = Field(default_factory=_default_audit_log)
    timeout: float = Field(default=15.0, gt=0, le=300, description="per-request read timeout, seconds")
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    max_concurrency: int = Field(default=8, ge=1, le=64)
    retry_attempts: int = Field(default=4, ge=1, le=10, description="tries per read, first one included")
    retry_budget: float = Field(default=20.0, gt=0, le=300, description="seconds a read may spend retrying")
    retry_wait_max: float = Field(default=5.0, gt=0, le=60, description="longest single wait between tries")
    cache_ttl: float = Field(default=5.0, ge=0, le=300, description="seconds a read is reused; 0 disables")
    confirm_timeout: float = Field(default=300.0, gt=0, le=3600, description="seconds to wait for a person")
    mcp_token: SecretStr | None = Field(default=None, description="bearer token HTTP clients must send")
    http_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    http_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    approval_port: int = Field(default=0, ge=0, le=65535, description="loopback port of the approval page")
    redis_url: SecretStr | None = Field(
        default=None, description="Redis shared by replicas: approvals, audit stream, rate limits (redis://...)"
    )
    public_url: str = Field(
        default="", description="address people reach the replicas at (the balancer); approval pages live under it"
    )
    rate_limit: int = Field(default=0, ge=0, le=100_000, description="calls a minute per user and tool; 0 = off")

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
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// on loopback), e.g. https://mcp.example.org")
        return value.rstrip("/")

    @field_validator("http_allowed_hosts", "http_allowed_origins", mode="before")
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
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            max_concurrency=self.max_concurrency,
            retry_attempts=self.retry_attempts,
            retry_budget=self.retry_budget,
            retry_wait_max=self.retry_wait_max,
            cache_ttl=self.cache_ttl,
        )


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            lines.append(f"SHEEPCRM_{field.upper()}: {err['msg']}")
        raise ConfigError("; ".join(lines)) from None
