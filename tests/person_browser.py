"""The server as the `sheepcrm-mcp` command runs it, with "the person's browser" replaced by a recorder: for tests
that start the server as a process and need it to open the approval page.

    python -I tests/person_browser.py RECORD-FILE [the server's arguments...]

A person names their browser only in their own settings file (SHEEPCRM_BROWSER in ~/.config/sheepcrm-mcp/settings.env,
found from the account database), which a test cannot write, and $BROWSER is never read. So a test starts the server
through this file instead. The recorder does what the browser does with the private launch file it is opened on:
reads the address the file posts to and its one-time token, and appends the launch link to RECORD-FILE, where the
test, playing the person, follows it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import sheepcrm_mcp.server.approvals.page as page
import sheepcrm_mcp.server.settings as settings
from sheepcrm_mcp.cli import main


def recorder(record: Path) -> Callable[[str, str], bool]:
    def opened(target: str, command: str = "") -> bool:
        text = Path(urlsplit(target).path).read_text()
        action = re.search(r'action="([^"]+)"', text)
        token = re.search(r'name="launch" value="([^"]+)"', text)
        if action is None or token is None:
            return False
        with record.open("a") as out:
            out.write(f"{action.group(1)}/{token.group(1)}\n")
        return True

    return opened


if __name__ == "__main__":
    if os.environ.get("PERSON_SETTINGS"):  # the person's own settings file, which a test cannot write at its real place
        settings.user_settings_file = lambda: Path(os.environ["PERSON_SETTINGS"])
    page._open_in_browser = recorder(Path(sys.argv[1]))  # what browser_opener() calls when the page opens
    sys.argv[1:] = sys.argv[2:]
    sys.exit(main())
