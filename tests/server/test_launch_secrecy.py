"""No approval secret on any command line or in any environment (F1): another local user polling /proc while the
server opens real Chromium finds only the path of a file it cannot read, and cannot approve.

Before, the launch link (secret path and one-time token) was the browser's argument: any local user reading
/proc/<pid>/cmdline could open it first, take the page and approve. Now the browser is opened on a 0600 file in a
0700 folder that posts the token to the page, so its command line names a file, not a secret.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.server.approvals.page import _open_in_browser
from tests.helpers import CHROMIUM, ask, free_port, puts, stranger, task_status

# Run as the other user: poll every process's command line and environment, try to read every file named there,
# and try every loopback address seen (as the attack did). Prints what it found, as JSON.
POLLER = r"""
import json, os, re, sys, time, urllib.request
seen, files, tried, read = set(), set(), [], []
deadline = time.time() + float(sys.argv[1])
while time.time() < deadline:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                data = open(f"/proc/{pid}/{part}", "rb").read().decode("utf-8", "replace")
            except OSError:
                continue
            for word in data.split("\0"):
                if "127.0.0.1" in word or "file://" in word or "/approve" in word:
                    seen.add(word)
                for path in re.findall(r"file://(/[^\s\"']+)", word):
                    files.add(path)
                for url in re.findall(r"http://127\.0\.0\.1:\d+/[^\s\"']+", word):
                    if url not in tried:
                        tried.append(url)
                        try:
                            urllib.request.urlopen(url, timeout=2).read()
                        except Exception:
                            pass
    for path in files:
        try:
            read.append(open(path).read())
        except OSError:
            pass
    time.sleep(0.02)
print(json.dumps({"seen": sorted(seen), "files": sorted(files), "tried": tried, "read": read}))
"""

BROWSER = """#!/bin/sh
exec {chromium} --headless=new --no-sandbox --disable-gpu --no-first-run --disable-sync --disable-component-update \
  --disable-background-networking --remote-debugging-port={port} --user-data-dir={profile} "$@"
"""


def kill_browser(profile: Path) -> None:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"--user-data-dir={profile}".encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed here")
async def test_another_local_user_polling_proc_cannot_approve(
    sandbox: SandboxServer, connect: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.async_api import async_playwright

    other = stranger()
    # A home folder the other user may enter, so that only the launch folder's and file's own modes protect it.
    home = Path(tempfile.mkdtemp(prefix="sheepcrm-home-"))
    home.chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    port, profile = free_port(), home / "chromium-profile"
    wrapper = home / "browser.sh"
    wrapper.write_text(BROWSER.format(chromium=CHROMIUM, port=port, profile=profile))
    wrapper.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(wrapper))
    uid = sandbox.store.demo_facts()["my_open_task_uid"]
    poller = subprocess.Popen(["runuser", "-u", other, "--", "/usr/bin/python3", "-c", POLLER, "25"], cwd="/",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # the poller is watching before anything is opened
        async with connect(sandbox) as client:
            page = client.runtime.page
            page.opener = _open_in_browser  # the real opener: $BROWSER, i.e. real Chromium
            first = await ask(client, {"uid": uid, "action": "complete"})
            assert first["status"] == "approval_required"
            async with async_playwright() as pw:
                browser = None
                for _ in range(100):
                    try:
                        browser = await pw.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
                        break
                    except Exception:
                        time.sleep(0.1)
                assert browser is not None, "Chromium did not start"
                tab = None
                for _ in range(100):
                    tabs = [p for c in browser.contexts for p in c.pages if page.secret in p.url]
                    if tabs and await tabs[0].query_selector("#approve"):
                        tab = tabs[0]
                        break
                    time.sleep(0.1)
                assert tab is not None, [p.url for c in browser.contexts for p in c.pages]
                assert "/open" not in tab.url  # the launch was spent; the page is bound to this browser
                assert "open → done" in await tab.inner_text("body")
                await tab.click("#approve")
                await tab.wait_for_selector("#status")
                assert (await tab.inner_text("#status")) == "approved"
                await browser.close()
            assert task_status(sandbox, uid) == "open"
            done = await ask(client, {"uid": uid, "action": "complete"})
            secret = page.secret
        out, err = poller.communicate(timeout=60)
    finally:
        if poller.poll() is None:
            poller.kill()
        kill_browser(profile)
        shutil.rmtree(home, ignore_errors=True)
    assert done["status"] == "applied" and task_status(sandbox, uid) == "done" and puts(sandbox) == 1
    found = json.loads(out or "{}")
    assert found, err
    # It looked, and saw Chromium's command line: a file's path, which it could not read.
    assert any(str(home) in f for f in found["files"]), found
    assert found["read"] == []
    # Nothing secret anywhere it looked, and nothing it tried opened the page.
    everything = json.dumps(found)
    assert secret not in everything and "/open/" not in everything
    assert all(secret not in url for url in found["tried"])


def test_the_opener_says_nothing_and_its_failure_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """xdg-open without a handler echoed its argument into the server's stderr (the log the client keeps) and
    exited non-zero, which counted as opened. Now its output goes to /dev/null and its exit is checked."""
    noisy = tmp_path / "xdg-open-without-handler"
    noisy.write_text('#!/bin/sh\necho "no method available for opening $1"\necho "$1" >&2\nexit 3\n')
    noisy.chmod(0o755)
    target = (tmp_path / "launch.html").as_uri()
    monkeypatch.setenv("BROWSER", str(noisy))
    monkeypatch.setenv("PATH", str(tmp_path))  # no xdg-open to fall back on either
    assert _open_in_browser(target) is False
    monkeypatch.setenv("BROWSER", f"{noisy}{os.pathsep}true %s")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert _open_in_browser(target) is True  # the next command in $BROWSER worked
    out, err = capfd.readouterr()
    assert target not in out + err and "no method" not in out + err
