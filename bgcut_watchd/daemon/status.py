"""Live figures: the daemon writes them to ``<state_dir>/status.json`` for ``status``, and
builds the systemd STATUS= line from the same numbers.

Whether a daemon is alive is not read from this file (it survives the daemon): ``daemon.lock``
tells. Trouble with ``state_dir`` itself (the ledger or this file cannot be written, the lock
cannot be held) shows as ``state_dir_problem`` here and at the end of the STATUS= line, which
reaches systemd even when ``state_dir`` is full; each is logged once, not once per job.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bgcut_watchd.control.pause import FolderPauses, ProbedPause
from bgcut_watchd.control.scheduler import Scheduler
from bgcut_watchd.fsops import atomic_write_json

STATUS_FILE = "status.json"

log = logging.getLogger("bgcut_watchd.daemon.service")


class _History(Protocol):
    @property
    def problem(self) -> str | None: ...


class _Engine(Protocol):
    scheduler: Scheduler
    api_pause: ProbedPause
    folder_pauses: FolderPauses

    @property
    def ledger(self) -> _History: ...


class _Intake(Protocol):
    def waiting_counts(self) -> dict[str, int]: ...
    def watch_modes(self) -> dict[str, str]: ...


class _Standby(Protocol):
    reasons: dict[str, str]


@dataclass
class StatusReporter:
    """Collects the live figures of a running daemon."""

    state_dir: Path
    engine: _Engine
    intake: _Intake
    standby: _Standby | None = None   # the folders waiting for their share to be mounted
    lock_problem: str | None = None   # set by the service: daemon.lock cannot be held
    write_problem: str | None = None  # the status file cannot be written
    http_url: str | None = None  # where the status page answers (port 0: the real port)
    health: Callable[[], tuple[bool, str]] | None = None  # the service's /healthz verdict
    _last_written: dict[str, Any] | None = None

    def state_dir_problem(self) -> str | None:
        """What is wrong with ``state_dir`` now, or None."""
        return self.lock_problem or self.engine.ledger.problem or self.write_problem

    def snapshot(self, *, stopped: bool = False) -> dict[str, Any]:
        stats = self.engine.scheduler.stats()
        settling = self.intake.waiting_counts()
        modes = self.intake.watch_modes()
        paused_folders = self.engine.folder_pauses.snapshot()
        standby = dict(self.standby.reasons) if self.standby is not None else {}
        folders: dict[str, Any] = {}
        for name in sorted(set(settling) | set(stats.folders) | set(standby)):
            fs = stats.folders.get(name)
            folders[name] = {
                "watch": "standby" if name in standby else modes.get(name, "stopped"),
                "standby": standby.get(name),
                "settling": settling.get(name, 0),
                "waiting": (fs.waiting + fs.delayed) if fs else 0,
                "in_progress": fs.in_progress if fs else 0,
                "done": fs.done if fs else 0,
                "quarantined": fs.quarantined if fs else 0,
                "paused": paused_folders[name].detail if name in paused_folders else None,
            }
        return {
            "pid": os.getpid(), "running": not stopped,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "pause": self._pause(), "folders": folders, "http": self.http_url,
            "state_dir_problem": self.state_dir_problem(), "health": self._health(),
        }

    def _health(self) -> dict[str, Any] | None:
        """``{"ok": bool, "reason": str}``: /healthz's verdict (a stuck job, ...)."""
        if self.health is None:
            return None
        ok, reason = self.health()
        return {"ok": ok, "reason": reason}

    def _pause(self) -> dict[str, Any] | None:
        state = self.engine.api_pause.state()
        if not state.paused or state.reason is None:
            return None
        return {"reason": state.reason.value, "description": self.pause_line(),
                "detail": state.detail, "next_try_in_s": round(state.probe_in_s, 1)}

    def pause_line(self) -> str:
        return self.engine.api_pause.state().describe(datetime.now().astimezone())

    def status_line(self) -> str:
        """``watching 3 folders · 12 waiting · 4 in progress · 1204 done · 3 quarantined``, or
        ``paused: service unreachable since 13:52, next try 14:05``; ``· state_dir: ...`` at the
        end while ``state_dir`` is in trouble."""
        problem = self.state_dir_problem()
        tail = f" · state_dir: {problem}" if problem else ""
        state = self.engine.api_pause.state()
        if state.paused:
            return self.pause_line() + tail
        total = self.engine.scheduler.stats().total
        waiting = total.waiting + total.delayed + sum(self.intake.waiting_counts().values())
        folders = len(self.intake.watch_modes())
        return (f"watching {folders} folder(s) · {waiting} waiting · {total.in_progress} in "
                f"progress · {total.done} done · {total.quarantined} quarantined{tail}")

    def write(self, *, stopped: bool = False) -> None:
        """Replace the status file when a figure changed; a failure never disturbs the daemon
        (logged once, then tried again at the next report)."""
        snapshot = self.snapshot(stopped=stopped)
        figures = {k: v for k, v in snapshot.items() if k != "updated_at"}
        if figures == self._last_written:
            return  # an idle daemon writes nothing
        try:
            atomic_write_json(self.state_dir / STATUS_FILE, snapshot)
        except OSError as exc:
            if self.write_problem is None:
                log.warning("state_dir: cannot write %s (%s): status shows older figures",
                            self.state_dir / STATUS_FILE, exc.strerror or exc)
            self.write_problem = f"cannot write {STATUS_FILE}: {exc.strerror or exc}"
            return
        self.write_problem = None
        self._last_written = figures

    def forget_written(self) -> None:
        """Write the status file at the next report even if no figure changed."""
        self._last_written = None


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The last status a daemon wrote, or None. Its ``running`` says what the daemon last
    wrote, not whether it lives: ask ``daemon.lock.daemon_alive``. Raises nothing."""
    try:
        data: dict[str, Any] = json.loads((state_dir / STATUS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
