"""``bgcut-watchd status``: what every folder holds, from the disk, the ledger and the daemon.

Read-only: it creates nothing (no ledger yet is "no jobs yet"). It scans each inbox (not ignored
files), counts the job dirs of the work area and the ``.error.json`` files of the quarantine,
reads the ledger's outcomes and last errors, and the live figures a running daemon writes to
``<state_dir>/status.json``; never the API key. Whatever cannot be read (a state_dir the caller
may not write, a missing inbox) becomes a note, never a traceback.

Whether a daemon runs is asked of the lock every live daemon holds on
``<state_dir>/daemon.lock`` (``daemon.lock``), never of the status file, which outlives it.
With no daemon alive, the exit code is 3 (``EXIT_NOT_RUNNING``), no job shows as in progress
and no API state is claimed; when the lock cannot be checked, the daemon's state is ``null``
("unknown") and the exit code 1.

``--json`` prints one object; these keys are stable (values ``null`` when unknown)::

    config          path of the configuration file
    state_dir       the daemon's state folder
    daemon          {"running": bool|null, "pid": int|null, "updated_at": str|null}
                    (running: from the lock, null when it cannot be checked; pid and
                    updated_at from the last status file, even of a stopped daemon)
    pause           null, or the running daemon's global pause:
                    {"reason": "auth"|"credits"|"unreachable"|"budget", "description", "detail",
                     "next_try_in_s"}
    state_dir_problem  null, or what is wrong with the state folder (full, the ledger or the
                    status file not writable, the lock not held), from the daemon or seen here
    health          null (no daemon runs), or the running daemon's /healthz verdict at its
                    last report: {"ok": bool, "reason": str} (reason "ok", or e.g. "a job
                    has shown no progress for over 60s")
    folders         list, in configuration order, of:
      name          the folder's name
      inbox         its inbox path
      waiting       files in the inbox, not ignored, not yet claimed (by a scan)
      in_work_area  job dirs in the inbox's work area (claimed, unfinished or resumable)
      in_progress   ledger: jobs claimed and not finished, while a daemon runs; 0 when none
                    does (its unfinished jobs wait in the work area: ``in_work_area``)
      done          ledger: jobs done
      quarantined_now    ``.error.json`` files in its quarantine folder now
      quarantined_total  ledger: jobs ever quarantined (a requeue does not lower it)
      failed        ledger: jobs that failed otherwise
      quarantined   the same as quarantined_total (kept for scripts written before 0.2)
      error_files   the same as quarantined_now (kept for scripts written before 0.2)
      paused        the reason the running daemon paused this folder (its disk), or
                    "standby: ..." while its share is declared but not mounted, or null
      live          the running daemon's own figures for it (watch, settling, waiting,
                    in_progress, done, quarantined since it started, paused), or null
    credits         per folder name, the credits the spend model ([budget]) counted for its
                    process calls: {"today": float, "this_month": float} (local days);
                    null when the ledger cannot be read
    recent_errors   the last 5 jobs with an error: {"job_id", "folder", "file", "outcome",
                    "stage", "reason", "http_status", "error", "at" (UTC, to the second)}
    notes           list of strings: what could not be read, and why

Over 300 lines on purpose: the ``--json`` schema above is the documented contract, kept beside
the code that fills it; the code itself is about 250 lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bgcut_watchd.clock import iso_utc_seconds
from bgcut_watchd.commands.common import load
from bgcut_watchd.config.model import Config, FolderConfig
from bgcut_watchd.daemon.lock import LOCK_NAME, REAPPEAR_S, daemon_alive
from bgcut_watchd.daemon.status import read_status
from bgcut_watchd.engine.budget import month_bounds
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.exitcodes import EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK
from bgcut_watchd.intake.ignore import IgnoreRules
from bgcut_watchd.intake.scan import scan_folder
from bgcut_watchd.job.quarantine import ERROR_SUFFIX
from bgcut_watchd.job.workarea import WorkArea
from bgcut_watchd.ledger import OUTCOMES, ErrorEntry, Ledger

RECENT_ERRORS = 5
_COLUMNS = (("waiting", "waiting"), ("in_work_area", "claimed"), ("in_progress", "in progress"),
            ("done", "done"), ("quarantined_now", "quarantined now"),
            ("quarantined_total", "quarantined total"), ("failed", "failed"))
LEGEND = """\
columns:
  waiting            files in the inbox, not ignored, not yet claimed
  claimed            jobs in the inbox's work area (.bgcut-work): running or resumable
  in progress        jobs the history (ledger) counts as started and not finished
  done               jobs finished with their outputs published (history)
  quarantined now    inputs in the quarantine folder now (each with its .error.json)
  quarantined total  jobs ever quarantined (history; a requeue does not lower it)
  failed             jobs that ended otherwise (history)
  paused             why the daemon holds this folder back (its disk; standby while its
                     share is declared but not mounted), or -
API: ok, or paused with the reason (key rejected, out of credits...) and the next try."""


def collect_status(config: Config, reappear_s: float = REAPPEAR_S) -> dict[str, Any]:
    """The whole status document (the ``--json`` shape above). ``reappear_s``: how long a
    missing lock file may take to come back (``daemon.lock.daemon_alive``). Raises nothing."""
    notes: list[str] = []
    state_dir = config.daemon.state_dir
    alive = daemon_alive(state_dir, reappear_s)  # before the ledger creates state_dir
    if alive is None:
        notes.append(f"cannot tell whether a daemon runs: {state_dir / LOCK_NAME} cannot be "
                     "opened; run status as the daemon's user")
    live = read_status(state_dir) or {}
    stats, errors = _ledger_figures(state_dir, notes, drop_in_progress=alive is False)
    live_folders: dict[str, Any] = live.get("folders", {}) if alive else {}
    problem = _state_dir_problem(state_dir, live if alive else {})
    if problem:
        notes.append(f"state_dir: {problem}")
    return {
        "config": str(config.source) if config.source else None,
        "state_dir": str(state_dir),
        "daemon": {"running": alive, "pid": live.get("pid"),
                   "updated_at": live.get("updated_at") and iso_utc_seconds(live["updated_at"])},
        "pause": live.get("pause") if alive else None,
        "state_dir_problem": problem,
        "health": live.get("health") if alive else None,
        "folders": [_folder(f, stats, live_folders.get(f.name), notes) for f in config.folders],
        "credits": _credits(state_dir, config),
        "recent_errors": [_error(e) for e in errors],
        "notes": notes,
    }


def _state_dir_problem(state_dir: Path, live: dict[str, Any]) -> str | None:
    """What the running daemon reported about ``state_dir``, else whether it is full."""
    reported = live.get("state_dir_problem")
    if reported:
        return str(reported)
    try:
        full = os.statvfs(state_dir).f_bavail == 0
    except OSError:
        return None
    return f"{state_dir} is full: the ledger and the status file cannot grow" if full else None


def _credits(state_dir: Path, config: Config) -> dict[str, dict[str, float]] | None:
    """Credits counted today and this month per configured folder; None when unreadable
    (``_ledger_figures`` has said why)."""
    today = datetime.now().astimezone().date()
    first, last = month_bounds(today)
    try:
        with Ledger(state_dir, read_only=True) as ledger:
            day = ledger.credits_spent(today.isoformat(), today.isoformat())
            month = ledger.credits_spent(first, last)
    except (OSError, sqlite3.Error, ConfigError):
        return None
    return {f.name: {"today": round(day.get(f.name, 0.0), 3),
                     "this_month": round(month.get(f.name, 0.0), 3)} for f in config.folders}


def _ledger_figures(state_dir: Path, notes: list[str], *, drop_in_progress: bool,
                    ) -> tuple[dict[str, dict[str, int]] | None, list[ErrorEntry]]:
    """Per-folder outcome counts and the last errors; with ``drop_in_progress`` (no daemon
    runs) no job counts as in progress."""
    try:
        with Ledger(state_dir, read_only=True) as ledger:
            stats, errors = ledger.folder_stats(), ledger.recent_errors(RECENT_ERRORS)
        if not ledger.history_exists:
            notes.append(f"no jobs yet: no job history in {state_dir} (the daemon starts it)")
        if drop_in_progress:
            for counts in stats.values():
                counts["in_progress"] = 0
        return stats, errors
    except (OSError, sqlite3.Error, ConfigError) as exc:
        notes.append(f"cannot read the ledger in {state_dir} ({_why(exc)}): job counts unknown; "
                     "run status as the daemon's user")
        return None, []


def _folder(folder: FolderConfig, stats: dict[str, dict[str, int]] | None,
            live: dict[str, Any] | None, notes: list[str]) -> dict[str, Any]:
    counts = dict.fromkeys(OUTCOMES, 0) if stats is not None else dict.fromkeys(OUTCOMES)
    if stats is not None:
        counts.update(stats.get(folder.name, {}))
    return {
        "name": folder.name, "inbox": str(folder.inbox),
        "waiting": _count(notes, f"inbox of {folder.name}", lambda: sum(
            1 for _ in scan_folder(folder.inbox, folder.recursive, IgnoreRules(folder.ignore)))),
        "in_work_area": _count(notes, f"work area of {folder.name}",
                               WorkArea(folder.inbox).pending_count),
        "in_progress": counts["in_progress"], "done": counts["done"],
        "quarantined_now": (error_files := _count(notes, f"quarantine of {folder.name}",
                                                  lambda: _error_files(folder.quarantine))),
        "quarantined_total": counts["quarantined"], "failed": counts["failed"],
        "quarantined": counts["quarantined"], "error_files": error_files,
        "paused": _folder_pause(live),
        "live": live,
    }


def _folder_pause(live: dict[str, Any] | None) -> str | None:
    """Why the running daemon holds this folder: its disk, or standby (a share not mounted)."""
    if not live:
        return None
    if live.get("standby"):
        return f"standby: {live['standby']}"
    paused: str | None = live.get("paused")
    return paused


def _count(notes: list[str], what: str, count: Callable[[], int]) -> int | None:
    try:
        return count()
    except OSError as exc:
        notes.append(f"cannot read the {what}: {_why(exc)}")
        return None


def _error_files(quarantine: Path) -> int:
    if not quarantine.is_dir():
        return 0
    return sum(1 for _, _, files in os.walk(quarantine) for name in files
               if name.endswith(ERROR_SUFFIX) and not name.startswith("."))


def _error(entry: ErrorEntry) -> dict[str, Any]:
    return {"job_id": entry.job_id, "folder": entry.folder, "file": entry.input_name,
            "outcome": entry.outcome, "stage": entry.stage, "reason": entry.reason,
            "http_status": entry.http_status, "error": entry.last_error,
            "at": iso_utc_seconds(entry.updated_at)}


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def render_table(doc: dict[str, Any]) -> str:
    """The status document for people."""
    lines = [_daemon_line(doc), f"API: {_api_line(doc)}", ""]
    width = max([len("folder")] + [len(f["name"]) for f in doc["folders"]])
    lines.append(f"{'folder':<{width}}  " + "  ".join(title for _, title in _COLUMNS)
                 + "  paused")
    for folder in doc["folders"]:
        cells = [f"{_cell(folder[key]):>{len(title)}}" for key, title in _COLUMNS]
        lines.append(f"{folder['name']:<{width}}  " + "  ".join(cells)
                     + f"  {folder['paused'] or '-'}")
    if doc.get("credits"):
        lines += ["", "credits (estimated by [budget]): today / this month"]
        lines += [f"  {name:<{width}}  {c['today']:.2f} / {c['this_month']:.2f}"
                  for name, c in doc["credits"].items()]
    if doc["recent_errors"]:
        lines += ["", "last errors:"]
        lines += [_error_line(e) for e in doc["recent_errors"]]
    lines += [f"note: {note}" for note in doc["notes"]]
    lines += ["", LEGEND]
    return "\n".join(lines)


def _daemon_line(doc: dict[str, Any]) -> str:
    daemon = doc["daemon"]
    if daemon["running"] is None:
        return "daemon: unknown (its lock cannot be checked)"
    if daemon["running"]:
        return f"daemon: running (pid {daemon['pid']}), figures of {daemon['updated_at']}"
    if daemon["updated_at"]:
        return f"daemon: not running (last seen {daemon['updated_at']})"
    return "daemon: not running (never ran with this state_dir)"


def _api_line(doc: dict[str, Any]) -> str:
    if doc["daemon"]["running"] is None:
        return "unknown"
    if not doc["daemon"]["running"]:
        return "- (no daemon running)"
    pause = doc["pause"]
    if not pause:
        return "ok"
    shown = pause.get("detail") and pause["detail"] not in pause["description"]
    detail = f" ({pause['detail']})" if shown else ""
    return f"{pause['description']}{detail}"


def _cell(value: int | None) -> str:
    return "?" if value is None else str(value)


def _error_line(entry: dict[str, Any]) -> str:
    status = f" HTTP {entry['http_status']}" if entry["http_status"] else ""
    where = f"{entry['outcome']} at {entry['stage']}" if entry["stage"] else entry["outcome"]
    return (f"  {_short_time(entry['at'])}  {entry['folder']}  {json.dumps(entry['file'])}: "
            f"{where}: {entry['reason'] or 'error'}{status}: {entry['error']}")


def _short_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def run(args: argparse.Namespace) -> int:
    """Print the table or the JSON document; exit 0 with a daemon running, 3 without, 1 when
    that cannot be told. Never loads the API key; creates nothing. Raises ConfigError (exit
    78)."""
    doc = collect_status(load(args, create_folders=False))
    print(json.dumps(doc, indent=2) if args.json else render_table(doc))
    running = doc["daemon"]["running"]
    return EXIT_FAILURE if running is None else EXIT_OK if running else EXIT_NOT_RUNNING
