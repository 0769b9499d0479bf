"""`--sandbox`: start the embedded sheepCRM sandbox and point the settings at it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from sheepcrm_mcp.sandbox.runner import SandboxServer
from sheepcrm_mcp.sandbox.variants import ENV


@contextlib.contextmanager
def sandbox_settings(overrides: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with SandboxServer(variant=os.environ.get(ENV) or None) as sb:  # SANDBOX_VARIANT: see sandbox/README.md
        # Every hosted-mode profile uses the sandbox's one key (SHEEPCRM_AUTH=oauth --sandbox).
        yield {**overrides, **sb.settings(), "api_key_helpdesk": sb.key, "api_key_member": sb.key}
