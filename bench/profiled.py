"""Run a server under cProfile, switched on and off by signals (used by bench/profile.py).

    python bench/profiled.py OUT-FOLDER SCRIPT.py [ARGS...]
    python bench/profiled.py OUT-FOLDER -m MODULE [ARGS...]

SIGUSR1 starts a new profile (CPU time) of the main thread (where uvicorn's event loop runs every request); SIGUSR2
stops it and writes it to OUT-FOLDER/<n>.pstats (n = 1, 2, ...; written whole, then renamed). Start-up and session
set-up are outside the window, so a profile holds only the calls made between the two signals.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
import time
from pathlib import Path
from types import FrameType


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    state: dict[str, cProfile.Profile] = {}
    written = [0]

    def start(signum: int, frame: FrameType | None) -> None:
        # CPU time of this thread, not wall time: on a shared machine a function's wall time includes the time this
        # process waited for a core.
        state["profile"] = profile = cProfile.Profile(time.thread_time_ns, 1e-9)
        profile.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profile = state.pop("profile", None)
        if profile is None:
            return
        profile.disable()
        written[0] += 1
        temp = out / f".{written[0]}.tmp"
        profile.dump_stats(temp)
        os.replace(temp, out / f"{written[0]}.pstats")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    if sys.argv[2] == "-m":
        sys.path.insert(0, os.getcwd())  # the module's folder (the repository), as `python -m` would
        sys.argv = [sys.argv[3], *sys.argv[4:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
