"""Metrics (/metrics, SHEEPCRM_METRICS=1) and traces (OpenTelemetry) of a running server: off by default, counted
after a known workload, served without the bearer token like /healthz, nothing about a person in any label or
span attribute, and nothing of either loaded on stdio."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import AUTH, CANARY_KEY, REPO, approve, delta, http_session, sandbox_env, scrape, serve_http

SEARCH_429 = "429=0.01:1:^/search/"  # every search answers 429 (Retry-After 0.01 s): read, retried, refused


def searches(sb: SandboxServer) -> int:
    return sum(1 for r in sb.request_log if r.path.startswith("/search/"))


@pytest.fixture(scope="module")
def metrics_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SandboxServer, Path]]:
    tmp = tmp_path_factory.mktemp("metrics")
    # The scripted client's form approves: the person's own file would say SHEEPCRM_HTTP_CLIENT_APPROVALS=true.
    with SandboxServer(key=CANARY_KEY, faults=[SEARCH_429]) as sb, \
            serve_http(sb, tmp, metrics=True, http_client_approvals=True) as url:
        yield url, sb, tmp


async def test_the_counters_match_a_known_workload(metrics_site: tuple[str, SandboxServer, Path]) -> None:
    url, sb, _ = metrics_site
    facts = sb.store.demo_facts()
    before, searched = scrape(url), searches(sb)
    async with http_session(url, elicitation_callback=approve) as client:
        for _ in range(3):
            assert not (await client.call_tool("list_tasks", {})).is_error
        assert (await client.call_tool("get_contact", {"uri": "/demo/person/nope/"})).is_error
        assert (await client.call_tool("get_contact", {"nonsense": 1})).is_error
        assert (await client.call_tool("search_contacts", {"query": "austen"})).is_error  # 429 every time
        done = await client.call_tool("update_task", {"uid": facts["my_open_task_uid"], "action": "complete"})
        assert done.structured_content["status"] == "applied"
    after = scrape(url)
    calls = "sheepcrm_mcp_tool_calls_total"
    assert delta(before, after, calls, tool="list_tasks", profile="local", outcome="ok") == 3
    assert delta(before, after, calls, tool="get_contact", profile="local", outcome="error") == 2
    assert delta(before, after, calls, tool="search_contacts", profile="local", outcome="error") == 1
    assert delta(before, after, calls, tool="update_task", profile="local", outcome="ok") == 1
    assert delta(before, after, "sheepcrm_mcp_tool_call_seconds_count", tool="list_tasks", profile="local") == 3
    errors = "sheepcrm_mcp_tool_errors_total"
    assert delta(before, after, errors, tool="search_contacts", kind="RateLimitedError") == 1
    assert delta(before, after, errors, tool="get_contact", kind="invalid_arguments") == 1  # unknown argument
    assert delta(before, after, errors, tool="get_contact", kind="Refusal") == 1  # no such contact
    attempts = searches(sb) - searched  # every try the sandbox answered 429: the first, then the retries
    assert attempts >= 1
    assert delta(before, after, "sheepcrm_mcp_upstream_events_total", event="rate_limited") == attempts
    assert delta(before, after, "sheepcrm_mcp_upstream_events_total", event="retry") == attempts - 1
    text = httpx.get(url + "/metrics").text
    people = [facts[k] for k in facts if isinstance(facts[k], str) and ("@" in facts[k] or "/" in facts[k])]
    assert people and not [p for p in people if p in text]  # no uri or email of anyone in any label
    assert "austen" not in text.lower()


def test_metrics_are_off_by_default(tmp_path: Path, shared_sandbox: SandboxServer) -> None:
    with serve_http(shared_sandbox, tmp_path) as url:
        assert httpx.get(url + "/metrics").status_code == 401  # not served: the bearer token guards every path
        assert httpx.get(url + "/metrics", headers=AUTH).status_code == 404
        assert httpx.get(url + "/healthz").status_code == 200


async def test_page_approvals_are_counted(tmp_path: Path) -> None:
    """asked when a new approval is created (not when the same request is repeated), approved when decided."""
    with SandboxServer(key=CANARY_KEY) as sb, serve_http(sb, tmp_path, metrics=True, confirm="page") as url:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        before = scrape(url)
        async with http_session(url) as client:
            first = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
            again = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
            assert first.structured_content["status"] == again.structured_content["status"] == "approval_required"
            assert url.opened
            person = approve_link(url.opened[-1])
            assert person.status_code == 200
            done = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
            assert done.structured_content["status"] == "applied"
        after = scrape(url)
    assert delta(before, after, "sheepcrm_mcp_approvals_total", event="asked") == 1
    assert delta(before, after, "sheepcrm_mcp_approvals_total", event="approved") == 1
    assert delta(before, after, "sheepcrm_mcp_approvals_total", event="rejected") == 0


def approve_link(link: str) -> httpx.Response:
    from tests.helpers import person_decides

    return person_decides(link)


async def test_traces_join_the_call_the_gate_and_the_upstream_request(tmp_path: Path) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # what SHEEPCRM_OTEL=1 does, with OTLP instead of memory
    with SandboxServer(key=CANARY_KEY) as sb, serve_http(sb, tmp_path, http_client_approvals=True) as url:
        facts = sb.store.demo_facts()
        async with http_session(url, elicitation_callback=approve) as client:
            done = await client.call_tool("update_task", {"uid": facts["my_open_task_uid"], "action": "complete"})
        assert done.structured_content["status"] == "applied"
    spans = exporter.get_finished_spans()
    calls = [s for s in spans if s.name == "tools/call update_task"]  # two rounds: asking, then the answer
    assert len(calls) == 2, [s.name for s in spans]
    mine = [s for s in spans if s.context.trace_id in {c.context.trace_id for c in calls}]
    names = {s.name for s in mine}
    assert {"gate ask", "gate commit", "sheepcrm GET", "sheepcrm PUT"} <= names, names
    commit = next(s for s in mine if s.name == "gate commit")
    assert commit.attributes is not None and commit.attributes["sheepcrm_mcp.write.status"] == "applied"
    shown = json.dumps([dict(s.attributes or {}) for s in spans]) + " ".join(s.name for s in spans)
    people = [facts[k] for k in facts if isinstance(facts[k], str) and len(facts[k]) > 6]
    assert people and not [p for p in people if p in shown]  # no uid, uri or email in any span


@pytest.mark.slow  # the default run's start-up guard (tests/app/test_cli_smoke.py) checks both are deferred
def test_stdio_loads_neither_prometheus_nor_the_otel_sdk(tmp_path: Path, shared_sandbox: SandboxServer) -> None:
    code = (
        "import sys; from sheepcrm_mcp.assembly import build_app; from sheepcrm_mcp.server.settings import Settings;"
        "build_app(Settings());"
        "print(sorted(m for m in sys.modules if m.startswith(('prometheus_client', 'opentelemetry.sdk'))))"
    )
    env = sandbox_env(shared_sandbox, tmp_path)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    env["SHEEPCRM_METRICS"] = "1"  # the same check can fail: with metrics on, prometheus_client is loaded
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert "prometheus_client" in done.stdout
