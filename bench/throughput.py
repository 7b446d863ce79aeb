"""Throughput: jobs per second against the physical limit, and against the scripts a user writes.

The emulator answers after a fixed latency (upload 50 ms, process 400 ms, download 50 ms per
variant, 3 variants). A job's downloads need not wait for each other, so its critical path is
``upload + process + one download`` = 0.5 s and ``workers`` workers can at best finish
``workers / 0.5`` jobs a second (16 with 8 workers). Every rate below runs from the first upload
to the end of the last job: for the daemon, from the first upload the emulator logs to the
moment the bench sees the last input archived (polled every 50 ms); for a script, from just
before its first upload to just after its last output is written (``bench/peers.py``). Three
sets of rounds, on one emulator:

1. **Small images** (64x48 PNGs, present at start-up): the daemon against the limit and against
   the naive client (``bench/naive.py``), alternating rounds, medians.
2. **Photos** (distinct 3-4 MP camera-like JPEGs, ``bench/images.CameraPhotos``), with the
   emulator in its benchmark mode (``prerendered``: one real render per input size and variant,
   done before the rounds, so its CPU never binds): the daemon against the careful user's
   ``ThreadPoolExecutor`` script and the hand-tuned script, same workers, same files; rounds
   alternate daemon, careful, tuned, naive; medians.
3. **Nagle**: small images, the emulator leaving Nagle's algorithm on (``nagle``) then off, the
   daemon and, as a control, the careful script.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import peers
from bench.figures import Figure, at_least, at_most, info, median
from bench.floor import durable_steps_cpu_s, promised_checks_cpu_s
from bench.harness import (
    API_KEY,
    Daemon,
    Emulator,
    MachineLoad,
    Settings,
    count_files,
    cpu_seconds,
    make_config,
    wait_for,
)
from bench.images import CameraPhotos, TinyImages
from bench.naive import run_folder
from bench.timeline import DEBUG_ENV, summarise

NAME = "throughput"
LATENCY_UPLOAD_S, LATENCY_PROCESS_S, LATENCY_DOWNLOAD_S = 0.05, 0.4, 0.05
VARIANTS = 3
WORKERS = 8
CRITICAL_PATH_S = LATENCY_UPLOAD_S + LATENCY_PROCESS_S + LATENCY_DOWNLOAD_S
LIMIT_JOBS_PER_S = WORKERS / CRITICAL_PATH_S
TARGET_EFFICIENCY = 0.95
TARGET_SPEEDUP = 7.0
TARGET_OVER_CAREFUL = 1.15
TARGET_OVER_TUNED = 1.0
TARGET_CPU_MS_PER_JOB = 10.0

Script = Callable[[Path, Path], tuple[int, float]]  # (inbox, out dir) -> (files, seconds)


@dataclass(frozen=True)
class DaemonRound:
    """What one daemon run over a folder gave."""

    jobs_per_s: float
    cpu_s_per_job: float
    log: list[dict[str, Any]]
    daemon_log: str = ""
    start_cpu_s: float = 0.0  # before the first upload; left out of cpu_s_per_job


def run(settings: Settings) -> list[Figure]:
    root = settings.workdir / NAME
    with Emulator(root / "emulator", latency_upload_s=LATENCY_UPLOAD_S,
                  latency_process_s=LATENCY_PROCESS_S,
                  latency_download_s=LATENCY_DOWNLOAD_S) as api:
        figures = small_image_rounds(settings, api, root / "small")
        figures += photo_rounds(settings, api, root / "photos")
        figures += nagle_rounds(settings, api, root / "nagle")
    return figures


# -- small images: the limit and the naive client ---------------------------------------------

def small_image_rounds(settings: Settings, api: Emulator, root: Path) -> list[Figure]:
    rounds, images = settings.pick(3, 1), settings.pick(400, 80)
    naive_images = settings.pick(40, 10)
    tiny = TinyImages()
    daemons: list[DaemonRound] = []
    naive_rates: list[float] = []
    peer_rates: dict[str, list[float]] = {"tuned": [], "lean": []}
    peer_cpu_s: dict[str, list[float]] = {"tuned": [], "lean": []}
    busy: list[float] = []
    for n in range(rounds):
        load = MachineLoad()
        daemons.append(daemon_round(api, root / f"daemon-{n}", images,
                                    lambda inbox, n=n: tiny.fill(inbox, images, start=n * images)))
        busy.append(load.busy_share())
        naive_inbox = root / f"naive-{n}" / "inbox"
        tiny.fill(naive_inbox, naive_images, prefix="naive")
        naive_rates.append(rate(run_folder(api.base_url, API_KEY, naive_inbox,
                                           naive_inbox.parent / "out")))
        for name, script in (("tuned", peers.tuned_folder), ("lean", peers.lean_folder)):
            inbox = root / f"{name}-{n}" / "inbox"
            tiny.fill(inbox, images, prefix=name)
            before_s = cpu_seconds(os.getpid())
            files, elapsed_s = script(api.base_url, API_KEY, inbox, inbox.parent / "out", WORKERS)
            peer_cpu_s[name].append((cpu_seconds(os.getpid()) - before_s) / files)
            peer_rates[name].append(files / elapsed_s)
        print(f"  small round {n + 1}/{rounds}: daemon {daemons[-1].jobs_per_s:.2f} jobs/s, "
              f"naive {naive_rates[-1]:.2f}, tuned {peer_rates['tuned'][-1]:.2f}, "
              f"lean {peer_rates['lean'][-1]:.2f} jobs/s", flush=True)
    timed = daemon_round(api, root / "timeline", images // 2,
                         lambda inbox: tiny.fill(inbox, images // 2, prefix="timed"),
                         env=DEBUG_ENV)
    timeline = summarise(timed.daemon_log)
    daemon_rate = median([d.jobs_per_s for d in daemons])
    daemon_cpu_s = median([d.cpu_s_per_job for d in daemons])
    ratios = [d.jobs_per_s / r for d, r in zip(daemons, naive_rates, strict=True)]
    real_path_s = median([critical_path_s(d.log) for d in daemons])
    note = f"{images} images x {rounds} round(s), {WORKERS} workers, median"
    floor = Floor(median(peer_cpu_s["tuned"]), median(peer_cpu_s["lean"]),
                  promised_checks_cpu_s(root / "daemon-0"),
                  durable_steps_cpu_s(root / "daemon-0", root / "floor"))
    return [
        at_least(NAME, "daemon / critical-path limit", daemon_rate / LIMIT_JOBS_PER_S, "",
                 TARGET_EFFICIENCY,
                 note=f"{daemon_rate:.2f} of {LIMIT_JOBS_PER_S:.2f} jobs/s = {WORKERS} / "
                      f"(upload + process + one download); {note}"),
        at_least(NAME, "daemon / naive client", median(ratios), "x", TARGET_SPEEDUP,
                 note=f"naive {median(naive_rates):.2f} jobs/s over {naive_images} images; "
                      f"ratios {', '.join(f'{r:.2f}' for r in ratios)}"),
        info(NAME, "daemon jobs/s", daemon_rate, "jobs/s"),
        info(NAME, "naive jobs/s", median(naive_rates), "jobs/s",
             note=f"its own limit is {1 / (CRITICAL_PATH_S + 2 * LATENCY_DOWNLOAD_S):.2f}"),
        info(NAME, "daemon / limit at the emulator's real answer times",
             daemon_rate * real_path_s / WORKERS, "",
             note=f"mean upload + process + download took {real_path_s * 1000:.0f} ms, "
                  f"not {CRITICAL_PATH_S * 1000:.0f}"),
        info(NAME, "tuned script / critical-path limit", median(peer_rates["tuned"])
             / LIMIT_JOBS_PER_S, "",
             note=f"the control, same images and workers, checking and keeping nothing: "
                  f"{median(peer_rates['tuned']):.2f} jobs/s; the daemon is "
                  f"{daemon_rate / median(peer_rates['tuned']):.2f} of it"),
        at_most(NAME, "daemon CPU per job", daemon_cpu_s * 1000, "ms", TARGET_CPU_MS_PER_JOB,
                note="from the first upload to the last input archived, all threads, user + "
                     "system; start-up before it (imports, configuration, scan): "
                     f"{median([d.start_cpu_s for d in daemons]):.2f} s"),
        *floor.figures(daemon_cpu_s),
        info(NAME, "API time / wall time per job", timeline.api_share, "",
             note=f"the daemon's own timeline of {timeline.jobs} jobs (a run at DEBUG): "
                  f"{timeline.api_ms:.0f} of {timeline.wall_ms:.0f} ms in API calls; largest "
                  f"gaps per job: {timeline.top_gaps()} (slot: waiting for one of the "
                  f"{WORKERS} API slots, i.e. work prepared ahead)"),
        info(NAME, "API time / time holding an API slot", timeline.api_share_of_slot, "",
             note=f"{timeline.api_ms:.0f} of {timeline.slot_ms:.0f} ms per job from taking a "
                  "slot to the last download: the critical path's own overhead"),
        info(NAME, "machine CPU busy during daemon rounds", median(busy) * 100, "%",
             note="all processes, all cores: how noisy the machine was"),
    ]


@dataclass(frozen=True)
class Floor:
    """CPU seconds per small-image job of what any client pays (the peers' HTTP) and of what
    the daemon promises (``bench.floor``), each measured alone."""

    tuned_s: float  # the tuned script: requests, no checks, nothing durable
    lean_s: float  # the same calls on urllib3 alone
    checks_s: float
    durable_s: float

    def figures(self, daemon_s: float) -> list[Figure]:
        """The floor beside the daemon's figure, and what is left above it."""
        least_s = self.lean_s + self.checks_s + self.durable_s
        return [
            info(NAME, "tuned script CPU per job", self.tuned_s * 1000, "ms",
                 note="the same five calls on requests, three files written: nothing checked, "
                      "journaled or archived"),
            info(NAME, "lean script CPU per job", self.lean_s * 1000, "ms",
                 note="the same calls on urllib3 alone: the HTTP floor in Python"),
            info(NAME, "promised checks and durable steps, CPU per job",
                 (self.checks_s + self.durable_s) * 1000, "ms",
                 note=f"checks {self.checks_s * 1000:.1f} ms (input and outputs decoded, "
                      f"sha256s), durable steps {self.durable_s * 1000:.1f} ms (claim, journal, "
                      "fdatasync and fsync of files and folders, publish, archive, ledger), "
                      "each alone in one thread"),
            info(NAME, "CPU floor of a kept promise per job", least_s * 1000, "ms",
                 note=f"lean HTTP + checks + durable steps, of a {TARGET_CPU_MS_PER_JOB:.0f} ms "
                      f"target; the daemon spends {(daemon_s - least_s) * 1000:.1f} ms above it "
                      "(requests, threads handing the GIL over, scheduling, logging)"),
        ]


# -- photos: the daemon against the scripts a user could write --------------------------------

def photo_rounds(settings: Settings, api: Emulator, root: Path) -> list[Figure]:
    rounds, files, naive_files = settings.pick(3, 1), settings.pick(48, 16), settings.pick(8, 4)
    photos = CameraPhotos(root / "cache")
    api.update(prerendered=True)
    warm_up(api, photos, root / "warm-up")
    scripts: dict[str, Script] = {
        "careful": lambda inbox, out: peers.careful_folder(api.base_url, API_KEY, inbox, out,
                                                           WORKERS),
        "tuned": lambda inbox, out: peers.tuned_folder(api.base_url, API_KEY, inbox, out,
                                                       WORKERS),
        "naive": lambda inbox, out: run_folder(api.base_url, API_KEY, inbox, out),
    }
    rates: dict[str, list[float]] = {"daemon": [], **{name: [] for name in scripts}}
    cpu_s: list[float] = []
    emulator_cpu_s: list[float] = []
    for n in range(rounds):
        emulator_before = cpu_seconds(api.pid)
        daemon = daemon_round(api, root / f"daemon-{n}", files,
                              lambda inbox: photos.fill(inbox, files))
        emulator_cpu_s.append((cpu_seconds(api.pid) - emulator_before) / files)
        rates["daemon"].append(daemon.jobs_per_s)
        cpu_s.append(daemon.cpu_s_per_job)
        for name, script in scripts.items():
            inbox = root / f"{name}-{n}" / "inbox"
            photos.fill(inbox, naive_files if name == "naive" else files)
            rates[name].append(rate(script(inbox, inbox.parent / "out")))
        print(f"  photo round {n + 1}/{rounds}: "
              + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rates.items()) + " jobs/s", flush=True)
    api.update(prerendered=False)
    checks_s = promised_checks_cpu_s(root / "daemon-0")
    return photo_figures(rates, cpu_s, files, rounds) + cpu_budget_figures(
        median(rates["tuned"]), median(cpu_s), median(emulator_cpu_s), checks_s)


def cpu_budget_figures(tuned_rate: float, daemon_s: float, emulator_s: float,
                       checks_s: float) -> list[Figure]:
    """Why the photo targets are a matter of cores here: what the tuned script's rate would
    take of the two cores with the daemon's CPU per job, and how much of that the promised
    checks alone are."""
    cores = os.cpu_count() or 1
    needed = tuned_rate * (daemon_s + emulator_s)
    return [
        info(NAME, "photos: promised checks, CPU per job", checks_s * 1000, "ms",
             note="input decoded in full, outputs decoded (the PNG inflated) and checked, "
                  "their sha256; alone, one thread, on a round's own files"),
        info(NAME, "photos: cores the tuned rate would take", needed, "cores",
             note=f"{tuned_rate:.2f} jobs/s x (daemon {daemon_s * 1000:.0f} + emulator "
                  f"{emulator_s * 1000:.0f} ms of CPU per job), of {cores}; the checks alone "
                  f"{tuned_rate * (checks_s + emulator_s):.2f} with the emulator"),
    ]


def warm_up(api: Emulator, photos: CameraPhotos, root: Path) -> None:
    """One process call per photo size, so the emulator's only real renders are not timed."""
    photos.fill(root / "inbox", len(photos.sizes))  # photos 0..k-1 are one of each size
    run_folder(api.base_url, API_KEY, root / "inbox", root / "out")


def photo_figures(rates: dict[str, list[float]], cpu_s: list[float], files: int,
                  rounds: int) -> list[Figure]:
    def ratio(peer: str) -> tuple[float, str]:
        ratios = [d / p for d, p in zip(rates["daemon"], rates[peer], strict=True)]
        return median(ratios), ", ".join(f"{r:.2f}" for r in ratios)

    note = f"{files} photos of 3-4 MP x {rounds} round(s), {WORKERS} workers, median"
    careful, careful_all = ratio("careful")
    tuned, tuned_all = ratio("tuned")
    naive, _ = ratio("naive")
    return [
        at_least(NAME, "photos: daemon / careful script", careful, "x", TARGET_OVER_CAREFUL,
                 note=f"ThreadPoolExecutor, a session per thread, downloads in turn; ratios "
                      f"{careful_all}; {note}"),
        at_least(NAME, "photos: daemon / tuned script", tuned, "x", TARGET_OVER_TUNED,
                 note=f"a job's downloads at once, streamed; ratios {tuned_all}"),
        info(NAME, "photos: daemon / naive client", naive, "x"),
        *[info(NAME, f"photos: {name} jobs/s", median(values), "jobs/s",
               note=f"limit {LIMIT_JOBS_PER_S:.2f}" if name != "naive" else "")
          for name, values in rates.items()],
        info(NAME, "photos: daemon CPU per job", median(cpu_s) * 1000, "ms",
             note="from the first upload, as for small images"),
    ]


# -- Nagle: does the client care whether the server sets TCP_NODELAY? -------------------------

def nagle_rounds(settings: Settings, api: Emulator, root: Path) -> list[Figure]:
    rounds, images = settings.pick(2, 1), settings.pick(160, 80)
    tiny = TinyImages()
    rates: dict[tuple[str, bool], list[float]] = {}
    start = 10**6
    for n in range(rounds):
        for nagle in (True, False):
            api.update(nagle=nagle)  # for connections accepted from now on
            tag = f"{'on' if nagle else 'off'}-{n}"
            daemon = daemon_round(api, root / f"daemon-{tag}", images,
                                  lambda inbox, s=start: tiny.fill(inbox, images, start=s))
            inbox = root / f"careful-{tag}" / "inbox"
            tiny.fill(inbox, images, prefix="careful", start=start)
            start += images
            careful = rate(peers.careful_folder(api.base_url, API_KEY, inbox,
                                                inbox.parent / "out", WORKERS))
            rates.setdefault(("daemon", nagle), []).append(daemon.jobs_per_s)
            rates.setdefault(("careful", nagle), []).append(careful)
            print(f"  nagle {tag}: daemon {daemon.jobs_per_s:.2f}, careful {careful:.2f} "
                  "jobs/s", flush=True)
    api.update(nagle=False)

    def ratio(who: str) -> float:
        return median(rates[(who, True)]) / median(rates[(who, False)])

    note = (f"{images} small images x {rounds} round(s); the emulator writes an answer's "
            "headers and body in two writes, so with Nagle on every answer waits for the "
            "client's delayed ACK")
    return [
        info(NAME, "daemon with the emulator's Nagle on / off", ratio("daemon"), "",
             note=f"{median(rates[('daemon', True)]):.2f} / "
                  f"{median(rates[('daemon', False)]):.2f} jobs/s; {note}"),
        info(NAME, "careful script with the emulator's Nagle on / off", ratio("careful"), "",
             note="the control: what any client pays"),
    ]


# -- one daemon run, and reading the request log ----------------------------------------------

def daemon_round(api: Emulator, root: Path, images: int,
                 fill: Callable[[Path], object], env: dict[str, str] | None = None,
                 ) -> DaemonRound:
    """One daemon run over ``images`` files that ``fill`` puts in its inbox before it starts;
    ``env`` is added to the daemon's environment."""
    config = make_config(root, api.base_url, daemon={"workers": WORKERS, "stability_s": 0.2},
                         api={"max_requests_per_minute": 100000})
    fill(root / "studio" / "inbox")
    archive = root / "studio" / "archive"
    api.reset_log()
    with Daemon(config, API_KEY, env=env) as daemon:
        wait_for(lambda: api.has_uploads() or daemon.exited(), timeout_s=60, interval_s=0.02,
                 what="the first upload")
        start_cpu_s = daemon.cpu_seconds()  # start-up: imports, configuration, the scan
        wait_for(lambda: count_files(archive) >= images or daemon.exited(),
                 timeout_s=60 + images / 2, interval_s=0.05, what="every input archived")
        done_at = time.monotonic()
        daemon.assert_running()
        cpu_s = daemon.cpu_seconds() - start_cpu_s
        daemon.stop()
    log = api.log()
    first_upload = min(e["timestamp_s"] for e in log if e["endpoint"] == "upload")
    return DaemonRound(images / (done_at - first_upload), cpu_s / images, log,
                       daemon.log_text(), start_cpu_s)


def critical_path_s(log: list[dict[str, Any]]) -> float:
    """Mean upload + mean process + mean download answer time in a request log (seconds)."""
    return sum(statistics.fmean(e["duration_s"] for e in log if e["endpoint"] == endpoint)
               for endpoint in ("upload", "process", "download"))


def rate(result: tuple[int, float]) -> float:
    """Jobs per second from a script's (files, elapsed seconds)."""
    files, elapsed_s = result
    return files / elapsed_s
