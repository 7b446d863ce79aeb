"""Shared helpers for the intake tests: a deadline poller and a thread-safe event recorder."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

WAIT_S = 10.0


def wait_for(
    predicate: Callable[[], bool], timeout_s: float = WAIT_S, step_s: float = 0.01
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` has passed; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step_s)


class Recorder:
    """Collects ``(folder_name, path)`` calls from watchdog's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[str, Path]] = []

    def __call__(self, folder_name: str, path: Path) -> None:
        with self._lock:
            self._calls.append((folder_name, path))

    def paths(self) -> set[Path]:
        with self._lock:
            return {path for _, path in self._calls}

    def calls(self) -> list[tuple[str, Path]]:
        with self._lock:
            return list(self._calls)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
