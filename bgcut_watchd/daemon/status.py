"""Live figures: the daemon writes them to ``<state_dir>/status.json`` for ``status``, and
builds the systemd STATUS= line from the same numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bgcut_watchd.control.pause import FolderPauses, ProbedPause
from bgcut_watchd.control.scheduler import Scheduler
from bgcut_watchd.fsops import atomic_write_json

STATUS_FILE = "status.json"


class _Engine(Protocol):
    scheduler: Scheduler
    api_pause: ProbedPause
    folder_pauses: FolderPauses


class _Intake(Protocol):
    def waiting_counts(self) -> dict[str, int]: ...
    def watch_modes(self) -> dict[str, str]: ...


@dataclass
class StatusReporter:
    """Collects the live figures of a running daemon."""

    state_dir: Path
    engine: _Engine
    intake: _Intake
    http_url: str | None = None  # where the status page answers (port 0: the real port)
    _last_written: dict[str, Any] | None = None

    def snapshot(self, *, stopped: bool = False) -> dict[str, Any]:
        stats = self.engine.scheduler.stats()
        settling = self.intake.waiting_counts()
        modes = self.intake.watch_modes()
        paused_folders = self.engine.folder_pauses.snapshot()
        folders: dict[str, Any] = {}
        for name in sorted(set(settling) | set(stats.folders)):
            fs = stats.folders.get(name)
            folders[name] = {
                "watch": modes.get(name, "stopped"),
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
        }

    def _pause(self) -> dict[str, Any] | None:
        state = self.engine.api_pause.state()
        if not state.paused or state.reason is None:
            return None
        return {"reason": state.reason.value, "description": self.pause_line(),
                "detail": state.detail, "next_try_in_s": round(state.probe_in_s, 1)}

    def pause_line(self) -> str:
        return self.engine.api_pause.state().describe(datetime.now().astimezone())

    def status_line(self) -> str:
        """``watching 3 folders · 12 waiting · 4 in progress · 1204 done · 3 quarantined``."""
        state = self.engine.api_pause.state()
        if state.paused:
            return self.pause_line()
        total = self.engine.scheduler.stats().total
        waiting = total.waiting + total.delayed + sum(self.intake.waiting_counts().values())
        folders = len(self.intake.watch_modes())
        return (f"watching {folders} folder(s) · {waiting} waiting · {total.in_progress} in "
                f"progress · {total.done} done · {total.quarantined} quarantined")

    def write(self, *, stopped: bool = False) -> None:
        """Replace the status file when a figure changed; a failure never disturbs the daemon."""
        snapshot = self.snapshot(stopped=stopped)
        figures = {k: v for k, v in snapshot.items() if k != "updated_at"}
        if figures == self._last_written:
            return  # an idle daemon writes nothing
        with contextlib.suppress(OSError):
            atomic_write_json(self.state_dir / STATUS_FILE, snapshot)
            self._last_written = figures


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The last status a daemon wrote, or None; ``running`` is False if its process is gone."""
    try:
        data: dict[str, Any] = json.loads((state_dir / STATUS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("running") and not _alive(int(data.get("pid", 0))):
        data["running"] = False
    return data


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True
