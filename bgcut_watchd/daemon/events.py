"""Turning the daemon's state into ``paused`` / ``resumed`` / ``stuck`` events.

The main loop calls :class:`StateWatch` about once a second with what it sees (the API pause,
every folder's pause, whether a worker is stalled); a change becomes one event. Polling rather
than hooks: the pause type (``control.pause``) stays free of any notion of notification, and a
pause renewed by a failed probe (the same reason) says nothing new.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bgcut_watchd.control.pause import PauseState
from bgcut_watchd.daemon.web.words import pause_words

Publish = Callable[..., None]  # EventNotifier.publish(kind, summary, **fields)


class StateWatch:
    """Remembers what was paused (and why) and whether a worker was stalled."""

    def __init__(self, publish: Publish, wall_clock: Callable[[], float] = time.time) -> None:
        self._publish = publish
        self._wall_clock = wall_clock
        self._paused: dict[str, tuple[str, float]] = {}  # scope -> (reason, since, wall)
        self._stalled = False

    def observe_pauses(self, api: PauseState, folders: Mapping[str, PauseState]) -> None:
        """Compare with the last look; publish what started, changed reason, or ended."""
        states: dict[str, PauseState] = {"api": api}
        states.update({f"folder:{name}": state for name, state in folders.items()})
        for scope, state in states.items():
            if state.paused and state.reason is not None:
                self._paused_now(scope, state)
        for scope in [s for s in self._paused if not _paused(states.get(s))]:
            self._resumed(scope)

    def observe_stall(self, stalled: bool, running: int, limit_s: float) -> None:
        """A worker stalled (publish ``stuck`` once per stall) or recovered."""
        if stalled and not self._stalled:
            self._publish("stuck", f"a job has shown no progress for over {limit_s:.0f} s: the "
                          "systemd watchdog restarts the daemon if it lasts",
                          jobs_in_progress=running, quiet_limit_s=round(limit_s, 1))
        self._stalled = stalled

    def _paused_now(self, scope: str, state: PauseState) -> None:
        assert state.reason is not None
        reason = state.reason.value
        before = self._paused.get(scope)
        if before is not None and before[0] == reason:
            return
        self._paused[scope] = (reason, self._wall_clock())
        next_try = datetime.fromtimestamp(self._wall_clock(), UTC) + timedelta(
            seconds=state.probe_in_s)
        self._publish("paused", f"{_what(scope)} paused: {pause_words(reason)}", **_scope(scope),
                      reason=reason, reason_text=pause_words(reason), detail=state.detail,
                      next_try_at=next_try.isoformat(timespec="seconds"))

    def _resumed(self, scope: str) -> None:
        reason, since = self._paused.pop(scope)
        paused_for_s = max(0.0, self._wall_clock() - since)
        self._publish("resumed", f"{_what(scope)} resumed after {paused_for_s:.0f} s",
                      **_scope(scope), reason=reason, paused_for_s=round(paused_for_s, 1))


def _paused(state: PauseState | None) -> bool:
    return state is not None and state.paused


def _scope(scope: str) -> dict[str, Any]:
    kind, _, folder = scope.partition(":")
    return {"scope": kind, "folder": folder or None}


def _what(scope: str) -> str:
    kind, _, folder = scope.partition(":")
    return f"folder {folder}" if kind == "folder" else "API work"
