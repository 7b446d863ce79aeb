"""Throughput: jobs per second against the physical limit, and against the naive client.

The emulator answers after a fixed latency (upload 50 ms, process 400 ms, download 50 ms per
variant, 3 variants), so one job spends ``0.6 s`` in API calls and ``workers`` workers can at
best finish ``workers / 0.6`` jobs a second (13.3 with 8 workers). The daemon gets a folder of
small images at start-up; its rate is counted from the first upload the emulator sees to the
moment the last input is archived. In the same run and on the same emulator, the naive client
(``bench/naive.py``) processes a folder one file at a time. Rounds alternate daemon and naive
client; the figures are medians over rounds.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.figures import Figure, at_least, info, median
from bench.harness import (
    API_KEY,
    Daemon,
    Emulator,
    MachineLoad,
    Settings,
    count_files,
    make_config,
    wait_for,
)
from bench.images import TinyImages
from bench.naive import run_folder

NAME = "throughput"
LATENCY_UPLOAD_S, LATENCY_PROCESS_S, LATENCY_DOWNLOAD_S = 0.05, 0.4, 0.05
VARIANTS = 3
WORKERS = 8
PER_JOB_API_S = LATENCY_UPLOAD_S + LATENCY_PROCESS_S + VARIANTS * LATENCY_DOWNLOAD_S
LIMIT_JOBS_PER_S = WORKERS / PER_JOB_API_S
TARGET_EFFICIENCY = 0.90
TARGET_SPEEDUP = 7.0


def run(settings: Settings) -> list[Figure]:
    rounds = settings.pick(3, 1)
    images = settings.pick(400, 80)
    naive_images = settings.pick(40, 10)
    tiny = TinyImages()
    daemon_rates: list[float] = []
    naive_rates: list[float] = []
    cpu_ms: list[float] = []
    api_s: list[float] = []
    busy: list[float] = []
    root = settings.workdir / NAME
    with Emulator(root / "emulator", latency_upload_s=LATENCY_UPLOAD_S,
                  latency_process_s=LATENCY_PROCESS_S,
                  latency_download_s=LATENCY_DOWNLOAD_S) as api:
        for round_no in range(rounds):
            load = MachineLoad()
            rate, cpu_s, api_s_per_job = daemon_round(api, root / f"daemon-{round_no}", images,
                                                      tiny, start=round_no * images)
            busy.append(load.busy_share())
            daemon_rates.append(rate)
            api_s.append(api_s_per_job)
            cpu_ms.append(cpu_s / images * 1000)
            naive_rates.append(naive_round(api, root / f"naive-{round_no}", naive_images, tiny))
            print(f"  round {round_no + 1}/{rounds}: daemon {rate:.2f} jobs/s, "
                  f"naive {naive_rates[-1]:.2f} jobs/s", flush=True)
    ratios = [d / n for d, n in zip(daemon_rates, naive_rates, strict=True)]
    efficiency = median(daemon_rates) / LIMIT_JOBS_PER_S
    note = f"{images} images x {rounds} round(s), {WORKERS} workers, median"
    return [
        at_least(NAME, "daemon / physical limit", efficiency, "", TARGET_EFFICIENCY,
                 note=f"{median(daemon_rates):.2f} of {LIMIT_JOBS_PER_S:.2f} jobs/s; {note}"),
        at_least(NAME, "daemon / naive client", median(ratios), "x", TARGET_SPEEDUP,
                 note=f"naive {median(naive_rates):.2f} jobs/s over {naive_images} images; "
                      f"ratios {', '.join(f'{r:.2f}' for r in ratios)}"),
        info(NAME, "daemon jobs/s", median(daemon_rates), "jobs/s"),
        info(NAME, "naive jobs/s", median(naive_rates), "jobs/s",
             note=f"its own limit is {1 / PER_JOB_API_S:.2f}"),
        info(NAME, "daemon / limit at the emulator's real answer times",
             median(daemon_rates) * median(api_s) / WORKERS, "",
             note=f"the emulator took {median(api_s) * 1000:.0f} ms of calls per job, "
                  f"not {PER_JOB_API_S * 1000:.0f}"),
        info(NAME, "daemon CPU per job", median(cpu_ms), "ms"),
        info(NAME, "machine CPU busy during daemon rounds", median(busy) * 100, "%",
             note="all processes, all cores: how noisy the machine was"),
    ]


def daemon_round(api: Emulator, root: Path, images: int, tiny: TinyImages,
                 start: int) -> tuple[float, float, float]:
    """One daemon run over ``images`` files present at start-up: (jobs/s, CPU seconds used,
    seconds the emulator took to answer one job's calls, on average)."""
    config = make_config(root, api.base_url, daemon={"workers": WORKERS, "stability_s": 0.2},
                          api={"max_requests_per_minute": 100000})
    tiny.fill(root / "studio" / "inbox", images, start=start)
    archive = root / "studio" / "archive"
    api.reset_log()
    with Daemon(config, API_KEY) as daemon:
        wait_for(lambda: count_files(archive) >= images or daemon.exited(),
                 timeout_s=60 + images / 2, interval_s=0.05, what="every input archived")
        done_at = time.monotonic()
        daemon.assert_running()
        cpu_s = daemon.cpu_seconds()
        daemon.stop()
    log = api.log()
    uploads = [e["timestamp_s"] for e in log if e["endpoint"] == "upload"]
    api_s_per_job = sum(e["duration_s"] for e in log) / images
    return images / (done_at - min(uploads)), cpu_s, api_s_per_job


def naive_round(api: Emulator, root: Path, images: int, tiny: TinyImages) -> float:
    """The naive client over ``images`` files: jobs/s."""
    inbox = root / "inbox"
    tiny.fill(inbox, images, prefix="naive")
    done, elapsed_s = run_folder(api.base_url, API_KEY, inbox, root / "out")
    return done / elapsed_s
