"""Idle cost: CPU seconds the daemon uses while nothing happens, watching 10 folders.

The daemon starts on 10 empty folder sets, is given 3 s to finish starting, then its CPU time
(every thread, from ``/proc/PID/task/*/schedstat``: nanoseconds, where ``cpu_times`` counts
10 ms ticks) is read before and after a quiet window of 60 s (10 s in quick mode, scaled to a
minute and reported as such). Once with inotify (the target) and once with
polling every 5 s, the default ``poll_interval_s`` (for information: polling costs what it
costs). The periodic rescan (every 300 s by default) is not in the window.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.figures import Figure, at_most, info
from bench.harness import API_KEY, Daemon, Emulator, Settings, make_config, wait_for

NAME = "idle"
FOLDERS = 10
SETTLE_S = 3.0
TARGET_CPU_S_PER_MIN = 0.2


def run(settings: Settings) -> list[Figure]:
    window_s = float(settings.pick(60, 10))
    root = settings.workdir / NAME
    scaled = "" if window_s == 60 else f"measured over {window_s:g} s, scaled to 60 s; "
    figures: list[Figure] = []
    with Emulator(root / "emulator") as api:
        for mode in ("inotify", "polling"):
            cpu_s = idle_cpu_s(api, root / mode, mode, window_s) * 60 / window_s
            note = f"{scaled}{FOLDERS} folders, {mode}"
            if mode == "inotify":
                figures.append(at_most(NAME, "CPU per minute idle, inotify", cpu_s, "s",
                                       TARGET_CPU_S_PER_MIN, note=note))
            else:
                figures.append(info(NAME, "CPU per minute idle, polling every 5 s", cpu_s, "s",
                                    note=note))
    return figures


def idle_cpu_s(api: Emulator, root: Path, mode: str, window_s: float) -> float:
    """CPU seconds the daemon used during ``window_s`` of idling."""
    names = [f"folder{n:02d}" for n in range(FOLDERS)]
    config = make_config(root, api.base_url, folders=names,
                         folder={"watch": mode, "poll_interval_s": 5.0})
    with Daemon(config, API_KEY) as daemon:
        wait_for(lambda: (root / "state" / "status.json").exists(), timeout_s=30,
                 what="the daemon's first status report")
        time.sleep(SETTLE_S)  # let start-up work (imports, scan, first report) finish
        before = daemon.run_time_s()
        time.sleep(window_s)  # the quiet window being measured
        used = daemon.run_time_s() - before
        daemon.stop()
    return used
