"""Scale: throughput, first-upload time, memory and CPU per job at 8, 32 and 64 workers.

The emulator answers after a fixed latency: upload 50 ms, process 400 ms, download 50 ms per
variant, 3 variants. A job's critical path is ``upload + process + one download`` = 0.5 s when
its three downloads run at once, so ``workers`` workers finish at best ``workers / 0.5`` jobs a
second (the limit the targets are checked against); ``workers / 0.6`` is the limit of a daemon
that downloads one variant after the other (reported for information). The rate limiter is set
far above what 64 workers ask, so it never binds.

Each point is one daemon over ``workers x batches`` tiny images present at start-up (a whole
number of rounds of the workers, so the last round is full). Its rate is counted from the first
upload the emulator sees to the last input archived. CPU per job, of the daemon and of the
emulator, and the machine's busy share are read over that same window, so the daemon's start-up
is not in them; peak RSS is the kernel's high-water mark at the end. The emulator's own answer
times give a second ratio, ``jobs/s x its mean critical path per job / workers``: when it stays
high while the first drops, the emulator (its rendering, on the same 2 cores) answered slowly,
not the daemon. When the emulator offers ``prerendered`` (outputs rendered once per input size,
served for every later input), it is switched on and the notes say so.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
import requests

from bench.figures import Figure, at_least, info
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
from bench.images import TinyImages
from tests.support import UPLOAD_PREFIX

NAME = "scale"
LATENCY_UPLOAD_S, LATENCY_PROCESS_S, LATENCY_DOWNLOAD_S = 0.05, 0.4, 0.05
VARIANTS = 3
CRITICAL_PATH_S = LATENCY_UPLOAD_S + LATENCY_PROCESS_S + LATENCY_DOWNLOAD_S
SEQUENTIAL_PATH_S = LATENCY_UPLOAD_S + LATENCY_PROCESS_S + VARIANTS * LATENCY_DOWNLOAD_S
TARGETS = {8: 0.95, 32: 0.90, 64: 0.80}  # workers: share of the critical-path limit
REQUESTS_PER_MINUTE = 1_000_000  # 64 workers ask at most 64 / 0.5 x 5 x 60 = 38,400
STABILITY_S = 0.2
CORES = psutil.cpu_count() or 1


@dataclass(frozen=True)
class Point:
    """What one daemon run at one worker count measured."""

    workers: int
    jobs: int
    jobs_per_s: float
    first_upload_s: float   # from spawning the daemon
    daemon_cpu_s: tuple[float, float]  # (user, system) over the working window: first
    emulator_cpu_s: float              # upload to last input archived
    peak_rss_bytes: int
    busy_share: float                  # the whole machine, over the working window
    window_s: float                    # first upload to last input archived
    api: ApiTimes

    @property
    def limit(self) -> float:
        return self.workers / CRITICAL_PATH_S

    @property
    def cpu_ceiling(self) -> float:
        """Jobs/s this machine's cores allow at the measured CPU per job (daemon and emulator),
        and at most ``1 / daemon user CPU per job``: the GIL runs one thread's Python at once."""
        daemon_s = sum(self.daemon_cpu_s) / self.jobs
        cores_bound = CORES / (daemon_s + self.emulator_cpu_s / self.jobs)
        return min(cores_bound, self.jobs / self.daemon_cpu_s[0])

    @property
    def worker_s_per_job(self) -> float:
        """Wall time one worker spent per job: the emulator's part and the daemon's own."""
        return self.workers / self.jobs_per_s


def run(settings: Settings) -> list[Figure]:
    batches = settings.pick(32, 6)
    root = settings.workdir / NAME
    tiny = TinyImages()
    figures: list[Figure] = []
    with Emulator(root / "emulator", latency_upload_s=LATENCY_UPLOAD_S,
                  latency_process_s=LATENCY_PROCESS_S,
                  latency_download_s=LATENCY_DOWNLOAD_S) as api:
        mode = emulator_mode(api)
        start = 0
        for workers in TARGETS:
            jobs = workers * batches
            point = run_point(api, root / f"w{workers}", workers, jobs, tiny, start)
            start += jobs
            print(f"  {workers} workers: {point.jobs_per_s:.1f} jobs/s of {point.limit:.0f}, "
                  f"machine {point.busy_share:.0%} busy", flush=True)
            figures += point_figures(point, mode)
    return figures


def emulator_mode(api: Emulator) -> str:
    """Switch on the emulator's pre-rendered outputs where it has them; the mode in use."""
    answer = requests.get(f"{api.base_url}/_control/", timeout=30)
    answer.raise_for_status()
    options: dict[str, Any] = answer.json()
    if "prerendered" not in options:
        return "emulator renders every output"
    api.update(prerendered=True)
    return "emulator pre-rendered"


def run_point(api: Emulator, root: Path, workers: int, jobs: int, tiny: TinyImages,
              start: int) -> Point:
    """One daemon with ``workers`` workers over ``jobs`` images present at start-up."""
    config = make_config(root, api.base_url,
                         daemon={"workers": workers, "stability_s": STABILITY_S},
                         api={"max_requests_per_minute": REQUESTS_PER_MINUTE})
    tiny.fill(root / "studio" / "inbox", jobs, start=start)
    archive = root / "studio" / "archive"
    api.reset_log()
    with Daemon(config, API_KEY) as daemon:
        wait_for(lambda: api.has_uploads() or daemon.exited(), timeout_s=60, interval_s=0.02,
                 what="the first upload")
        daemon.assert_running()
        load, daemon_before, api_cpu = MachineLoad(), cpu_split(daemon.pid), cpu_seconds(api.pid)
        wait_for(lambda: count_files(archive) >= jobs or daemon.exited(),
                 timeout_s=60 + jobs * CRITICAL_PATH_S, interval_s=0.05,
                 what="every input archived")
        done_at = time.monotonic()
        daemon.assert_running()
        daemon_after = cpu_split(daemon.pid)
        api_cpu = cpu_seconds(api.pid) - api_cpu
        busy, peak = load.busy_share(), daemon.peak_rss_bytes()
        daemon.stop()
    log = api.log()
    first = min(e["timestamp_s"] for e in log if e["endpoint"] == "upload")
    return Point(workers, jobs, jobs / (done_at - first), first - daemon.started_at,
                 _minus(daemon_after, daemon_before), api_cpu, peak, busy, done_at - first,
                 api_times(log))


def _minus(after: tuple[float, float], before: tuple[float, float]) -> tuple[float, float]:
    return after[0] - before[0], after[1] - before[1]


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by a process and its threads (10 ms ticks)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user), float(times.system)


@dataclass(frozen=True)
class ApiTimes:
    """Means per job, from the emulator's request log (arrival time and answer time of each
    call): ``critical_s``, its upload, process call and longest download; ``busy_s``, the
    time at least one of its calls was in flight; ``gaps_s``, the time between its first
    call's arrival and its last answer when none was (the daemon's own steps in between)."""

    critical_s: float
    busy_s: float
    gaps_s: float


def api_times(log: list[dict[str, Any]]) -> ApiTimes:
    """The emulator's answer times per job (see :class:`ApiTimes`); zeros for an empty log."""
    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in log:
        job = _job_of(entry)
        if job is not None:
            calls[job].append(entry)
    if not calls:
        return ApiTimes(0.0, 0.0, 0.0)
    critical = [_critical_s(entries) for entries in calls.values()]
    spans = [_busy_and_span_s(entries) for entries in calls.values()]
    return ApiTimes(sum(critical) / len(calls), sum(b for b, _ in spans) / len(calls),
                    sum(s - b for b, s in spans) / len(calls))


def _critical_s(entries: list[dict[str, Any]]) -> float:
    spent: dict[str, float] = defaultdict(float)
    for entry in entries:
        if entry["endpoint"] == "download":
            spent["download"] = max(spent["download"], entry["duration_s"])
        else:
            spent[entry["endpoint"]] += entry["duration_s"]
    return sum(spent.values())


def _busy_and_span_s(entries: list[dict[str, Any]]) -> tuple[float, float]:
    """(time covered by at least one call, first arrival to last answer) of one job."""
    intervals = sorted((e["timestamp_s"], e["timestamp_s"] + e["duration_s"]) for e in entries)
    busy, (start, end) = 0.0, intervals[0]
    for low, high in intervals[1:]:
        if low > end:
            busy, start = busy + end - start, low
        end = max(end, high)
    return busy + end - start, end - intervals[0][0]


def _job_of(entry: dict[str, Any]) -> str | None:
    parts = (entry.get("file_path") or "").split("/")
    return parts[1] if len(parts) > 2 and parts[0] == UPLOAD_PREFIX else None


def point_figures(point: Point, mode: str) -> list[Figure]:
    """The figures of one point, each named after its worker count."""
    w, jobs, api = point.workers, point.jobs, point.api
    user_s, system_s = point.daemon_cpu_s
    why = (f"machine {point.busy_share:.0%} busy, emulator {_ms(point.emulator_cpu_s, jobs)} "
           f"ms CPU per job, daemon {_ms(user_s + system_s, jobs)}")
    return [
        at_least(NAME, f"{w} workers: jobs/s / critical-path limit",
                 point.jobs_per_s / point.limit, "", TARGETS[w],
                 note=f"{point.jobs_per_s:.1f} of {point.limit:.0f} jobs/s, {jobs} jobs; {why}"),
        info(NAME, f"{w} workers: jobs/s / sequential-download limit",
             point.jobs_per_s * SEQUENTIAL_PATH_S / w, "",
             note=f"limit {w / SEQUENTIAL_PATH_S:.1f} jobs/s"),
        info(NAME, f"{w} workers: jobs/s / limit at the emulator's answer times",
             api.critical_s / point.worker_s_per_job, "",
             note=f"the emulator answered a job's critical path in {api.critical_s * 1000:.0f} "
                  f"ms, not {CRITICAL_PATH_S * 1000:.0f}; {mode}"),
        info(NAME, f"{w} workers: worker time per job outside API calls",
             (point.worker_s_per_job - api.busy_s) * 1000, "ms",
             note=f"of {point.worker_s_per_job * 1000:.0f} ms per job and worker, "
                  f"{api.gaps_s * 1000:.0f} between a job's calls, the rest before its upload "
                  "and after its last download"),
        info(NAME, f"{w} workers: CPU ceiling / critical-path limit",
             point.cpu_ceiling / point.limit, "",
             note=f"{point.cpu_ceiling:.0f} jobs/s: {CORES} cores / (daemon + emulator CPU per "
                  f"job), at most 1 / daemon user CPU per job (the GIL)"),
        info(NAME, f"{w} workers: CPU share of the machine by process", point.busy_share * 100,
             "%", note=_shares(point)),
        info(NAME, f"{w} workers: start to first upload", point.first_upload_s, "s",
             note=f"{jobs} files present; stability_s={STABILITY_S}"),
        info(NAME, f"{w} workers: daemon CPU per job", (user_s + system_s) / jobs * 1000, "ms",
             note=f"user {_ms(user_s, jobs)}, system {_ms(system_s, jobs)}"),
        info(NAME, f"{w} workers: emulator CPU per job", point.emulator_cpu_s / jobs * 1000,
             "ms"),
        info(NAME, f"{w} workers: peak RSS", point.peak_rss_bytes / 2**20, "MB"),
    ]


def _shares(point: Point) -> str:
    """Who used the machine's cores over the working window: daemon, emulator, the rest."""
    capacity_s = CORES * point.window_s
    daemon, emulator = sum(point.daemon_cpu_s) / capacity_s, point.emulator_cpu_s / capacity_s
    rest = point.busy_share - daemon - emulator
    return (f"all {CORES} cores busy {point.busy_share:.0%}: daemon {daemon:.0%}, emulator "
            f"{emulator:.0%}, other processes (this bench, other jobs) {rest:.0%}")


def _ms(seconds: float, jobs: int) -> str:
    return f"{seconds / jobs * 1000:.1f}"
