"""Bearer-key auth and bucket checks, as sheepCRM answers them."""

from __future__ import annotations

import httpx
import pytest

from sheepcrm_mcp.sandbox import SandboxServer

V1 = "/api/v1/demo/"
V2 = "/segments/v2/demo/all"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdC1rZXk="}])
def test_bad_credentials(read_sandbox: SandboxServer, headers: dict[str, str]) -> None:
    with httpx.Client(headers=headers) as client:
        v1 = client.get(read_sandbox.url_for(V1))
        v2 = client.get(read_sandbox.url_for(V2))
    assert v1.status_code == 404 and "error" in v1.json()  # v1 hides bad credentials as not found
    assert v2.status_code == 401 and v2.json()["error"] == "unauthorized"


def test_other_bucket_is_not_found(client: httpx.Client) -> None:
    for path in ("/api/v1/other/", "/segments/v2/other/all", "/search/v2/other?q=jane", "/api/v1/other/person/abc/"):
        response = client.get(path)
        body = response.json()
        detail = body["error_detail"] if path.startswith("/api/v1/") else body["description"]  # v1: error_detail
        assert response.status_code == 404 and detail == "bucket other not found", path


def test_ping_needs_no_auth(read_sandbox: SandboxServer) -> None:
    with httpx.Client() as client:
        assert client.get(read_sandbox.url_for("/api/v1/ping/")).json() == {"message": "pong"}


def test_v1_and_v2_are_separate_listeners(read_sandbox: SandboxServer) -> None:
    """As sheepCRM's hosts are (api.sheepcrm.com, sls-api.sheepcrm.com): each serves its own API only."""
    assert read_sandbox.v1_url != read_sandbox.url
    settings = read_sandbox.settings()
    assert settings["v1_base_url"] == read_sandbox.v1_url and settings["base_url"] == read_sandbox.url
    with httpx.Client(headers={"Authorization": f"Bearer {read_sandbox.key}"}) as client:
        assert client.get(read_sandbox.url + "/api/v1/ping/").status_code == 404
        assert client.get(read_sandbox.v1_url + "/segments/v2/demo/all").status_code == 404
        assert client.get(read_sandbox.v1_url + V1).status_code == 200
        assert client.get(read_sandbox.url + V2).status_code == 200


def test_restricted_key_gets_403_with_the_documented_body_and_the_reduced_summary(read_sandbox: SandboxServer) -> None:
    with SandboxServer(key="k", restricted_key="r") as server, httpx.Client(
        base_url=server.url, headers={"Authorization": "Bearer r"}
    ) as client:
        uid = server.store.demo_facts()["past_event_uid"]
        full = client.get(f"/events/v2/demo/booking/{uid}")
        assert full.status_code == 403 and set(full.json()) == {"error", "description", "type"}
        assert client.get(f"/events/v2/demo/booking/{uid}/summary").status_code == 200


def test_good_key(client: httpx.Client) -> None:
    assert client.get(V1).status_code == 200 and client.get(V2).status_code == 200


def test_custom_bucket() -> None:
    with (
        SandboxServer(bucket="acme", key="k") as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client,
    ):
        jane = server.store.demo_facts()["jane_uri"]
        assert jane.startswith("/acme/person/")
        assert client.get(f"/api/v2{jane}summary").status_code == 200
        assert client.get("/segments/v2/demo/all").status_code == 404


def test_a_sandbox_started_without_a_key_makes_a_random_one() -> None:
    """No fixed key another local user could send: each start without `key=` makes its own."""
    with SandboxServer() as one, SandboxServer() as two:
        assert one.key != two.key and len(one.key) >= 32
        with httpx.Client() as client:
            fixed = client.get(one.url_for(V2), headers={"Authorization": "Bearer sandbox-key"})
            other = client.get(one.url_for(V2), headers={"Authorization": f"Bearer {two.key}"})
            own = client.get(one.url_for(V2), headers={"Authorization": f"Bearer {one.key}"})
    assert fixed.status_code == 401 and other.status_code == 401 and own.status_code == 200


def test_the_cluster_script_gives_its_sandbox_a_random_key_off_the_command_line() -> None:
    from tests.helpers import REPO

    script = (REPO / "scripts" / "cluster.sh").read_text()
    assert "sandbox-key" not in script and "--key" not in script
    assert "/dev/urandom" in script.split("start_sandbox() {")[1].split("\n}")[0]
