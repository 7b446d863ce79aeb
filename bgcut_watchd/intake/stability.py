"""The stability gate (product.md step 3): a file is taken only after ``stability_s`` of quiet.

Quiet means its size and mtime have not changed since they were last observed to change. The
timer starts at the first observation (never from the file's mtime: copy tools set old mtimes,
and the clock here is monotonic). A changed observation restarts the timer.

Memory: one small entry per tracked path (keyed by its ``str``, smaller than a ``Path``) plus a
heap of deadlines. Restarted timers leave stale heap items behind; they are skipped when popped
and the heap is rebuilt once it holds more than twice the live entries, so a file written in a
thousand chunks still costs O(1) memory.

Not thread-safe: the owner (``IntakeCoordinator``) serialises calls under its lock.

Network folders (finding 15): an NFS, SMB or sshfs client caches attributes and directory
listings (sshfs: 20 s for both, plus the kernel's 1 s), so a file another machine is writing
can look unchanged through the mount while it grows. Measured on sshfs with its defaults:
``lstat`` answered the old size for up to 21 s, a new file was listed 20 s late, and a read
stopped at the cached size (with ``dir_cache=no``: listed at once, the old size for 1 s). Two
defences, both here: the quiet period there is ``stability_s + network_settle_s``
(:func:`quiet_period_s`; the setting is kept above the cache lifetime), and a settled file is
looked at once more through an ``open`` before it is taken (:func:`revalidated_stat`).
"""

from __future__ import annotations

import heapq
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import NamedTuple

_HEAP_SLACK = 64  # stale heap items tolerated before a rebuild, beyond 2x the live entries


@dataclass(frozen=True, slots=True)
class Observation:
    """What was last seen of a path: its size, mtime and the clock time of its last change."""

    path: Path
    size: int
    mtime_ns: int
    changed_at: float


class _Seen(NamedTuple):
    size: int
    mtime_ns: int
    changed_at: float
    seq: int


def quiet_period_s(stability_s: float, network_settle_s: float, on_network: bool) -> float:
    """How long a file must look unchanged before it is taken: ``stability_s`` on a local disk;
    on a network folder ``network_settle_s`` more, the time the client may show a file's old
    size and mtime after another machine changed it."""
    return stability_s + network_settle_s if on_network else stability_s


def revalidated_stat(path: Path) -> os.stat_result:
    """``path``'s attributes, re-read through an ``open`` when it is a regular file.

    An open revalidates what a network client cached: NFS's close-to-open consistency fetches
    fresh attributes, sshfs refreshes its own cache (the kernel's 1 s FUSE attribute cache may
    still answer the fstat; the quiet period covers that). Opened read-only, without following
    a symlink or blocking; anything else is returned as ``lstat`` saw it, unopened. Raises
    OSError (gone, unreadable).
    """
    seen = os.lstat(path)
    if not stat.S_ISREG(seen.st_mode):
        return seen
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


class StabilityTracker:
    """Tracks candidate paths until their size and mtime have been still for ``stability_s``."""

    def __init__(self, stability_s: float, clock: Callable[[], float]) -> None:
        """Raises ValueError when ``stability_s`` is negative."""
        if stability_s < 0:
            raise ValueError(f"stability_s must be >= 0, got {stability_s}")
        self.stability_s = stability_s
        self._clock = clock
        self._entries: dict[str, _Seen] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, PurePath) and str(path) in self._entries

    def __iter__(self) -> Iterator[Path]:
        return iter([Path(key) for key in self._entries])

    def observe(self, path: Path, size: int, mtime_ns: int) -> bool:
        """Record what ``path`` looks like now; True if it is new or changed (timer restarted)."""
        key = str(path)
        seen = self._entries.get(key)
        if seen is not None and seen.size == size and seen.mtime_ns == mtime_ns:
            return False
        now = self._clock()
        self._next_seq += 1
        self._entries[key] = _Seen(size, mtime_ns, now, self._next_seq)
        heapq.heappush(self._heap, (now + self.stability_s, self._next_seq, key))
        self._compact_if_needed()
        return True

    def hold(self, path: Path, size: int, mtime_ns: int, for_s: float) -> None:
        """Track ``path`` as if it had just changed, due in ``max(stability_s, for_s)``: a file
        that looked settled but is still held open by a writer."""
        now = self._clock()
        due = now + max(self.stability_s, for_s)
        self._next_seq += 1
        key = str(path)
        # changed_at is set so that a compaction recomputes the same deadline.
        self._entries[key] = _Seen(size, mtime_ns, due - self.stability_s, self._next_seq)
        heapq.heappush(self._heap, (due, self._next_seq, key))
        self._compact_if_needed()

    def forget(self, path: Path) -> None:
        """Stop tracking ``path`` (deleted, moved away, claimed). Unknown paths are fine."""
        if self._entries.pop(str(path), None) is not None:
            self._compact_if_needed()

    def get(self, path: Path) -> Observation | None:
        """The last observation of ``path``, or None if it is not tracked."""
        seen = self._entries.get(str(path))
        return None if seen is None else Observation(path, *seen[:3])

    def due_observations(self, now: float, max_items: int | None = None) -> list[Observation]:
        """Remove and return the observations quiet for ``stability_s`` at ``now``, oldest first.

        At most ``max_items`` are returned; the rest stay tracked and due.
        """
        settled: list[Observation] = []
        while self._heap and self._heap[0][0] <= now:
            if max_items is not None and len(settled) >= max_items:
                break
            _, seq, key = heapq.heappop(self._heap)
            seen = self._entries.get(key)
            if seen is None or seen.seq != seq:
                continue  # stale: the path changed later or was forgotten
            del self._entries[key]
            settled.append(Observation(Path(key), *seen[:3]))
        return settled

    def due(self, now: float, max_items: int | None = None) -> list[Path]:
        """Remove and return the paths quiet for ``stability_s`` at ``now``, oldest first."""
        return [seen.path for seen in self.due_observations(now, max_items)]

    def next_deadline(self) -> float | None:
        """The clock time at which the next path becomes due, or None when nothing is tracked."""
        while self._heap:
            _, seq, key = self._heap[0]
            seen = self._entries.get(key)
            if seen is not None and seen.seq == seq:
                return self._heap[0][0]
            heapq.heappop(self._heap)
        return None

    def _compact_if_needed(self) -> None:
        if len(self._heap) <= 2 * len(self._entries) + _HEAP_SLACK:
            return
        self._heap = [
            (seen.changed_at + self.stability_s, seen.seq, key)
            for key, seen in self._entries.items()
        ]
        heapq.heapify(self._heap)
