"""Shared test helpers: waiting on conditions, writing configurations, running the daemon.

Two ways to run a real daemon against the real emulator:

* :class:`InProcessDaemon`: the :class:`Service` in a thread of the test process (fast; for
  the pipeline's behaviour);
* :class:`DaemonProcess`: ``python -m bgcut_watchd run`` as a subprocess (for signals,
  ``kill -9`` and exit codes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bgcut_watchd.config import Config, load_config
from bgcut_watchd.config_checks import check_folders
from bgcut_watchd.service import Service
from bgcut_watchd.systemd import Notifier

REPO = Path(__file__).resolve().parent.parent
API_KEY = "test-key-Zq81SECRET"


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0,
             interval_s: float = 0.02, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)  # polling interval of a deadline-bounded wait, not a fixed wait


DEFAULT_VARIANTS = """
[variants.full]
format = "png"

[variants.thumb]
format = "webp"
max_resolution = 40000
quality = "medium"
autocrop = true

[variants.white]
format = "jpeg"
background_color = "#ffffff"
"""


def write_config(root: Path, base_url: str, *, folders: Iterable[str] = ("studio",),
                 daemon: dict[str, Any] | None = None, retry: dict[str, Any] | None = None,
                 api: dict[str, Any] | None = None, folder: dict[str, Any] | None = None,
                 variants: str = DEFAULT_VARIANTS,
                 variant_names: tuple[str, ...] = ("full", "thumb", "white")) -> Path:
    """A config.toml under ``root`` with one folder set per name (root/<name>/inbox...)."""
    api_keys = {"base_url": base_url, "max_requests_per_minute": 6000,
                "connect_timeout_s": 2, "upload_timeout_s": 5, "process_timeout_s": 5,
                "download_timeout_s": 5, **(api or {})}
    daemon_keys = {"workers": 4, "state_dir": str(root / "state"), "stability_s": 0.2,
                   "shutdown_timeout_s": 10, **(daemon or {})}
    retry_keys = {"base_delay_s": 0.05, "max_delay_s": 0.5, "auth_pause_s": 1.0,
                  "credits_pause_s": 1.0, **(retry or {})}
    lines = [_table("api", api_keys), _table("daemon", daemon_keys), _table("retry", retry_keys),
             variants]
    for name in folders:
        base = root / name
        keys = {"name": name, "inbox": str(base / "inbox"), "outbox": str(base / "outbox"),
                "quarantine": str(base / "quarantine"), "archive": str(base / "archive"),
                "variants": list(variant_names), **(folder or {})}
        lines.append(_table("[folders]", keys))
    path = root / "config.toml"
    path.write_text("\n".join(lines), "utf-8")
    return path


def _table(name: str, keys: dict[str, Any]) -> str:
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in keys.items())
    return f"[{name}]\n{body}\n"


def load_checked(path: Path) -> Config:
    config = load_config(path)
    problems = check_folders(config)
    assert not problems, problems
    return config


class InProcessDaemon:
    """The real Service, run on a thread; ``stop()`` is a warm shutdown."""

    def __init__(self, config_path: Path, api_key: str = API_KEY) -> None:
        self.config = load_checked(config_path)
        self.service = Service(config_path, self.config, api_key, Notifier({}))
        self._thread = threading.Thread(target=self._serve, daemon=True, name="test-daemon")
        self.error: BaseException | None = None

    def _serve(self) -> None:
        try:
            self.service.startup()
            self.service.main_loop()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
        finally:
            self.service.shutdown()

    def start(self) -> InProcessDaemon:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.service.should_exit = True
        self.service._wakeup.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "daemon thread did not stop"
        if self.error is not None:
            raise self.error

    def __enter__(self) -> InProcessDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DaemonProcess:
    """``python -m bgcut_watchd run -c CONFIG`` as a real subprocess."""

    def __init__(self, config_path: Path, api_key: str = API_KEY,
                 env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self.config_path = config_path
        self.log_path = log_path or config_path.parent / "daemon.log"
        self.env = {**os.environ, "BGCUT_API_KEY": api_key, "PYTHONPATH": str(REPO),
                    **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bgcut_watchd", "run", "-c", str(self.config_path)],
            env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def files_under(folder: Path) -> list[Path]:
    """Every regular file below ``folder`` (none if it does not exist), sorted."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())


def visible_files(folder: Path) -> list[Path]:
    """Files below ``folder`` whose path has no hidden component (what a person sees)."""
    return [p for p in files_under(folder)
            if not any(part.startswith(".") for part in p.relative_to(folder).parts)]
