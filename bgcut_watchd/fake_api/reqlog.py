"""The request log: every API request the emulator answered (or dropped), in order.

Kept in memory for ``GET /_control/log`` and, when a file is named, appended to it as JSON
lines (one flush per line) so a test can follow an emulator running in another process.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RequestLogEntry:
    """One API request.

    ``endpoint`` is upload, process, download, usage or unknown; ``status`` is None when the
    connection was reset instead of answered; ``fault`` names the injected fault or is None;
    ``file_path`` is the stored path concerned (upload result, process input, download path);
    ``timestamp_s`` is the emulator clock (monotonic) when the request arrived. For a process
    call, ``variants`` is how many output variants its body asked for (None when the body is
    not a JSON object with a list of them) and ``credits`` what it was charged (0.0 when it was
    not: any 4xx, a fault, a reset); both are None for the other endpoints.
    """

    method: str
    endpoint: str
    path: str
    status: int | None
    fault: str | None
    timestamp_s: float
    duration_s: float
    file_path: str | None = None
    variants: int | None = None
    credits: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


class RequestLog:
    """Thread-safe, append-only (until ``clear``) list of ``RequestLogEntry``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RequestLogEntry] = []
        self._in_progress = 0

    def begin(self) -> None:
        """A request arrived; it is logged (``append``) when answered or abandoned."""
        with self._lock:
            self._in_progress += 1

    def in_progress(self) -> int:
        """Requests that arrived (``begin``) and are not logged yet: still being served, e.g.
        a slow process call whose client gave up waiting."""
        with self._lock:
            return self._in_progress

    def append(self, entry: RequestLogEntry, jsonl_path: Path | None) -> None:
        """Record ``entry`` (ending a request ``begin`` counted); also append it to
        ``jsonl_path`` when given.

        Raises:
            OSError: the JSONL file cannot be written.
        """
        with self._lock:
            self._entries.append(entry)
            self._in_progress = max(0, self._in_progress - 1)
            if jsonl_path is not None:
                with jsonl_path.open("a", encoding="utf-8") as stream:
                    stream.write(json.dumps(entry.to_json()) + "\n")
                    stream.flush()

    def entries(self) -> list[RequestLogEntry]:
        """A copy of every entry so far."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget every entry (the JSONL file is left as it is)."""
        with self._lock:
            self._entries.clear()
