"""What the client needs to know: where sheepCRM is, which bucket, the key, and its patience."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """https:// anywhere; plain http:// only to this machine (a local sandbox): the key travels in every request."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return url
    raise ValueError(f"{url!r:.80} must start with https:// (http:// is accepted only for localhost/127.0.0.1)")


@dataclass(frozen=True, repr=False)
class ClientConfig:
    api_key: str
    bucket: str
    base_url: str = "https://sls-api.sheepcrm.com"
    v1_base_url: str = "https://api.sheepcrm.com"
    user_agent: str = "sheepcrm-mcp"
    application: str = "sheepcrm-mcp/sheepcrm-mcp/dev"  # the APPLICATION header: <agency>/<app>/<version>
    timeout: float = 15.0  # per-request read timeout, seconds
    connect_timeout: float = 5.0
    max_concurrency: int = 8
    retry_attempts: int = 4  # tries per read, the first one included
    retry_budget: float = 20.0  # seconds a read may spend retrying
    retry_wait_max: float = 5.0  # longest single wait between tries
    cache_ttl: float = 5.0  # seconds a read is reused; 0 disables
    max_body: int = 8_000_000  # largest answer accepted, bytes (counted while it streams in)
    proxy: str | None = None  # an HTTPS proxy the person's own settings file names; never one from the environment

    def __post_init__(self) -> None:
        check_base_url(self.base_url)
        check_base_url(self.v1_base_url)

    def __repr__(self) -> str:  # never show the key
        return f"ClientConfig(bucket={self.bucket!r}, base_url={self.base_url!r}, v1_base_url={self.v1_base_url!r})"
