"""Fault injection: syntax, determinism, rates, and what a client sees for each kind."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from sheepcrm_mcp.sandbox import SandboxServer
from sheepcrm_mcp.sandbox.faults import FaultPlan, FaultRule, FaultSyntaxError


def test_parse_rules() -> None:
    rule = FaultRule.parse("429:0.5:^/search/")
    assert (rule.kind, rule.rate, rule.arg, rule.after) == ("429", 0.5, 1.0, False)
    assert rule.path is not None and rule.path.pattern == "^/search/"
    assert FaultRule.parse("latency=500:1").arg == 500.0
    assert FaultRule.parse("latency:1").arg == 200.0
    assert FaultRule.parse("500@after:0.1").after
    assert FaultRule.parse("timeout=2:1").arg == 2.0
    plan = FaultPlan.parse(["429:0.1,503:0.2", "drop:0.05:/booking/"], seed=7)
    assert [r.label for r in plan.rules] == ["429", "503", "drop"] and plan.seed == 7


@pytest.mark.parametrize("bad", ["429", "teapot:0.5", "429:2", "429:x", "409@after:1", "latency=fast:1", "500:1:("])
def test_parse_errors(bad: str) -> None:
    with pytest.raises(FaultSyntaxError):
        FaultRule.parse(bad)


def decisions(plan: FaultPlan, n: int = 400, method: str = "GET", path: str = "/search/v2/demo") -> list[str | None]:
    out = []
    for _ in range(n):
        rule = plan.decide(method, path).rule
        out.append(rule.label if rule else None)
    return out


def test_same_seed_same_decisions_and_rate() -> None:
    first = decisions(FaultPlan.parse(["429:0.5"], seed=3))
    assert first == decisions(FaultPlan.parse(["429:0.5"], seed=3))
    assert first != decisions(FaultPlan.parse(["429:0.5"], seed=4))
    assert 150 < first.count("429") < 250
    rare = decisions(FaultPlan.parse(["500:0.1"], seed=3), n=2000)
    assert 130 < rare.count("500") < 270


def test_write_only_kinds_and_paths() -> None:
    plan = FaultPlan.parse(["409:1", "500@after:1"], seed=1)
    assert plan.decide("GET", "/notifications/v2/demo/task/x").rule is None
    put = plan.decide("PUT", "/notifications/v2/demo/task/x").rule
    assert put is not None and put.kind == "409"
    scoped = FaultPlan.parse(["503:1:/segments/"])
    assert scoped.decide("GET", "/search/v2/demo").rule is None
    assert scoped.decide("GET", "/segments/v2/demo/all").rule is not None


def statuses(faults: list[str], n: int = 40, seed: int = 1) -> tuple[list[int], list[Any]]:
    with (
        SandboxServer(key="k", faults=faults, fault_seed=seed) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client,
    ):
        responses = [client.get("/search/v2/demo", params={"q": "jane"}) for _ in range(n)]
        assert client.get(server.v1_url + "/api/v1/ping/").status_code == 200  # ping is never faulted
        assert not any("retry-after" in r.headers for r in responses)  # EVIDENCE.md: no Retry-After
        return [r.status_code for r in responses], [
            (r.headers.get("x-rate-limit-remaining"), r.headers.get("x-rate-limit-reset")) for r in responses
        ]


def test_429_over_http_is_reproducible_with_rate_limit_headers() -> None:
    codes, limits = statuses(["429:0.5"])
    assert set(codes) == {200, 429}
    assert all(lim == ("0", "1") for code, lim in zip(codes, limits, strict=True) if code == 429)
    assert all(lim[0] != "0" for code, lim in zip(codes, limits, strict=True) if code == 200)
    assert codes == statuses(["429:0.5"])[0]
    assert codes != statuses(["429:0.5"], seed=2)[0]


def test_5xx_and_latency() -> None:
    with (
        SandboxServer(key="k", faults=["latency=150:1:/segments/", "503:1:/events/"]) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client,
    ):
        started = time.monotonic()
        assert client.get("/segments/v2/demo/all").status_code == 200
        assert time.monotonic() - started >= 0.15
        failed = client.get("/events/v2/demo/bookings/all")
        assert failed.status_code == 503 and failed.json()["error"] == "injected fault"
        assert [e.fault for e in server.request_log] == [None, "503"]


def test_drop_gives_a_protocol_error() -> None:
    with (
        SandboxServer(key="k", faults=["drop:1"]) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/search/v2/demo", params={"q": "jane"})


def test_timeout_makes_the_client_time_out_and_stops_cleanly() -> None:
    with (
        SandboxServer(key="k", faults=["timeout=30:1"]) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}, timeout=0.3) as client,
    ):
        with pytest.raises(httpx.ReadTimeout):
            client.get("/segments/v2/demo/all")
        started = time.monotonic()
    assert time.monotonic() - started < 5


def test_500_after_commits_the_write() -> None:
    with (
        SandboxServer(key="k", faults=["500@after:1:/complete$"]) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client,
    ):
        uid = server.store.demo_facts()["my_open_task_uid"]
        response = client.put(f"/notifications/v2/demo/task/{uid}/complete")
        assert response.status_code == 500
        task = server.store.get_record("journal", uid)
        assert task is not None and task.data["completed"] is True


def test_plain_500_does_not_commit_the_write() -> None:
    with (
        SandboxServer(key="k", faults=["500:1:/complete$"]) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client,
    ):
        uid = server.store.demo_facts()["my_open_task_uid"]
        assert client.put(f"/notifications/v2/demo/task/{uid}/complete").status_code == 500
        task = server.store.get_record("journal", uid)
        assert task is not None and task.data["completed"] is False


def test_drop_after_commits_the_write() -> None:
    with (
        SandboxServer(key="k", faults=["drop@after:1"]) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client,
    ):
        uri = server.store.demo_facts()["non_member_uri"]
        with pytest.raises(httpx.RemoteProtocolError):
            client.put(f"{server.v1_url}/api/v1{uri}", json={"postal_code": "EX1 1AA"})
        record = server.store.get(uri)
        assert record is not None and record.data["postal_code"] == "EX1 1AA"


def test_409_on_writes_only() -> None:
    with (
        SandboxServer(key="k", faults=["409:1"]) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client,
    ):
        uid = server.store.demo_facts()["my_open_task_uid"]
        assert client.get(f"/notifications/v2/demo/task/{uid}").status_code == 200
        assert client.put(f"/notifications/v2/demo/task/{uid}/complete").status_code == 409
