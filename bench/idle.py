"""Idle cost: CPU seconds the daemon uses while nothing happens, watching 10 folders, then one
folder whose inbox holds 1,000 subfolders.

The daemon starts on empty folder sets, is given 3 s to finish starting, then its CPU time
(every thread, from ``/proc/PID/task/*/schedstat``: nanoseconds, where ``cpu_times`` counts
10 ms ticks) is read before and after a quiet window of 60 s (10 s in quick mode, scaled to a
minute and reported as such). Three runs: 10 folders with inotify (the target), the same with
polling every 5 s, the default ``poll_interval_s`` (for information: polling costs what it
costs), and one folder set whose inbox has 1,000 subfolders, watched recursively (the default
``recursive = true``: watchdog adds one inotify watch per folder) with inotify (the target).
Also read at the end of each window: the daemon's peak RSS and its inotify watches (the
``inotify wd:`` lines of ``/proc/PID/fdinfo`` of its inotify descriptors). The periodic rescan
(every 300 s by default) is not in the window.

Then the status page's cost, in one run on one folder whose quarantine holds 2,000 files (each
with its ``.error.json``): the listener off, off again (the two give the noise band), on but
never visited, and on with the page refreshed every 5 s and ``/metrics`` scraped every 15 s (an
open browser tab and Prometheus). These cases set the listener themselves, whatever ``--http``.
Their CPU time is the process's (``/proc/PID/stat``: every thread, including the ones that
ended, in 10 ms ticks: the listener answers each request on a thread of its own, which
``schedstat`` of the live threads would miss), over 60 s (20 s in quick mode).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.figures import Figure, at_most, info
from bench.harness import (
    API_KEY,
    Daemon,
    Emulator,
    HttpVisitor,
    Settings,
    make_config,
    wait_for,
)

NAME = "idle"
FOLDERS = 10
SUBFOLDERS = 1000
SETTLE_S = 3.0
TARGET_CPU_S_PER_MIN = 0.2
QUARANTINED = 2000


@dataclass(frozen=True)
class Case:
    """One idle run: ``folders`` folder sets, each inbox with ``subfolders`` subfolders."""

    label: str
    mode: str
    folders: int
    subfolders: int
    target: bool
    listener: str = ""      # "": as --http says; "off", "quiet" (on, never visited), "visited"
    quarantined: int = 0    # files (with their error file) in each folder's quarantine

    @property
    def all_threads(self) -> bool:
        """CPU of every thread, ended ones included (10 ms ticks), over a longer window."""
        return bool(self.listener)


CASES = (
    Case(f"{FOLDERS} folders, inotify", "inotify", FOLDERS, 0, target=True),
    Case(f"{FOLDERS} folders, polling every 5 s", "polling", FOLDERS, 0, target=False),
    Case(f"1 folder with {SUBFOLDERS:,} subfolders, inotify", "inotify", 1, SUBFOLDERS,
         target=True),
    *(Case(f"1 folder, {QUARANTINED:,} quarantined, listener {label}", "inotify", 1, 0,
           target=True, listener=listener, quarantined=QUARANTINED)
      for label, listener in (("off", "off"), ("off (again: the noise band)", "off"),
                              ("on, never visited", "quiet"),
                              ("on, page every 5 s and /metrics every 15 s", "visited"))),
)


@dataclass(frozen=True)
class Reading:
    """What one idle window measured."""

    cpu_s: float
    peak_rss_bytes: int
    inotify_watches: int


def run(settings: Settings) -> list[Figure]:
    window_s = float(settings.pick(60, 10))
    root = settings.workdir / NAME
    scaled = "" if window_s == 60 else f"measured over {window_s:g} s, scaled to 60 s; "
    figures: list[Figure] = []
    with Emulator(root / "emulator") as api:
        for number, case in enumerate(CASES):
            case_window_s = float(settings.pick(60, 20)) if case.all_threads else window_s
            reading = idle_reading(api, root / f"case{number}", case, case_window_s)
            figures += case_figures(case, reading, case_window_s,
                                    scaled if case_window_s == window_s else
                                    "" if case_window_s == 60 else
                                    f"measured over {case_window_s:g} s, scaled to 60 s; ")
    return figures


def case_figures(case: Case, reading: Reading, window_s: float, scaled: str) -> list[Figure]:
    """CPU per minute (against the target or for information), peak RSS, inotify watches."""
    cpu_s = reading.cpu_s * 60 / window_s
    name = f"CPU per minute idle, {case.label}"
    note = f"{scaled}{case.label}"
    figures = [at_most(NAME, name, cpu_s, "s", TARGET_CPU_S_PER_MIN, note=note) if case.target
               else info(NAME, name, cpu_s, "s", note=note)]
    figures.append(info(NAME, f"peak RSS, {case.label}", reading.peak_rss_bytes / 2**20, "MB"))
    if case.mode == "inotify":
        figures.append(info(NAME, f"inotify watches, {case.label}", reading.inotify_watches, "",
                            note="from /proc/PID/fdinfo"))
    return figures


def idle_reading(api: Emulator, root: Path, case: Case, window_s: float) -> Reading:
    """The daemon's CPU seconds during ``window_s`` of idling, its peak RSS and watches."""
    names = [f"folder{n:02d}" for n in range(case.folders)]
    http = {} if not case.listener else {
        "http": None if case.listener == "off" else {"listen": "127.0.0.1:0"}}
    config = make_config(root, api.base_url, folders=names,
                         folder={"watch": case.mode, "poll_interval_s": 5.0}, **http)
    for name in names:
        for sub in range(case.subfolders):
            (root / name / "inbox" / f"sub{sub:04d}").mkdir()
        fill_quarantine(root / name / "quarantine", case.quarantined)
    status_file = root / "state" / "status.json"
    with Daemon(config, API_KEY) as daemon:
        wait_for(status_file.exists, timeout_s=30, what="the daemon's first status report")
        if case.listener == "visited" and daemon.visitor is None:
            daemon.visitor = HttpVisitor(status_file)
        elif case.listener in ("off", "quiet") and daemon.visitor is not None:
            daemon.visitor.stop()
            daemon.visitor = None
        time.sleep(SETTLE_S)  # let start-up work (imports, scan, first report) finish
        cpu_s = daemon.cpu_seconds if case.all_threads else daemon.run_time_s
        before = cpu_s()
        time.sleep(window_s)  # the quiet window being measured
        used = cpu_s() - before
        reading = Reading(used, daemon.peak_rss_bytes(), inotify_watches(daemon.pid))
        daemon.stop()
    return reading


def fill_quarantine(quarantine: Path, count: int) -> None:
    """``count`` quarantined inputs, each with an ``.error.json`` like the daemon writes."""
    quarantine.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        name = f"bad{number:05d}.png"
        (quarantine / name).write_bytes(b"not an image")
        record: dict[str, object] = {
            "file": name, "folder": "folder00", "stage": "validate", "reason": "not_an_image",
            "http_status": None, "detail": "cannot identify image file", "attempts": 1,
            "sha256": None, "variants": [], "first_seen": "2026-01-01T00:00:00Z",
            "quarantined_at": "2026-01-01T00:00:01Z"}
        (quarantine / (name + ".error.json")).write_text(json.dumps(record), "utf-8")


def inotify_watches(pid: int) -> int:
    """How many inotify watches the process holds, over all its inotify descriptors."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) != "anon_inode:inotify":
                continue
            text = (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text()
        except OSError:
            continue  # closed between the listing and the read
        count += sum(1 for line in text.splitlines() if line.startswith("inotify wd:"))
    return count
