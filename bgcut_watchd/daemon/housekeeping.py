"""Housekeeping, per folder, each part documented and off-switchable in the configuration:

* ``remove_empty_subfolders``: an inbox subfolder the daemon emptied (it claimed the last file
  of a ``cp -r`` or rsync drop) is removed once it has been quiet for ``stability_s``, and so
  are its parents that became empty, never the inbox itself. Only folders the daemon took a file
  from are candidates (a folder an operator made empty on purpose stays), and ``rmdir`` never
  removes a folder that is not empty.
* ``archive_retention_days`` / ``quarantine_retention_days`` (0 = keep forever): once an hour,
  archived inputs, and quarantined inputs with their ``.error.json``, that have been there for
  more than that many days (by change time, which the move sets) are deleted, then the
  subfolders this left empty; one log line per folder says how many.

Nothing here raises: a failure is logged and tried again next time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bgcut_watchd.clock import Clock
from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.job.quarantine import ERROR_SUFFIX

log = logging.getLogger("bgcut_watchd.daemon.housekeeping")

RETENTION_EVERY_S = 3600.0
DAY_S = 86400.0


class Housekeeper:
    """Keeps the folders tidy; ``note_taken`` from any thread, ``tick`` from the main loop."""

    def __init__(self, folders: Sequence[FolderConfig], stability_s: float,
                 clock: Clock = time.monotonic, wall_clock: Clock = time.time) -> None:
        self.folders = {f.name: f for f in folders}
        self.stability_s = stability_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._emptied: dict[tuple[str, Path], None] = {}  # an ordered set
        self._lock = threading.Lock()
        self._next_retention_s = clock()

    def note_taken(self, folder: str, path: Path) -> None:
        """A file of ``folder`` left the inbox at ``path``: its subfolder may now be empty."""
        config = self.folders.get(folder)
        if config is None or not config.remove_empty_subfolders:
            return
        if path.parent != config.inbox:
            with self._lock:
                self._emptied[(folder, path.parent)] = None

    def tick(self) -> None:
        """Remove the quiet emptied subfolders; once an hour, apply the retention periods."""
        self._remove_emptied()
        if self._clock() >= self._next_retention_s:
            self._next_retention_s = self._clock() + RETENTION_EVERY_S
            for folder in self.folders.values():
                apply_retention(folder, self._wall_clock())

    def _remove_emptied(self) -> None:
        with self._lock:
            candidates, self._emptied = list(self._emptied), {}
        keep: list[tuple[str, Path]] = []
        for folder, directory in candidates:
            inbox = self.folders[folder].inbox if folder in self.folders else None
            if inbox is not None and not self._try_remove(directory, inbox):
                keep.append((folder, directory))
        with self._lock:
            for item in keep:
                self._emptied.setdefault(item, None)

    def _try_remove(self, directory: Path, inbox: Path) -> bool:
        """True when done with ``directory`` (removed, gone, or not empty); False to look
        again later (it is empty but not yet quiet for ``stability_s``)."""
        try:
            st = os.lstat(directory)
            if any(os.scandir(directory)):
                return True
        except OSError:
            return True
        if self._wall_clock() - st.st_mtime < self.stability_s:
            return False
        remove_empty_dirs(directory, stop_at=inbox)
        return True


def remove_empty_dirs(directory: Path, stop_at: Path) -> int:
    """``rmdir`` ``directory`` and then each parent, up to but never ``stop_at``, while they
    are empty; the count removed. Raises nothing."""
    removed = 0
    while directory != stop_at and directory.is_relative_to(stop_at):
        try:
            directory.rmdir()
        except OSError:
            break
        log.info("removed the empty folder %s", directory)
        removed += 1
        directory = directory.parent
    return removed


def apply_retention(folder: FolderConfig, now_s: float) -> None:
    """Delete archived and quarantined inputs older than the folder's retention periods; one
    log line per period that is on, saying how many (0 included: the run is seen)."""
    if folder.archive is not None and folder.archive_retention_days > 0:
        cutoff_s = now_s - folder.archive_retention_days * DAY_S
        count = _expire(folder.archive, cutoff_s, pairs=False)
        log.info("folder %s: deleted %d archived input(s) older than %d day(s)",
                 folder.name, count, folder.archive_retention_days)  # 0 too: it ran
    if folder.quarantine_retention_days > 0:
        cutoff_s = now_s - folder.quarantine_retention_days * DAY_S
        count = _expire(folder.quarantine, cutoff_s, pairs=True)
        log.info("folder %s: deleted %d quarantined input(s) older than %d day(s), with "
                 "their error files", folder.name, count, folder.quarantine_retention_days)


def _expire(root: Path, cutoff_s: float, *, pairs: bool) -> int:
    """Delete the visible files of ``root`` modified before ``cutoff_s`` (with ``pairs``, an
    input and its ``.error.json`` go together); then the subfolders left empty."""
    count = 0
    for path in _old_files(root, cutoff_s):
        if pairs and path.name.endswith(ERROR_SUFFIX) and os.path.lexists(
                path.with_name(path.name[:-len(ERROR_SUFFIX)])):
            continue  # goes with its input
        try:
            path.unlink()
            count += 1
            if pairs:
                path.with_name(path.name + ERROR_SUFFIX).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", path, exc.strerror or exc)
        remove_empty_dirs(path.parent, stop_at=root)
    return count


def _old_files(root: Path, cutoff_s: float) -> Iterator[Path]:
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(dirpath) / name
            try:
                # ctime: when it was moved there (a rename sets it; mtime may be years old)
                if not name.startswith(".") and path.lstat().st_ctime < cutoff_s:
                    yield path
            except OSError:
                continue
