"""Files only this user may read or write: the audit log, the generated HTTP token, the ledger, the tool cache; and
where their home folder is.

Another local account must neither read them nor hand us a file of its own to write into (or a token it knows),
so an open file counts only when it is a regular file of this user's, mode 0600, in a folder no one else can
write (where another account could swap it)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def check_private(fd: int, path: Path, what: str, setting: str) -> None:
    """Raise PermissionError naming the fix unless `fd` (opened from `path`) is private; `what` names the file for a
    person, `setting` the variable that moves it."""
    if not hasattr(os, "getuid"):  # pragma: no cover - Windows: the profile folder's ACL protects it
        return
    info, folder = os.fstat(fd), path.parent.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not stat.S_ISREG(info.st_mode):
        raise PermissionError(f"{what} {path} must be your own file, readable only by you: "
                              f"remove it or run chown $USER {path} && chmod 600 {path}")
    if folder.st_uid not in (os.getuid(), 0) or folder.st_mode & 0o022:
        raise PermissionError(f"{what} folder {path.parent} must be writable only by you: "
                              f"run chmod 700 {path.parent} (or set {setting} to a private folder)")


def account_home() -> Path:
    """This user's home folder from the account database, not $HOME (which a client's config can set)."""
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError):  # no account database (Windows): the profile folder
        return Path.home()


def private_folder(folder: Path, mode: int = 0o700) -> Path:
    """`folder`, made with `mode` (0700, or 0300 for one even its owner cannot list) if missing, checked to be this
    user's own (never a link) and set to `mode` when it differs; OSError otherwise."""
    folder.mkdir(mode=mode, parents=True, exist_ok=True)
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        raise OSError(f"{folder} is not this user's own folder")
    if stat.S_IMODE(info.st_mode) != mode:
        folder.chmod(mode)
    return folder
