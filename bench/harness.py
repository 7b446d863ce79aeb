"""What every benchmark shares: its settings, the emulator and the daemon as subprocesses, peak
memory and CPU time of a process, and waiting on the filesystem.

The emulator runs in its own process so that its rendering does not share a GIL with the daemon
or with the measuring code; both are started with the interpreter running the bench.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
import requests

from tests.support import API_KEY, REPO, DaemonProcess, wait_for, write_config

HTTP_ENV = "BGCUT_BENCH_HTTP"
"""Set (``bench.run --http``): every daemon runs with its listener on, visited like in use;
``quiet``: on but never visited."""
SCRAPE_EVERY_S = 15.0   # Prometheus' default scrape interval: /metrics
PAGE_EVERY_S = 5.0      # an open status page refreshing itself: /?part=main

__all__ = ["API_KEY", "Daemon", "Emulator", "MachineLoad", "Settings", "count_files",
           "make_config", "wait_for", "wait_quietly"]


@dataclass(frozen=True)
class Settings:
    """How big a run is: ``quick`` (CI, under ~3 minutes) or full, and where files go."""

    quick: bool
    workdir: Path

    def pick(self, full: int, quick: int) -> int:
        """The full-mode size or the quick-mode size."""
        return quick if self.quick else full


# -- processes -------------------------------------------------------------------------------

def peak_rss_bytes(pid: int) -> int:
    """The kernel's high-water mark of the resident set (VmHWM) of a running process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its threads (10 ms ticks)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class MachineLoad:
    """How busy every CPU of the machine was between ``start()`` and ``busy_share()``."""

    def __init__(self) -> None:
        self._before = psutil.cpu_times()

    def busy_share(self) -> float:
        """Share (0..1) of all CPU time spent busy, by any process, since construction."""
        after = psutil.cpu_times()
        total = sum(after) - sum(self._before)
        idle = (after.idle + after.iowait) - (self._before.idle + self._before.iowait)
        return 0.0 if total <= 0 else 1.0 - idle / total


def run_time_s(pid: int) -> float:
    """Nanosecond-precise CPU time of a process's live threads (``/proc/PID/task/*/schedstat``).

    Finer than :func:`cpu_seconds` (whose clock ticks are 10 ms), for small amounts such as
    an idle minute; threads that ended are not counted.
    """
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total_ns += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between the listing and the read
    return total_ns / 1e9


class Emulator:
    """``python -m bgcut_watchd fake-api`` on a free loopback port, as a subprocess.

    ``prerendered`` and ``nagle`` start it with those benchmark switches (both can also be
    flipped while it runs with :meth:`update`).
    """

    def __init__(self, workdir: Path, *, latency_upload_s: float = 0.0,
                 latency_process_s: float = 0.0, latency_download_s: float = 0.0,
                 prerendered: bool = False, nagle: bool = False) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self._workdir = workdir
        self._latency = (latency_upload_s, latency_process_s, latency_download_s)
        self._switches = [flag for flag, on in (("--prerendered", prerendered),
                                                ("--nagle", nagle)) if on]
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self, timeout_s: float = 20.0) -> Emulator:
        up, process, down = self._latency
        command = [sys.executable, "-m", "bgcut_watchd", "--log-level", "WARNING", "fake-api",
                   "--port", "0", "--api-key", API_KEY,
                   "--storage-dir", str(self._workdir / "storage"),
                   "--latency-upload", str(up), "--latency-process", str(process),
                   "--latency-download", str(down), *self._switches]
        with (self._workdir / "emulator.log").open("ab") as errors:
            self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors,
                                          stdin=subprocess.DEVNULL, text=True,
                                          env={**os.environ, "PYTHONPATH": str(REPO)})
        self.base_url = self._read_url(timeout_s)
        return self

    def _read_url(self, timeout_s: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout_s):
                raise RuntimeError("the emulator did not start in time")
        line = self._proc.stdout.readline().strip()
        if "listening on " not in line:
            raise RuntimeError(f"unexpected emulator output: {line!r}")
        return line.rsplit(" ", 1)[1]

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/_control/{path}"
        answer = (requests.get(url, timeout=30) if body is None
                  else requests.post(url, json=body, timeout=30))
        answer.raise_for_status()
        return answer.json()

    def log(self) -> list[dict[str, Any]]:
        """Every API request the emulator answered since the last ``reset_log``."""
        entries: list[dict[str, Any]] = self._control("log")
        return entries

    def has_uploads(self) -> bool:
        """Whether an upload arrived since the last ``reset_log`` (the daemon is at work)."""
        return any(e["endpoint"] == "upload" for e in self.log())

    def reset_log(self) -> None:
        self._control("reset-log", {})

    def update(self, **changes: Any) -> None:
        """Change emulator options while it runs (``POST /_control/``)."""
        self._control("", changes)

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Daemon(DaemonProcess):
    """The real daemon as a subprocess, with what the benchmarks read from it."""

    started_at: float = 0.0
    visitor: HttpVisitor | None = None

    def start(self) -> Daemon:
        self.started_at = time.monotonic()
        super().start()
        if os.environ.get(HTTP_ENV, "quiet") != "quiet":
            self.visitor = HttpVisitor(self.config_path.parent / "state" / "status.json")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def peak_rss_bytes(self) -> int:
        return peak_rss_bytes(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def run_time_s(self) -> float:
        return run_time_s(self.pid)

    def exited(self) -> bool:
        """True once the daemon process has ended (for a wait to stop early)."""
        assert self.proc is not None
        return self.proc.poll() is not None

    def assert_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {self.proc.returncode}:\n"
                               + self.log_text()[-3000:])

    def stop(self) -> None:
        """Warm shutdown; fails loudly if the daemon had crashed meanwhile."""
        if self.visitor is not None:
            self.visitor.stop()
        self.assert_running()
        code = self.terminate(timeout_s=60)
        if code != 0:
            raise RuntimeError(f"the daemon stopped with exit code {code}")

    def __enter__(self) -> Daemon:
        return self.start()


def make_config(root: Path, base_url: str, **keys: Any) -> Path:
    """``tests.support.write_config`` under a new folder ``root``; returns the config path.
    With ``$BGCUT_BENCH_HTTP`` set, the daemon's listener is on (a free loopback port)."""
    root.mkdir(parents=True, exist_ok=True)
    if os.environ.get(HTTP_ENV):
        keys.setdefault("http", {"listen": "127.0.0.1:0"})
    return write_config(root, base_url, **keys)


class HttpVisitor:
    """Uses a daemon's listener the way people and Prometheus do: ``/metrics`` every 15 s and
    the page's refresh every 5 s, from a thread, once the status file names the address."""

    def __init__(self, status_file: Path) -> None:
        self.status_file = status_file
        self.visits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="http-visitor")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _url(self) -> str | None:
        try:
            return json.loads(self.status_file.read_text()).get("http")  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def _run(self) -> None:
        url = None
        while url is None and not self._stop.wait(0.2):
            url = self._url()
        next_scrape = time.monotonic()
        while url is not None and not self._stop.is_set():
            requests.get(url + "?part=main", timeout=10).raise_for_status()
            if time.monotonic() >= next_scrape:
                requests.get(url + "metrics", timeout=10).raise_for_status()
                next_scrape += SCRAPE_EVERY_S
            self.visits += 1
            self._stop.wait(PAGE_EVERY_S)


def wait_quietly(predicate: Callable[[], object], timeout_s: float,
                 interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout_s``; returns whether it became true."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True


def count_files(folder: Path) -> int:
    """Visible regular files directly in ``folder`` (0 when it does not exist)."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if not e.name.startswith(".") and e.is_file())
    except FileNotFoundError:
        return 0
