"""Latency: from ``close()`` of a file dropped into the inbox to its whole output set published.

The emulator answers at once (no injected latency), ``stability_s = 0.5``. The bench writes one
small image at a time (open, write, close; the clock is read right after ``close``), polls the
outbox every 5 ms until the last of the file's three outputs is there, waits a random 50-500 ms
and drops the next one, so files never queue behind each other and arrive at every phase of
the daemon's loop. One warm-up file is dropped first and not counted. Once with inotify, once
with polling (``poll_interval_s = 1``). To tell where the time goes, the part from ``close()``
to the first upload the emulator sees (noticing, the stability gate, claiming, the local
check) is reported too.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from bench.figures import Figure, at_most, info, median, percentile
from bench.harness import API_KEY, Daemon, Emulator, Settings, make_config, wait_for
from bench.images import TinyImages

NAME = "latency"
STABILITY_S = 0.5
POLL_INTERVAL_S = 1.0
SLACK_S = 0.3
OUTPUT_SUFFIXES = (".full.png", ".thumb.webp", ".white.jpg")
POLL_S = 0.005


def run(settings: Settings) -> list[Figure]:
    files = settings.pick(40, 15)
    root = settings.workdir / NAME
    figures: list[Figure] = []
    with Emulator(root / "emulator") as api:
        for mode, allowed_s in (("inotify", STABILITY_S + SLACK_S),
                                ("polling", POLL_INTERVAL_S + STABILITY_S + SLACK_S)):
            drops = measure(api, root / mode, mode, files)
            latencies = [total for total, _ in drops]
            to_upload = [part for _, part in drops]
            note = f"{files} files, stability_s={STABILITY_S}"
            if mode == "polling":
                note += f", poll_interval_s={POLL_INTERVAL_S}"
            figures += [
                info(NAME, f"{mode} p50", median(latencies), "s", note=note),
                at_most(NAME, f"{mode} p95", percentile(latencies, 95), "s", allowed_s,
                        note=f"max {max(latencies):.3f} s"),
                info(NAME, f"{mode} p95, close to first upload", percentile(to_upload, 95),
                     "s", note=f"p50 {median(to_upload):.3f} s; min {min(to_upload):.3f} s"),
            ]
    return figures


def measure(api: Emulator, root: Path, mode: str, files: int) -> list[tuple[float, float]]:
    """Drop ``files`` images one at a time; for each, seconds from close() to published and
    from close() to the first upload."""
    config = make_config(root, api.base_url,
                         daemon={"workers": 8, "stability_s": STABILITY_S},
                         api={"max_requests_per_minute": 100000},
                         folder={"watch": mode, "poll_interval_s": POLL_INTERVAL_S})
    inbox, outbox = root / "studio" / "inbox", root / "studio" / "outbox"
    inbox.mkdir(parents=True, exist_ok=True)
    tiny, rng = TinyImages(), random.Random(5)
    drops: list[tuple[float, float]] = []
    with Daemon(config, API_KEY) as daemon:
        wait_for(lambda: (root / "state" / "status.json").exists(), timeout_s=30,
                 what="the daemon's first status report")
        drop_and_wait(inbox, outbox, tiny, 0, daemon)  # warm-up, not counted
        for index in range(1, files + 1):
            time.sleep(rng.uniform(0.05, 0.5))  # the gap between two drops, not a wait
            api.reset_log()
            closed_at, total_s = drop_and_wait(inbox, outbox, tiny, index, daemon)
            uploads = [e["timestamp_s"] for e in api.log() if e["endpoint"] == "upload"]
            drops.append((total_s, min(uploads) - closed_at))
        daemon.stop()
    return drops


def drop_and_wait(inbox: Path, outbox: Path, tiny: TinyImages, index: int,
                  daemon: Daemon) -> tuple[float, float]:
    """Write image ``index`` into ``inbox``: (monotonic time of its close(), seconds from
    then until all its outputs are seen in ``outbox``)."""
    data = tiny.png_bytes(index)
    stem = f"drop-{index:04d}"
    wanted = [outbox / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES]
    with (inbox / f"{stem}.png").open("wb") as stream:
        stream.write(data)
    closed_at = time.monotonic()
    deadline = closed_at + 30
    while not all(path.exists() for path in wanted):
        if time.monotonic() > deadline:
            daemon.assert_running()
            raise AssertionError(f"{stem}: outputs not published within 30 s")
        time.sleep(POLL_S)
    return closed_at, time.monotonic() - closed_at
