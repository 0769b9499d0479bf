"""Start-up settings errors name the variable to fix."""

from __future__ import annotations

import pytest

from sheepcrm_mcp.assembly import build_app
from sheepcrm_mcp.server.settings import ConfigError, Settings, load_settings


def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEEPCRM_BUCKET", "no/slashes")
    with pytest.raises(ConfigError, match="SHEEPCRM_BUCKET"):
        load_settings()
    monkeypatch.setenv("SHEEPCRM_BUCKET", "demo")
    monkeypatch.setenv("SHEEPCRM_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="SHEEPCRM_TIMEOUT"):
        load_settings()
    monkeypatch.delenv("SHEEPCRM_TIMEOUT")
    monkeypatch.setenv("SHEEPCRM_TOOLSETS", "search,nope")
    with pytest.raises(ConfigError, match=r"SHEEPCRM_TOOLSETS.*nope"):
        build_app(load_settings())  # toolset names come from the catalogue, so assembly checks them
    monkeypatch.setenv("SHEEPCRM_TOOLSETS", "search, events")
    assert load_settings().toolsets == ("search", "events")


def test_missing_credentials_fail_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHEEPCRM_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="SHEEPCRM_API_KEY is not set"):
        Settings(bucket="demo", _env_file=None).require_credentials()  # type: ignore[call-arg]
