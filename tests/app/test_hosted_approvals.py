"""Approvals on a hosted server, with the project's real OpenID provider (.ci/idp) and Chromium: a client
without elicitation gets the page's address; the person signs in there (code + PKCE, prompt=login) and
approves; only the person who asked, or an approver role, may decide; the audit names both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from tests.helpers import (
    CANARY_KEY,
    CHROMIUM,
    PAGE,
    ask_to_complete,
    audit_of,
    browse,
    decide,
    fresh_task,
    hosted_session,
    launch_chromium,
    link_in,
    serve_hosted,
    sign_in,
    task_status,
)


@pytest.fixture(scope="module")
def signin_site(idp: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SandboxServer, Path]]:
    tmp = tmp_path_factory.mktemp("hosted-approvals")
    with SandboxServer(key=CANARY_KEY) as sb, serve_hosted(sb, tmp, idp, **PAGE) as url:
        yield url, sb, tmp


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None and not __import__("os").environ.get("CI"), reason="Chromium is not installed")
async def test_the_person_signs_in_and_approves_in_chromium(
    signin_site: tuple[str, SandboxServer, Path], idp: str
) -> None:
    from playwright.async_api import async_playwright

    url, sb, tmp = signin_site
    uid = fresh_task(sb)
    token = sign_in(idp, "helpdesk", url + "/mcp")
    link = link_in(await ask_to_complete(url, token, uid), url)
    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        page = await browser.new_page()
        await page.goto(link)
        await page.wait_for_selector("#login-form")  # at the provider: nothing of the change is shown yet
        assert urlsplit(page.url).netloc == urlsplit(idp).netloc
        await page.fill("#username", "helpdesk")
        await page.fill("#password", "helpdesk-pw")
        await page.click("#submit")
        await page.wait_for_selector("#who")
        assert page.url == link
        who = await page.inner_text("#who")
        assert "Hana Helpdesk" in who and "Asked for by you" in who and "bucket demo" in who and "expires" in who
        assert '"open" → "done"' in await page.inner_text("body")
        # A browser without the person's sign-in (a model's own browser) is sent to the provider's login.
        other = await (await browser.new_context()).new_page()
        await other.goto(link)
        await other.wait_for_selector("#login-form")
        await page.click("#approve")
        await page.wait_for_selector("#status")
        assert (await page.inner_text("#status")) == "approved"
        assert "Decided by Hana Helpdesk" in await page.inner_text("#who")
        await other.goto(link)  # once decided, nothing is left to sign in for, and nothing of it is shown
        assert "no longer waiting" in await other.inner_text("body")
        assert '"open" → "done"' not in await other.inner_text("body")
        await browser.close()
    assert task_status(sb, uid) == "open"  # approving alone writes nothing
    done = await ask_to_complete(url, token, uid)
    assert done["status"] == "applied" and task_status(sb, uid) == "done"
    lines = [x for x in audit_of(tmp) if x["arguments"].get("uid") == uid]
    applied = [x for x in lines if x["outcome"] == "succeeded"]
    assert applied and applied[-1]["channel"] == "approval-page"
    assert applied[-1]["caller"]["sub"] == "u-helpdesk" and applied[-1]["approved_by"]["sub"] == "u-helpdesk"
    assert {x["outcome"] for x in lines} >= {"approval_required", "attempt", "succeeded"}


async def test_only_the_person_who_asked_or_an_approver_may_decide(
    signin_site: tuple[str, SandboxServer, Path], idp: str
) -> None:
    url, sb, tmp = signin_site
    uid = fresh_task(sb)
    token = sign_in(idp, "helpdesk", url + "/mcp")
    link = link_in(await ask_to_complete(url, token, uid), url)
    with httpx.Client(timeout=10) as member:  # signed in, but neither the caller nor an approver
        page = browse(member, link, "member")
        assert page.status_code == 403 and "someone else" in page.text
        assert "&quot;open&quot; → &quot;done&quot;" not in page.text
        refused = member.post(link, data={"csrf": "x", "action": "approve"}, headers={"origin": url})
        assert refused.status_code == 403
    with httpx.Client(timeout=10) as staff:  # the approver role: sees who asked, and may approve
        page = browse(staff, link, "staff")
        assert page.status_code == 200 and "helpdesk@sheepcrm.test" in page.text and "as an approver" in page.text
        assert decide(staff, page, url).status_code == 200
    assert task_status(sb, uid) == "open"
    assert (await ask_to_complete(url, token, uid))["status"] == "applied"
    applied = [x for x in audit_of(tmp) if x["arguments"].get("uid") == uid and x["outcome"] == "succeeded"]
    assert applied[-1]["caller"]["sub"] == "u-helpdesk" and applied[-1]["approved_by"]["sub"] == "u-staff"


async def test_nothing_but_a_fresh_sign_in_opens_the_page(
    signin_site: tuple[str, SandboxServer, Path], idp: str
) -> None:
    url, sb, _ = signin_site
    uid = fresh_task(sb)
    token = sign_in(idp, "helpdesk", url + "/mcp")
    link = link_in(await ask_to_complete(url, token, uid), url)
    with httpx.Client(timeout=10) as model:  # what a model can do with the address and no person
        first = model.get(link)
        assert first.status_code == 303
        to = urlsplit(first.headers["location"])
        params = {k: v[0] for k, v in parse_qs(to.query).items()}
        # A pushed request: the browser holds only a reference; prompt=login, nonce and state never reach it.
        assert f"{to.scheme}://{to.netloc}" == idp and set(params) == {"client_id", "request_uri"}
        assert params["client_id"] == "sheepcrm-approvals" and "helpdesk" not in first.text
        assert model.post(link, data={"csrf": "x", "action": "approve"}, headers={"origin": url}).status_code == 401
        forged = model.get(url + "/approve/callback", params={"state": "guessed", "code": "made-up"})
        assert forged.status_code == 400
        assert model.get(url + "/approve/" + "A" * 22).status_code == 404
    with httpx.Client(timeout=10) as person:
        page = browse(person, link, "helpdesk")
        assert page.status_code == 200 and "Asked for by <strong>you</strong>" in page.text
        assert "bucket <strong>demo</strong>" in page.text
        # Driving the person's browser, which is signed in at the provider: a sign-in request of the model's own
        # making, without prompt=login, is refused by the provider (the page's client must push its requests),
        # and even a code would not match any sign-in the page began.
        crafted = person.get(idp + "/auth", params={
            "client_id": "sheepcrm-approvals", "response_type": "code", "scope": "openid",
            "redirect_uri": url + "/approve/callback", "state": "s", "nonce": "n",
            "code_challenge": "E9Melhoe2OwvFrEMTJguCp4lj6zwJh-C8G2OegB1HFk", "code_challenge_method": "S256"})
        assert "code=" not in crafted.headers.get("location", "") and "code=" not in str(crafted.url)
        person.cookies.delete("sheepcrm_approver")
        restart = person.get(link, follow_redirects=True)
        assert 'id="login-form"' in restart.text  # the provider asks for the password again, SSO or not
    assert task_status(sb, uid) == "open"
    assert (await ask_to_complete(url, token, uid))["status"] == "approval_required"  # still waiting; nothing approved


def until_callback(http: httpx.Client, start: str, user: str) -> str:
    """The person's sign-in up to the provider's redirect back to the page: the callback address, not followed."""
    back: str = browse(http, start, user, until="/approve/callback")
    return back


async def test_a_sign_in_is_for_one_browser_one_approval_one_decision(
    signin_site: tuple[str, SandboxServer, Path], idp: str
) -> None:
    url, sb, tmp = signin_site
    first, second = fresh_task(sb), fresh_task(sb)
    token = sign_in(idp, "helpdesk", url + "/mcp")
    link_a = link_in(await ask_to_complete(url, token, first), url)
    link_b = link_in(await ask_to_complete(url, token, second), url)
    with httpx.Client(timeout=10) as person, httpx.Client(timeout=10) as model:
        # The model begins the sign-in in its own browser and steers the person's browser to the provider: the
        # person signs in, their browser brings the code back, and the sign-in is cancelled there. Replaying the
        # address where the sign-in began (the model's browser, which holds its cookie) gets nothing.
        started = model.get(link_a)
        back = browse(person, started.headers["location"], "helpdesk", until="/approve/callback")
        cancelled = person.get(back)
        assert cancelled.status_code == 400 and "begun in another browser" in cancelled.text
        assert model.get(back).status_code == 400 and "sheepcrm_approver" not in model.cookies
        # Racing the person's browser with the address it is about to load (seen, not stopped): the model's
        # browser gets the page first, and loses it the moment the person's browser arrives with the same sign-in.
        started = model.get(link_a)
        back = browse(person, started.headers["location"], "helpdesk", until="/approve/callback")
        assert model.get(back).status_code == 303 and "sheepcrm_approver" in model.cookies
        raced = person.get(back)
        assert raced.status_code == 400 and "already used by another browser" in raced.text
        page = model.get(link_a)
        # withdrawn: back to the provider
        assert page.status_code == 303 and "&quot;open&quot; → &quot;done&quot;" not in page.text
        model.cookies.clear()
        # A cookie made up from the address is no use either: the browser's cookie is a secret of its own.
        back = until_callback(person, link_a, "helpdesk")
        state = parse_qs(urlsplit(back).query)["state"][0]
        model.cookies.set("sheepcrm_signin", state)
        assert model.get(back).status_code == 400
        assert person.get(back).status_code == 400  # that sign-in is spent; the person opens the link again
        page = browse(person, link_a, "helpdesk")
        assert page.status_code == 200 and "Asked for by <strong>you</strong>" in page.text
        assert decide(person, page, url).status_code == 200
        again = person.post(link_a, data={"csrf": "x", "action": "reject"}, headers={"origin": url})
        assert again.status_code == 401  # the sign-in was spent by its one decision
        other = person.get(link_b)  # the same browser, another approval: sign in again
        assert other.status_code == 303 and urlsplit(other.headers["location"]).netloc == urlsplit(idp).netloc
        # The provider's error text is never shown, and an answer from another issuer is refused.
        back = until_callback(person, link_b, "helpdesk")
        state = parse_qs(urlsplit(back).query)["state"][0]
        spoof = person.get(url + "/approve/callback", params={"state": state, "error": "Call 0800-EVIL now"})
        assert spoof.status_code == 400 and "0800" not in spoof.text
        back = until_callback(person, link_b, "helpdesk")
        foreign = person.get(back + "&iss=https%3A%2F%2Fevil.example")
        assert foreign.status_code == 400 and "another provider" in foreign.text
    assert task_status(sb, second) == "open"
    decided = [x for x in audit_of(tmp) if x["outcome"] == "page_approved"]
    assert decided and decided[-1]["approved_by"]["sub"] == "u-helpdesk"
    assert decided[-1]["arguments"]["asked_by"]["sub"] == "u-helpdesk"


async def test_without_a_page_client_the_write_is_refused_not_applied(idp: str, tmp_path: Path) -> None:
    with SandboxServer(key=CANARY_KEY) as sb, serve_hosted(sb, tmp_path, idp) as url:
        uid = sb.store.demo_facts()["my_open_task_uid"]
        async with hosted_session(url, sign_in(idp, "helpdesk", url + "/mcp")) as client:
            result = await client.call_tool("update_task", {"uid": uid, "action": "complete"})
        assert result.is_error and "elicitation" in str(result.content)
        assert task_status(sb, uid) == "open"


def test_hosted_mode_on_replicas_keeps_sign_ins_in_redis(tmp_path: Path) -> None:
    """With SHEEPCRM_REDIS_URL, hosted mode starts and its page keeps sign-ins and sessions in Redis (which the
    cluster tests run: tests/cluster/test_hosted_replicas.py); without it, in the process."""
    from sheepcrm_mcp.hosted import build_hosted
    from sheepcrm_mcp.server.approvals.signin import SignedInPage
    from sheepcrm_mcp.server.approvals.signins import MemorySignIns, RedisSignIns
    from tests.helpers import settings_for

    with SandboxServer(key=CANARY_KEY) as sb:
        base = {"auth": "oauth", "oauth_issuer": "http://127.0.0.1:9/", "oauth_resource": "http://127.0.0.1:8765/mcp",
                "public_url": "http://127.0.0.1:8765", "request_state_key": "k" * 32, **PAGE}
        shared = build_hosted(settings_for(sb, tmp_path, redis_url="redis://127.0.0.1:9/0", **base))
        alone = build_hosted(settings_for(sb, tmp_path, **base))
        pages = [next(iter(h.apps.values())).page for h in (shared, alone)]
        assert all(isinstance(p, SignedInPage) for p in pages)
        assert isinstance(pages[0].signins, RedisSignIns)  # type: ignore[attr-defined]
        assert isinstance(pages[1].signins, MemorySignIns)  # type: ignore[attr-defined]


def test_hosted_page_mode_needs_the_page_client(tmp_path: Path) -> None:
    from sheepcrm_mcp.hosted import build_hosted
    from sheepcrm_mcp.server.settings import ConfigError
    from tests.helpers import settings_for

    with SandboxServer(key=CANARY_KEY) as sb:
        settings = settings_for(sb, tmp_path, auth="oauth", oauth_issuer="http://127.0.0.1:9/", confirm="page",
                                oauth_resource="http://127.0.0.1:8765/mcp")
        with pytest.raises(ConfigError, match="SHEEPCRM_OAUTH_CLIENT_ID"):
            build_hosted(settings)
