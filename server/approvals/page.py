"""The approval page, reached by a person and never by the model.

The loopback page (`ApprovalPage`) lives on 127.0.0.1 under a per-process secret path; on replicas
the page is routes of the HTTP app (`ServedPage`). Its address never appears in a tool result, an error or a log line:
the server opens the person's browser itself (or, on a client that declares URL-mode
elicitation, the client shows the address to the person). The browser is opened on a file, not on
an address: a page with a random 128-bit name in a folder no one can list, its owner included (0300: a
browser of the same user's cannot find the file by listing the folder, only open it by its exact name), the
file 0600, that posts the one-time launch token to the page. A browser's command line and environment are
readable by every local user (/proc/<pid>/cmdline), so no secret may travel there; a file path may. The first
visit trades the launch token for an HttpOnly, SameSite=Strict cookie bound to that browser, and the page and
its form answer only that browser. Every POST also needs the form token (derived from that cookie), an Origin
naming the page and a Host naming the page; every other request gets the same 404.

Two browsers holding one launch link is a contest, never a silent hand-over: the launch file stays until the
approval expires, and its token presented a second time, by any browser, cancels an approval not yet spent (the
store does it in the same step) and tells that browser's person what happened, on record in the audit
(`contested`). A decision is taken only HOLD_SECONDS after the launch was first used, so the person's browser,
opening the same file moments after another, turns a race into a cancelled approval.
"""

from __future__ import annotations

import html
import logging
import os
import re
import secrets
import shlex
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sheepcrm_mcp.server.approvals.pending import TTL_SECONDS, Contest, Pending, csrf_for
from sheepcrm_mcp.server.approvals.store import Approvals
from sheepcrm_mcp.server.audit import AuditEntry
from sheepcrm_mcp.server.files import account_home, private_folder
from sheepcrm_mcp.server.stores import Audit
from sheepcrm_mcp.server.threadserver import ThreadServer

log = logging.getLogger("sheepcrm_mcp.approvals")

Opener = Callable[[str], bool]
OPENER_WAIT = 3.0  # seconds an opener may take to say it failed (xdg-open exits; a browser itself keeps running)
# Seconds after a launch link's first use before the page takes a decision: another browser opening the same launch
# file within them (the person's, starting more slowly than one that found the file first) cancels the approval
# instead of finding it decided. A decision sent sooner waits out the rest.
HOLD_SECONDS = 2.0


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Approve change - sheepCRM</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}}
li{{margin:.3rem 0;font-family:ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere}}
.s{{padding:.6rem 1rem;background:#f4f4f4;border-radius:6px}}
button{{font-size:1rem;padding:.5rem 1.2rem;margin-right:.8rem}}</style></head><body>
<h1>Approve a change to sheepCRM?</h1>{who}<p class="s"><strong>{summary}</strong></p><ul>{lines}</ul>
<p>Tool: <code>{tool}</code>. Status: <strong id="status">{status}</strong>. <span id="said">{said}</span></p>{form}
<p><small>After you approve, tell the assistant you did; it repeats the same request and it runs once.
</small></p></body></html>"""

SAID = {
    "pending": "Nothing has been changed yet: approve or reject it below.",
    "approved": "You approved it. Tell the assistant you have decided; when it repeats the request, the change is "
    "made once.",
    "rejected": "You rejected it. Nothing will be changed; you can tell the assistant.",
    "used": "It was approved and the assistant has already made the change. Nothing more to do here.",
    "expired": "This request expired before it was decided, so nothing was approved or changed. Ask the assistant "
    "to repeat it if it is still needed.",
    "contested": "This approval was opened in two places (two browser windows, tabs or browsers), so it was "
    "cancelled: nothing was approved and nothing was changed. Ask the assistant to repeat the request; it will ask "
    "you again. If you did not open it twice yourself, something else on this computer may be opening your "
    "approval pages: tell your administrator.",
}
SAID["cancelled"] = SAID["contested"]
SAID["withdrawn"] = (
    "This request was withdrawn before it was decided (it could not be shown to you in time, or it was answered "
    "elsewhere), so nothing was approved or changed. Ask the assistant to repeat it if it is still needed."
)

# What the second browser to open one launch link is told, by where the approval stood.
CONTESTED = {
    "approved": "This change had just been approved in another browser window. Because the approval was opened in "
    "two places, that approval was cancelled: nothing was changed. If you did not approve it in another window, "
    "something else on this computer may be opening your approval pages: tell your administrator. Ask the "
    "assistant to repeat the request; it will ask you again.",
    "used": "This change was already approved from another browser window, and the assistant has made it. If that "
    "was not you, undo it now: ask the assistant to undo it (its answer for this change named the call that "
    "reverses it), or set it back in sheepCRM (each line above shows the value before and after). Then tell your "
    "administrator: something else on this computer may be opening your approval pages.",
    "rejected": "This change was already rejected in another browser window, so nothing was changed. If that was "
    "not you, something else on this computer may be opening your approval pages: tell your administrator.",
}


LAUNCH_FILE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Opening the approval page - sheepCRM</title></head>
<body onload="document.forms[0].submit()"><form method="post" action="{action}">
<input type="hidden" name="launch" value="{token}">
<p>Opening the page that asks you to approve a change to sheepCRM... <button type="submit">Continue</button></p>
</form></body></html>"""

OPENING = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0;url={page}"><title>Approve change - sheepCRM</title></head>
<body><p><a href="{page}">Continue to the approval page</a></p></body></html>"""

GONE = (
    "This approval link was already used or replaced: the page it opened stays valid in the tab or window where "
    "it first opened. Nothing was approved here. If you closed that tab, ask the assistant to repeat the request."
)

FORM = """<form method="post"><input type="hidden" name="csrf" value="{csrf}">
<button type="submit" name="action" value="approve" id="approve">Approve</button>
<button type="submit" name="action" value="reject" id="reject">Reject</button></form>"""

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def not_found() -> Response:
    """The one answer for every address, host, cookie or approval that is not exactly right (a person may read it:
    it says what to do, and nothing about which part was wrong)."""
    return PlainTextResponse(
        "Not found. This approval page is not open in this browser, or it is no longer waiting; nothing was "
        "approved here. Use the tab that opened by itself when the assistant asked, or ask the assistant to repeat "
        "the request.",
        status_code=404,
        headers={"Cache-Control": "no-store"},
    )


def when(wall: float, local: bool = False) -> str:
    """A clock time a person reads: UTC on a hosted page, this computer's own time on the local one."""
    moment = datetime.fromtimestamp(wall, UTC)
    return moment.astimezone().strftime("%H:%M (%Z) on %d %b %Y") if local else moment.strftime("%Y-%m-%d %H:%M UTC")


def launch_folder() -> Path:
    """Where launch files are written: a folder of this user's (checked) that no one can list, this user included
    (0300: create and open by exact name only), so a browser of theirs cannot find a launch file by listing it."""
    return private_folder(account_home() / ".cache" / "sheepcrm-mcp" / "approve", 0o300)  # not $HOME: a config sets it


def write_private(path: Path, text: str) -> None:
    """A new file only this user can read (0600, never through a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


# The opener runs with only what it needs to reach the person's desktop session, never the rest of the server's
# environment: a client's config (a cloned repository's `.mcp.json` included) sets that environment, and there
# BROWSER, PATH, XDG_DATA_DIRS, GTK_MODULES, LD_PRELOAD... would each choose the program that reads the launch file.
# The browser command is the person's own (SHEEPCRM_BROWSER, only from their own settings file), else the desktop's
# opener from the system's folders.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
# Where the desktop's opener finds the installed browsers (their .desktop files): the system's, snap's and flatpak's.
SYSTEM_DATA = ("/usr/local/share", "/usr/share", "/var/lib/snapd/desktop", "/var/lib/flatpak/exports/share")
SESSION_WORDS = ("XDG_CURRENT_DESKTOP", "XDG_SESSION_TYPE", "XDG_SESSION_DESKTOP", "DESKTOP_SESSION",
                 "KDE_FULL_SESSION", "KDE_SESSION_VERSION", "LANG", "LANGUAGE", "LC_ALL")
X11_SOCKETS = Path("/tmp/.X11-unix")  # noqa: S108 - where X servers put their sockets (checked: ours or root's)


def _own_folder(path: Path) -> bool:
    """A folder of this user's that no one else may enter."""
    try:
        info = path.stat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def _own_socket(path: Path) -> bool:
    """A socket of this user's (or root's: a display server started by the system), not another account's."""
    try:
        info = path.stat()
    except OSError:
        return False
    return stat.S_ISSOCK(info.st_mode) and info.st_uid in (os.getuid(), 0)


def _own_x_display(number: str) -> bool:
    """DISPLAY :N leads to a display server of this user's or root's: its socket file is, and on Linux so is the
    process holding the abstract socket of the same name, which X clients try first and which any local account may
    bind while no display server holds it (a stale socket file left by a killed server, one started with
    `-nolisten local`). A name nobody holds is refused: another account could take it before the browser connects."""
    path = X11_SOCKETS / f"X{number}"
    if not _own_socket(path):
        return False
    return not sys.platform.startswith("linux") or _peer_is_own("\0" + str(path))


def _own_listener(path: Path) -> bool:
    """A socket only this user (or root) could have put at `path` and still answers there: no symlink on the way,
    every folder above it this user's or root's and writable by nobody else (or sticky, as /tmp is, where only an
    entry's owner may move it), the socket itself this user's or root's, and the process listening on it too
    (SO_PEERCRED). So another account can neither point the name elsewhere nor swap what it leads to after this
    check."""
    if not path.is_absolute() or os.path.realpath(path) != str(path):
        return False
    try:
        info = path.lstat()
        folders = [folder.lstat() for folder in path.parents]
    except OSError:
        return False
    mine = (os.getuid(), 0)
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid not in mine:
        return False
    for folder in folders:
        if not stat.S_ISDIR(folder.st_mode) or folder.st_uid not in mine:
            return False
        if folder.st_mode & 0o022 and not folder.st_mode & stat.S_ISVTX:
            return False
    return _peer_is_own(str(path))


def _peer_is_own(address: str) -> bool:
    """The process listening on a Unix socket runs as this user or root (SO_PEERCRED); False when nobody listens."""
    creds = struct.calcsize("3i")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(address)
            _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, creds))
    except OSError:
        return False
    return uid in (os.getuid(), 0)


def opener_environment() -> dict[str, str]:
    """The environment the browser opener gets: the person's display, session bus and locale, each kept only when
    it leads to a socket of theirs (a display or bus another local account serves, or a bus address that runs a
    program, `unixexec:`, is dropped); HOME from the account database; PATH and XDG_DATA_DIRS the system's folders."""
    env = {name: os.environ[name] for name in SESSION_WORDS if os.environ.get(name)}
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    if _own_folder(runtime):
        env["XDG_RUNTIME_DIR"] = str(runtime)
    display = os.environ.get("DISPLAY", "")
    if (number := re.fullmatch(r":(\d+)(?:\.\d+)?", display)) and _own_x_display(number[1]):
        env["DISPLAY"] = display
        if os.environ.get("XAUTHORITY"):
            env["XAUTHORITY"] = os.environ["XAUTHORITY"]
    wayland = os.environ.get("WAYLAND_DISPLAY", "")
    if wayland and _own_listener(runtime / wayland):
        env["WAYLAND_DISPLAY"] = wayland
    bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if (path := re.fullmatch(r"unix:path=([^,;]+)(?:,guid=[0-9a-f]+)?", bus)) and _own_listener(Path(path[1])):
        env["DBUS_SESSION_BUS_ADDRESS"] = bus
    home = account_home()
    env["HOME"] = str(home)
    env["PATH"] = SYSTEM_PATH
    env["XDG_DATA_DIRS"] = os.pathsep.join([*SYSTEM_DATA, str(home / ".local/share/flatpak/exports/share")])
    return env


def _open_in_browser(target: str, command: str = "") -> bool:
    """Open `target` (a file:// address) in the person's browser: `command` (SHEEPCRM_BROWSER from their own settings
    file; `%s` stands for the file), else the desktop's opener (xdg-open on a display, `open` on macOS). $BROWSER is
    never read. Its output goes to /dev/null (an opener that echoes its argument must not write into the client's
    log) and its exit is checked; False when nothing could open it."""
    if sys.platform == "win32":  # pragma: no cover - the tests run on Linux
        try:
            os.startfile(target)  # type: ignore[attr-defined]  # noqa: S606 - the desktop opens a file
        except OSError:
            return False
        return True
    env = opener_environment()
    commands = [command] if command.strip() else []
    desktop = "open" if sys.platform == "darwin" else "xdg-open"
    found = shutil.which(desktop, path=SYSTEM_PATH)
    if found and (sys.platform == "darwin" or "DISPLAY" in env or "WAYLAND_DISPLAY" in env):
        commands.append(shlex.quote(found))
    for line in commands:
        argv = [a.replace("%s", target) for a in shlex.split(line)]
        if "%s" not in line:
            argv.append(target)
        try:
            proc = subprocess.Popen(  # noqa: S603 - the person's own browser command, or the system's opener
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, env=env,
            )
        except OSError:
            continue
        try:
            if proc.wait(timeout=OPENER_WAIT) == 0:
                return True
        except subprocess.TimeoutExpired:  # a browser started by the command itself keeps running: it opened
            threading.Thread(target=proc.wait, daemon=True).start()
            return True
    return False


def browser_opener(command: str = "") -> Opener:
    """The opener of a server whose person named `command` (SHEEPCRM_BROWSER) in their own settings file, or none."""
    return lambda target: _open_in_browser(target, command)


class ApprovalPage:
    """The loopback page; started on first use so that start-up stays fast.

    `opener` puts a launch link in front of the person (by default their browser); None means this
    server cannot reach a person's browser (a hosted server), so the page channel is unavailable.
    """

    LOCAL = True  # the page shows this computer's clock time

    def __init__(
        self,
        store: Approvals,
        port: int = 0,
        opener: Opener | None = _open_in_browser,
        bucket: str = "",
        audit: Audit | None = None,
    ) -> None:
        self.store = store
        self.audit = audit  # where a contested launch is put on record
        self.secret = secrets.token_urlsafe(24)
        self.opener = opener
        self.bucket = bucket
        self._port = port
        self._server: ThreadServer | None = None
        self._lock = threading.Lock()
        self._files: dict[str, tuple[Path, float]] = {}  # launch files by approval, and when (wall) each expires

    def _origin(self) -> str:
        with self._lock:
            if self._server is None:
                app = Starlette(
                    routes=[
                        Route("/{secret}/{approval_id}/open/{launch}", self._launch, methods=["GET"]),
                        Route("/{secret}/{approval_id}/open", self._launch, methods=["POST"]),
                        Route("/{secret}/{approval_id}", self._handle, methods=["GET", "POST"]),
                    ]
                )
                app.add_exception_handler(404, lambda request, exc: not_found())
                app.add_exception_handler(405, lambda request, exc: not_found())
                self._server = ThreadServer(app, "127.0.0.1", self._port).start()
            return self._server.url

    def _base(self) -> str:
        """Where the page lives: origin and path prefix."""
        return f"{self._origin()}/{self.secret}"

    def origin(self) -> str:
        """The origin the page is served from: a form POST must name it, and requests its host."""
        assert self._server is not None
        return self._server.url

    async def launch_url(self, item: Pending) -> str:
        """A one-time link for the person's browser; the model must never see it."""
        base = await anyio.to_thread.run_sync(self._base)
        token = await self.store.new_launch(item.id)
        return f"{base}/{item.id}/open/{token}"

    async def launch_file(self, item: Pending) -> str:
        """A file:// address for the person's browser: a private file that posts a fresh one-time launch token to
        the page. The address names only the file, so the browser's command line holds no secret."""
        base = await anyio.to_thread.run_sync(self._base)
        token = await self.store.new_launch(item.id)
        page = LAUNCH_FILE.format(action=html.escape(f"{base}/{item.id}/open"), token=html.escape(token))

        def write() -> Path:
            path = launch_folder() / f"{secrets.token_hex(16)}.html"  # 128 random bits: found only by its name
            write_private(path, page)
            return path

        path = await anyio.to_thread.run_sync(write)
        self._forget(item.id)
        self._sweep()
        self._files[item.id] = (path, item.wall + TTL_SECONDS)
        return path.as_uri()

    def _forget(self, approval_id: str) -> None:
        """Remove an approval's launch file (replaced, expired, never shown, or the server stops)."""
        old = self._files.pop(approval_id, None)
        if old is not None:
            old[0].unlink(missing_ok=True)

    def _sweep(self) -> None:
        """Remove the launch files of approvals that have expired. A file is kept until then, used or not: the person's
        browser may open it after another browser did, and must then be told (see `_launch`), not shown 'file not
        found'."""
        now = time.time()
        for approval_id, (_, until) in list(self._files.items()):
            if until < now:
                self._forget(approval_id)

    async def open(self, item: Pending) -> bool:
        """Put the approval in front of the person by opening their browser; False when that is impossible."""
        opener = self.opener
        if opener is None:
            return False
        try:
            target = await self.launch_file(item)
            opened = bool(await anyio.to_thread.run_sync(opener, target))
        except Exception as exc:
            log.warning("could not open a browser for an approval (%s)", type(exc).__name__)
            opened = False
        if not opened:  # nothing shows that file: the next repeat of the request tries again
            self._forget(item.id)
        return opened

    def launched(self, item: Pending) -> bool:
        """Whether a browser was opened on this approval's launch file (the person may not have seen the tab yet, or
        the browser is still starting): opening another would replace its one-time token, so the first tab would
        find nothing, and a second tab would take the page from the first."""
        return item.id in self._files

    where = "opened the approval page in this computer's browser"  # for the log: never an address

    def waiting(self, tool: str, item: Pending, again: bool = False, contested: bool = False) -> str:
        """What the model is told while a person decides: never the page's address, which admits its holder.
        `contested`: the last page for this change was opened in two places and cancelled."""
        where = (
            "The page asking the person to approve this exact change is already open in the browser on their "
            "computer and still waiting for them; no new page was opened."
            if again
            else "A page asking the person to approve this change has been opened in the browser on their computer."
        )
        if contested:
            where = (
                "The last approval page for this change was opened in two places, so it was cancelled and the person "
                f"must be asked again. {where}"
            )
        return (
            f"Nothing was changed yet. {where} Wait until the person tells you they have approved or rejected it "
            f"(within 10 minutes); do not call {tool} again before that. Then call {tool} once more with exactly the "
            "same arguments: if they approved, it runs once."
        )

    def close(self) -> None:
        for approval_id in list(self._files):
            self._forget(approval_id)
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _path(self, approval_id: str) -> str:
        return f"/{self.secret}/{approval_id}"

    async def _item(self, request: Request) -> Pending | None:
        """The approval a request names, if its host and secret path are exactly right."""
        host = request.headers.get("host", "")
        if host != self.origin().split("://", 1)[1]:
            return None
        if not secrets.compare_digest(request.path_params.get("secret", ""), self.secret):
            return None
        return await self.store.get(request.path_params["approval_id"])

    async def _launch(self, request: Request) -> Response:
        item = await self._item(request)
        if item is None:
            return not_found()
        posted = request.method == "POST"  # from the launch file (Origin: null): the token is the proof
        token = str((await request.form()).get("launch", "")) if posted else request.path_params["launch"]
        self._sweep()
        cookie = await self.store.launch(item.id, token)
        if cookie is None:  # replaced or unknown: the same words as every other miss, which say what to do
            return not_found()
        if isinstance(cookie, Contest):
            return await self._contested(item, cookie.before)
        page = self._path(item.id)
        response: Response
        if posted:  # the page is then opened by a page of ours, so the SameSite=Strict cookie goes with it
            response = HTMLResponse(OPENING.format(page=html.escape(page)), headers=HEADERS)
        else:
            response = RedirectResponse(page, status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            f"a_{item.id}",
            cookie,
            path=page,
            httponly=True,
            samesite="strict",
            secure=self.origin().startswith("https://"),
            max_age=int(TTL_SECONDS),
        )
        return response

    async def _contested(self, item: Pending, before: str) -> Response:
        """A second browser used this approval's launch link: the store has cancelled it unless it was already spent.
        This browser's person is told where it stood, and it goes on record."""
        log.warning("an approval's launch link was used by a second browser (it was %s); contested", before)
        if self.audit is not None:
            try:
                await self.audit.record(
                    AuditEntry(
                        tool=item.tool,
                        outcome="contested",
                        channel="approval-page",
                        arguments={"approval": item.id},
                        detail=f"its launch link was used by a second browser while it was {before}"
                        + ("; cancelled, nothing written" if before in ("pending", "approved") else ""),
                    )
                )
            except Exception as exc:  # the cancellation stands; the person is told either way
                log.error("a contested approval was not audited (%s)", type(exc).__name__)
        if before not in (*CONTESTED, "pending", "contested", "cancelled"):
            return not_found()
        status = {"pending": "contested", "approved": "contested"}.get(before, before)
        said = CONTESTED.get(before, SAID["contested"])
        if before == "used" and item.undo:
            said += f" The call that reverses it: <code>{html.escape(item.undo)}</code>."
        body = PAGE.format(
            who=self._where(item),
            summary=html.escape(item.summary),
            tool=html.escape(item.tool),
            status=status,
            said=said,
            lines="".join(f"<li>{html.escape(line)}</li>" for line in item.lines),
            form="",
        )
        return HTMLResponse(body, status_code=409, headers=HEADERS)

    async def _handle(self, request: Request) -> Response:
        item = await self._item(request)
        cookie = request.cookies.get(f"a_{item.id}", "") if item is not None else ""
        if item is None or not item.held_by(cookie):
            return not_found()
        return await self._answer(request, item, cookie, browser=cookie)

    async def _answer(
        self,
        request: Request,
        item: Pending,
        secret: str,
        *,
        browser: str | None = None,
        by: dict[str, Any] | None = None,
        who: Callable[[Pending], str] | None = None,
    ) -> Response:
        """The page, or (POST) the person's decision: strict form, its token (derived from `secret`, what admitted
        this browser), Origin of the page. `browser`, the cookie, is checked again with the decision itself."""
        if request.method == "POST":
            if request.headers.get("origin", "") != self.origin():
                return PlainTextResponse(
                    "Refused: this form only accepts submissions from its own page.", status_code=403
                )
            form = await request.form()
            fields = {k: [str(v) for v in form.getlist(k)] for k in form.keys()}
            action = fields.get("action", [""])
            if set(fields) != {"csrf", "action"} or len(action) != 1 or action[0] not in ("approve", "reject"):
                return PlainTextResponse("Refused: the form was altered. Reload the page.", status_code=400)
            if not secrets.compare_digest(fields["csrf"][0], csrf_for(secret, item.id)):
                return PlainTextResponse(
                    "Refused: the form token is missing or wrong. Reload the page.", status_code=403
                )
            if browser is not None and item.launched:  # another browser opening the launch now cancels it instead
                await anyio.sleep(max(0.0, item.launched + HOLD_SECONDS - time.time()))
            verdict = await self.store.decide(item.id, browser, action[0] == "approve", by)
            if verdict == "browser":
                return PlainTextResponse(GONE, status_code=409)
            if verdict == "expired":
                return PlainTextResponse(SAID["expired"], status_code=410)
            item = await self.store.get(item.id) or item  # a shared store hands out copies
        return HTMLResponse(self._render(item, secret, who(item) if who else self._where(item)), headers=HEADERS)

    def _where(self, item: Pending) -> str:
        """Which bucket the change is for, and when the request was made and expires (this computer's time)."""
        bucket = f" in sheepCRM bucket <strong>{html.escape(self.bucket)}</strong>" if self.bucket else ""
        return (
            f'<p id="who">Asked for{bucket} at {when(item.wall, self.LOCAL)}; this request expires at '
            f"<strong>{when(item.wall + TTL_SECONDS, self.LOCAL)}</strong>.</p>"
        )

    @staticmethod
    def _render(item: Pending, secret: str, who: str = "") -> str:
        """The page; `who` is trusted HTML (already escaped) saying who asked, where and until when."""
        status = "expired" if item.status == "pending" and item.expired() else item.status
        form = FORM.format(csrf=html.escape(csrf_for(secret, item.id))) if status == "pending" else ""
        return PAGE.format(
            who=who,
            summary=html.escape(item.summary),
            tool=html.escape(item.tool),
            status=status,
            said=SAID[status],
            lines="".join(f"<li>{html.escape(line)}</li>" for line in item.lines),
            form=form,
        )


class ServedPage(ApprovalPage):
    """The page as routes of the HTTP app itself, for replicas behind a balancer: any replica serves an
    approval another one created, since the store is shared. `public_url` is the address people reach the
    replicas at (the balancer's): requests must name its host, a form POST its origin. The same one-time
    launch link, browser cookie, CSRF token and strict form as the loopback page; the launch link still
    goes only to the person's browser (the opener), never into a tool result. The routes carry no bearer
    token (a browser has none): the one-time link and the cookie are what admit the person."""

    PREFIX = "/approve"
    ROUTES = ("/approve/{approval_id}", "/approve/{approval_id}/open/{launch}", "/approve/{approval_id}/open")
    LOCAL = False

    def __init__(
        self,
        store: Approvals,
        public_url: str,
        opener: Opener | None = _open_in_browser,
        bucket: str = "",
        audit: Audit | None = None,
    ) -> None:
        super().__init__(store, opener=opener, bucket=bucket, audit=audit)
        self.public_url = public_url.rstrip("/")

    def routes(self) -> list[Route]:
        return [
            Route(self.ROUTES[1], self._launch, methods=["GET"]),
            Route(self.ROUTES[2], self._launch, methods=["POST"]),
            Route(self.ROUTES[0], self._handle, methods=["GET", "POST"]),
        ]

    def _base(self) -> str:
        return f"{self.public_url}{self.PREFIX}"

    def _path(self, approval_id: str) -> str:
        return f"{urlsplit(self.public_url).path}{self.PREFIX}/{approval_id}"

    def origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    async def _item(self, request: Request) -> Pending | None:
        if request.headers.get("host", "") != urlsplit(self.public_url).netloc:
            return None
        return await self.store.get(request.path_params["approval_id"])

    def close(self) -> None:
        for approval_id in list(self._files):
            self._forget(approval_id)
