"""Backlog: 100,000 files waiting in the inbox when the daemon starts.

Three figures: the time from starting the daemon process to the first upload the emulator
receives (``stability_s = 0.5`` of it is the stability gate, on purpose), the daemon's peak
resident memory (the kernel's VmHWM) over the start-up and the first seconds of work, and the
scan rate of the daemon's own start-up scan (``IntakeCoordinator.scan_all``, the code the
daemon runs, timed in the bench process on the same inbox: median of 3 runs, warm cache).

The inputs are one tiny PNG (``TinyImages``) made distinct by a ``tEXt`` chunk holding its
index: no two share a sha256 (so duplicate detection never kicks in), and 100,000 of them are
written in a few seconds, where encoding each (``TinyImages.fill``) takes about 40.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

from bench.figures import Figure, at_most, info, median
from bench.harness import API_KEY, Daemon, Emulator, Settings, make_config, wait_for
from bench.images import TinyImages
from bgcut_watchd.config import load_config
from bgcut_watchd.intake import IntakeCoordinator

NAME = "backlog"
STABILITY_S = 0.5
TARGET_FIRST_UPLOAD_S = 3.0
TARGET_PEAK_RSS_MB = 200.0
WORK_AFTER_FIRST_UPLOAD_S = 5.0


def run(settings: Settings) -> list[Figure]:
    files = settings.pick(100_000, 5000)
    root = settings.workdir / NAME
    with Emulator(root / "emulator") as api:
        config = make_config(root, api.base_url,
                             daemon={"workers": 8, "stability_s": STABILITY_S},
                             api={"max_requests_per_minute": 100000})
        inbox = root / "studio" / "inbox"
        started = time.perf_counter()
        fill_distinct(inbox, files)
        print(f"  {files:,} inputs written in {time.perf_counter() - started:.1f} s", flush=True)
        scan_s = median([time_scan(config) for _ in range(3)])
        first_upload_s, peak_bytes = start_on_backlog(api, config)
    note = f"{files:,} files in one inbox"
    return [
        at_most(NAME, "start to first upload", first_upload_s, "s", TARGET_FIRST_UPLOAD_S,
                note=f"{note}; includes interpreter start, stability_s={STABILITY_S} and "
                     f"the start-up scan, {scan_s:.1f} s of it alone in this process"),
        info(NAME, "scan rate", files / scan_s, "files/s",
             note=f"IntakeCoordinator.scan_all: {scan_s:.2f} s for {files:,} files"),
        at_most(NAME, "peak RSS", peak_bytes / 2**20, "MB", TARGET_PEAK_RSS_MB,
                note=f"VmHWM after {WORK_AFTER_FIRST_UPLOAD_S:g} s of work on the backlog"),
    ]


def fill_distinct(folder: Path, count: int) -> None:
    """Write ``count`` distinct tiny PNGs into ``folder``: one encoded image, each copy with a
    ``tEXt`` chunk (``bench-index``) inserted before ``IEND``."""
    folder.mkdir(parents=True, exist_ok=True)
    image = TinyImages().png_bytes(0)
    head, end = image[:-12], image[-12:]  # IEND: length 0, type, CRC
    for index in range(count):
        text = b"tEXtbench-index\x00" + str(index).encode()
        chunk = (struct.pack(">I", len(text) - 4) + text
                 + struct.pack(">I", zlib.crc32(text)))
        fd = os.open(folder / f"img-{index:06d}.png", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, head + chunk + end)
        finally:
            os.close(fd)


def time_scan(config_path: Path) -> float:
    """Seconds the daemon's start-up scan takes over the configured inboxes."""
    config = load_config(config_path)
    intake = IntakeCoordinator(config.folders, config.daemon.stability_s)
    started = time.perf_counter()
    intake.scan_all()
    return time.perf_counter() - started


def start_on_backlog(api: Emulator, config: Path) -> tuple[float, int]:
    """Start the daemon: (seconds from spawn to the first upload, peak RSS bytes)."""
    api.reset_log()
    with Daemon(config, API_KEY) as daemon:
        wait_for(lambda: _first_upload(api) is not None or daemon.exited(),
                 timeout_s=60, interval_s=0.05, what="the first upload")
        daemon.assert_running()
        first = _first_upload(api)
        assert first is not None
        time.sleep(WORK_AFTER_FIRST_UPLOAD_S)  # let it work on the backlog before reading VmHWM
        peak_bytes = daemon.peak_rss_bytes()
        daemon.stop()
    return first - daemon.started_at, peak_bytes


def _first_upload(api: Emulator) -> float | None:
    uploads = [e["timestamp_s"] for e in api.log() if e["endpoint"] == "upload"]
    return min(uploads) if uploads else None
