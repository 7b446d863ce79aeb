"""``bgcut-watchd resume``: end the running daemon's API pause now.

For when the operator has just fixed the API key, bought credits or raised the budget and does
not want to wait for the next probe (``auth_pause_s`` / ``credits_pause_s``; the pause still
ends by itself as before). The daemon is found by the pid in ``<state_dir>/status.json``, checked
to be alive and to be a bgcut-watchd process, then sent SIGUSR1; its handler only sets a flag
and the main loop ends the pause at its next turn (within a second), which this command waits
to see in the status file. The status page's "Resume now" button does the same over HTTP.

Exit 0 when the pause ended (or there was none), 1 when the daemon paused again at once (the
cause is not fixed) or could not be signalled, 3 when no daemon is running. ``--json`` prints
``{"ok", "pid", "was_paused", "pause", "message"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from bgcut_watchd.commands.common import load
from bgcut_watchd.daemon.status import read_status
from bgcut_watchd.exitcodes import EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK

WAIT_S = 5.0     # for the daemon to act on the signal
SETTLE_S = 2.5   # then for a job to try again: a cause not fixed pauses it again at once
POLL_S = 0.1


def run(args: argparse.Namespace) -> int:
    """Signal the daemon and report. Raises ConfigError (exit 78)."""
    state_dir = load(args, create_folders=False).daemon.state_dir
    status = read_status(state_dir)
    if not status or not status.get("running"):
        return _report(args, EXIT_NOT_RUNNING, "bgcut-watchd is not running", None, False, None)
    pid = int(status["pid"])
    before = status.get("pause")
    if before is None:
        return _report(args, EXIT_OK, "API work is not paused: nothing to resume", pid, False,
                       None)
    problem = _signal(pid)
    if problem is not None:
        return _report(args, EXIT_FAILURE, problem, pid, True, before)
    after = _pause_after_signal(state_dir, before)
    if after is None:
        return _report(args, EXIT_OK, f"API work resumed (pid {pid})", pid, True, None)
    return _report(args, EXIT_FAILURE, f"still paused: {after.get('description')} (the daemon "
                   "tried again and the API refused: fix the cause first)", pid, True, after)


def _signal(pid: int) -> str | None:
    """SIGUSR1 to ``pid`` if it is a bgcut-watchd process; the problem, or None when sent."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except PermissionError:
        cmdline = b"bgcut"  # hidden from us (hidepid): the status file's word must do
    except OSError:
        return f"process {pid} is gone"
    if b"bgcut" not in cmdline:
        return f"process {pid} is not bgcut-watchd (a stale status file?): nothing sent"
    try:
        os.kill(pid, signal.SIGUSR1)
    except PermissionError:
        return f"not allowed to signal process {pid}: run as root or as the daemon's user"
    except ProcessLookupError:
        return f"process {pid} is gone"
    return None


def _pause_after_signal(state_dir: Path, before: dict[str, Any]) -> dict[str, Any] | None:
    """None when the status file showed the pause ended and it stayed so for SETTLE_S; else
    the pause it shows (again, or still after WAIT_S)."""
    ended = _watch(state_dir, WAIT_S, until_paused=False)
    if ended is not None:
        return ended
    return _watch(state_dir, SETTLE_S, until_paused=True)


def _watch(state_dir: Path, within_s: float, *, until_paused: bool) -> dict[str, Any] | None:
    """Poll the status file up to ``within_s`` until its pause is there (``until_paused``) or
    gone; the pause it last showed."""
    deadline_s = time.monotonic() + within_s
    while True:
        pause: dict[str, Any] | None = (read_status(state_dir) or {}).get("pause")
        if (pause is not None) == until_paused or time.monotonic() > deadline_s:
            return pause
        time.sleep(POLL_S)  # the daemon rewrites the file once a second


def _report(args: argparse.Namespace, code: int, message: str, pid: int | None,
            was_paused: bool, pause: dict[str, Any] | None) -> int:
    if args.json:
        print(json.dumps({"ok": code == EXIT_OK, "pid": pid, "was_paused": was_paused,
                          "pause": pause, "message": message}, indent=2))
    else:
        print(message)
    return code
