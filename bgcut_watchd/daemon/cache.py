"""A value read on demand and reused for a moment (the status page and the metrics ask often;
the figures they show change slowly)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Cached:
    """One value, recomputed when older than ``ttl_s``."""

    def __init__(self, ttl_s: float, make: Callable[[], Any]) -> None:
        self._ttl_s, self._make = ttl_s, make
        self._value: Any = None
        self._at_s = -1e18
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if time.monotonic() - self._at_s > self._ttl_s:
                self._value, self._at_s = self._make(), time.monotonic()
            return self._value

    def forget(self) -> None:
        with self._lock:
            self._at_s = -1e18
