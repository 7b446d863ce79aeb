"""The intake coordinator: noticing files, ignoring what is not ours, waiting until a file has
settled.

product.md "What happens to one file", steps 1-3. ``IntakeCoordinator`` is what the service
uses; claiming (step 4) is the engine's, fed by ``poll_due``::

    watchdog thread --notice()--> ignore rules --lstat--> StabilityTracker (per folder)
    startup scan / rescan --^                                  |
    folder moved in --notice_dir()--> scanned by poll_due()    v
    service loop <--poll_due()-- re-lstat, still unchanged --> in-flight set --done()--> gone

A settled file that a writer may still hold open is not handed out: it gets a fresh settling
period instead (``intake.writers``). Two signs tell: the inotify opens of the path not matched by
a close yet (``notice_open`` / ``notice_close``; an open never closed is disregarded after
``OPEN_HOLD_MAX_S``, for a missed event or a reader that never lets go), and a look into
``/proc`` for a descriptor open for writing, once per batch handed out.

A path handed out by ``poll_due`` stays in the in-flight set, and repeated events for it are
dropped, until ``done(path)``: the engine calls it right after the claim moved the file out of the
inbox (so a new file under the same name is noticed at once), and the service calls it when the
ticket ends without a claim (the file was gone, or left in place: the next rescan finds it).
At that last look camera RAW is left in the inbox with ``raw_files = "ignore"`` (``rawfiles``).

Over 300 lines on purpose: noticing, settling, the held-open check and handing out share one
lock, one in-flight set and the per-folder trackers; split, each half would reach into the other.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.intake.fstype import MOUNTINFO_PATH, is_network_folder
from bgcut_watchd.intake.ignore import IgnoreRules
from bgcut_watchd.intake.rawfiles import RawLeftAlone
from bgcut_watchd.intake.scan import is_candidate, scan_folder
from bgcut_watchd.intake.stability import (
    Observation,
    StabilityTracker,
    quiet_period_s,
    revalidated_stat,
)
from bgcut_watchd.intake.watcher import ObserverFactory, default_observer_factory
from bgcut_watchd.intake.watchset import WatchSet
from bgcut_watchd.intake.writers import OPEN_HOLD_MAX_S, OpenCounts, held_open

logger = logging.getLogger("bgcut_watchd.intake")

_GONE = (FileNotFoundError, NotADirectoryError)
SCAN_CLOCK_EVERY = 64
"""A slice of the scan reads the clock once every this many paths (a path costs ~40 µs)."""

HELD_OPEN_RECHECK_S = 0.5
"""The shortest wait before a file held open is looked at again (``stability_s`` may be 0)."""


@dataclass(frozen=True)
class _Folder:
    config: FolderConfig
    rules: IgnoreRules
    tracker: StabilityTracker
    on_network: bool  # a longer quiet period; settled files re-read through an open


class IntakeCoordinator:
    """Every folder's watcher, ignore rules and stability tracker, and the in-flight set.

    ``notice`` and ``notice_dir`` are safe from any thread; the rest is for the service loop.
    Start the watchers before the first ``scan_all`` so nothing slips between the two.
    """

    def __init__(
        self,
        folders: Sequence[FolderConfig],
        stability_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        observer_factory: ObserverFactory = default_observer_factory,
        mountinfo_path: Path = MOUNTINFO_PATH,
        on_new: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_new`` is called (from any thread) when a file starts being tracked, so the
        service loop can wake up and schedule its settling deadline."""
        self.clock = clock
        self._on_new = on_new
        self._stability_s = stability_s
        self._mountinfo_path = mountinfo_path
        self._folders = {f.name: self._new_folder(f, stability_s) for f in folders}
        self._watch = WatchSet(self.notice, self.notice_dir, observer_factory, mountinfo_path,
                               on_open=self.notice_open, on_close=self.notice_close)
        self._in_flight: set[str] = set()  # str, not Path: a third of the memory
        self._opens = OpenCounts(clock, OPEN_HOLD_MAX_S)
        self._pending_dirs: dict[tuple[str, Path], None] = {}  # an ordered set
        self._scan_steps: Iterator[Path] | None = None  # a scan going on (start_scan)
        self._scan_noticed = 0
        self._raw = RawLeftAlone()  # camera RAW left in the inboxes (raw_files = "ignore")
        self._lock = threading.Lock()

    # --- watchers -------------------------------------------------------------------------

    def start_watching(self) -> None:
        """Start one watcher per folder. A folder that cannot be watched yet is logged and
        retried by ``check_watchers``. Raises nothing."""
        for folder in list(self._folders.values()):
            self._watch.start(folder.config)
            if folder.on_network:
                logger.info("folder %s: on a network filesystem: %g s to settle",
                            folder.config.name, folder.tracker.stability_s)

    def stop_watching(self) -> None:
        """Stop every watcher. Raises nothing."""
        self._watch.stop_all()

    def reconfigure(self, folders: Sequence[FolderConfig], stability_s: float) -> None:
        """Apply a reloaded configuration in place (SIGHUP): one coordinator for the daemon's
        life, so the workers' ``done`` calls never reach a replaced one. A folder whose settings
        did not change keeps its watcher, its settling files and its in-flight paths; a changed
        or new one starts afresh; a removed one stops. Call from the service loop. Raises
        nothing."""
        current = self._folders
        kept = {f.name: current[f.name] for f in folders if stability_s == self._stability_s
                and f.name in current and current[f.name].config == f}
        folders_now = {f.name: kept.get(f.name) or self._new_folder(f, stability_s)
                       for f in folders}
        with self._lock:
            self._folders = folders_now
            self._stability_s = stability_s
        for name in self._watch.names():
            if name not in kept:
                self._watch.stop(name)
        for name, folder in folders_now.items():
            if name not in kept:
                self._watch.start(folder.config)

    def check_watchers(self) -> list[str]:
        """Restart dead watchers and watch replaced inboxes anew (``intake.watchset``), then
        rescan those folders (events were lost meanwhile).

        Returns the names of the folders (re)started. Raises nothing.
        """
        restarted = self._watch.check()
        for name in restarted:
            self.scan(name)
        return restarted

    def watch_modes(self) -> dict[str, str]:
        """Per folder: ``inotify``, ``polling`` or ``stopped`` (for ``status``)."""
        return self._watch.modes()

    # --- noticing -------------------------------------------------------------------------

    def notice(self, folder_name: str, path: Path) -> None:
        """Something happened at ``path``: track it, refresh it, or forget it if it is gone.

        Cheap (one lstat) and thread-safe. Ignored, foreign and in-flight paths are dropped.
        Raises nothing.
        """
        folder = self._folders.get(folder_name)
        if folder is None or self._admissible(folder, path) is None:
            return
        key = str(path)
        with self._lock:
            if key in self._in_flight:
                return
        try:
            st = os.lstat(path)
        except _GONE:
            with self._lock:
                folder.tracker.forget(path)
            self._opens.forget(path)
            self._raw.forget(path)
            return
        except OSError as exc:
            logger.debug("folder %s: cannot stat %s: %s", folder_name, path, exc)
            return
        if self._raw.known(path, st):
            return  # camera RAW left alone, unchanged since
        if stat.S_ISDIR(st.st_mode):
            self.notice_dir(folder_name, path)
        elif is_candidate(path.name, st.st_mode):
            with self._lock:
                changed = key not in self._in_flight and folder.tracker.observe(
                    path, st.st_size, st.st_mtime_ns)
            if changed:
                self._on_new()  # the loop may be in a 1 s idle sleep: plan the deadline now

    def notice_open(self, folder_name: str, path: Path) -> None:
        """inotify: ``path`` was opened, for reading or writing (inotify does not say): until
        it is closed it is not taken. Cheap and thread-safe; raises nothing."""
        folder = self._folders.get(folder_name)
        if folder is not None and self._admissible(folder, path) is not None:
            self._opens.opened(path)

    def notice_close(self, folder_name: str, path: Path) -> None:
        """inotify: ``path`` was closed (after writing or not): one open fewer, then noticed
        like any change. Cheap and thread-safe; raises nothing."""
        self._opens.closed(path)
        self.notice(folder_name, path)

    def notice_dir(self, folder_name: str, directory: Path) -> None:
        """A folder appeared (created or moved in): queue it to be scanned by ``poll_due``.

        Cheap and thread-safe: scanning happens on the caller of ``poll_due``. Raises nothing.
        """
        folder = self._folders.get(folder_name)
        if folder is None or not folder.config.recursive:
            return
        if self._admissible(folder, directory) is None:
            return
        with self._lock:
            self._pending_dirs[(folder_name, directory)] = None

    def scan(self, folder_name: str, start: Path | None = None) -> int:
        """Scan one folder (or a subfolder ``start``) and notice every candidate in it.

        Returns how many paths were noticed. Raises nothing: an unreadable inbox is logged.
        """
        return sum(1 for _ in self._scan_steps_of(folder_name, start))

    def scan_all(self) -> int:
        """Scan every folder at once. Returns the paths noticed."""
        return sum(self.scan(name) for name in self._folders)

    def start_scan(self) -> None:
        """Begin the start-up scan or a periodic rescan of every folder, carried out in slices
        by :meth:`scan_some` (a scan begun before is dropped: this one covers it)."""
        self._scan_steps = self._scan_every_folder()
        self._scan_noticed = 0

    @property
    def scanning(self) -> bool:
        """Whether a scan begun by :meth:`start_scan` is not finished yet."""
        return self._scan_steps is not None

    def scan_some(self, budget_s: float) -> int | None:
        """Go on with the scan for about ``budget_s``: so a backlog of 100,000 files is handed
        out while it is still being scanned (issue 14: the whole scan ran before the first
        hand-out). Returns the paths the scan noticed once it is finished, else None. Raises
        nothing: an unreadable inbox is logged and skipped."""
        steps = self._scan_steps
        if steps is None:
            return None
        stop_at = self.clock() + budget_s
        for count, _ in enumerate(steps, start=1):
            self._scan_noticed += 1
            if count % SCAN_CLOCK_EVERY == 0 and self.clock() >= stop_at:
                return None
        self._scan_steps = None
        return self._scan_noticed

    def _scan_every_folder(self) -> Iterator[Path]:
        for name in list(self._folders):
            if name in self._folders:  # not removed by a reload meanwhile
                yield from self._scan_steps_of(name)

    def _scan_steps_of(self, folder_name: str, start: Path | None = None) -> Iterator[Path]:
        """Notice every candidate of one folder (or of its subfolder ``start``), yielding each.
        An unreadable inbox is logged and ends the folder's scan."""
        folder = self._folders[folder_name]
        config = folder.config
        try:
            for path in scan_folder(config.inbox, config.recursive, folder.rules, start):
                self.notice(folder_name, path)
                yield path
        except OSError as exc:
            logger.warning("folder %s: cannot scan %s: %s", folder_name, start or config.inbox, exc)

    # --- handing out ----------------------------------------------------------------------

    def poll_due(self, now: float | None = None, max_items: int | None = None) -> list[
        tuple[str, Path]
    ]:
        """Settled candidates ``(folder_name, path)`` to claim, oldest first, now in flight.

        Each is lstat-ed once more (through an open on a network folder: ``revalidated_stat``):
        a path that changed since its last event (polling misses writes between polls) goes
        back to waiting, a vanished one is dropped. Scans the folders queued by ``notice_dir``
        first. ``max_items`` bounds the batch; the rest stays due. Raises nothing.
        """
        self._scan_pending_dirs()
        when = self.clock() if now is None else now
        ready: list[tuple[str, Path]] = []
        while max_items is None or len(ready) < max_items:
            due: list[tuple[str, Observation]] = []
            while max_items is None or len(ready) + len(due) < max_items:
                picked = self._pop_earliest_due(when)
                if picked is None:
                    break
                due.append(picked)
            if not due:
                break
            # Held open is asked before the confirming look: that look may open the file
            # (the RAW sniff, a share's revalidation), and the daemon's own open, seen by
            # inotify before its close, must not read as a writer holding the file.
            ready.extend((name, seen.path) for name, seen in self._not_held_open(due)
                         if self._confirm(self._folders[name], seen))
        return ready

    def done(self, path: Path) -> None:
        """The job is finished with ``path`` (claimed, gone or left): events count again."""
        with self._lock:
            self._in_flight.discard(str(path))

    def next_deadline(self) -> float | None:
        """When ``poll_due`` next has something to do (clock time), or None if nothing waits."""
        with self._lock:
            if self._pending_dirs:
                return self.clock()
            deadlines = [f.tracker.next_deadline() for f in self._folders.values()]
        pending = [d for d in deadlines if d is not None]
        return min(pending) if pending else None

    def waiting_counts(self) -> dict[str, int]:
        """Per folder, how many files are noticed but not yet settled."""
        with self._lock:
            return {name: len(folder.tracker) for name, folder in self._folders.items()}

    # --- internals ------------------------------------------------------------------------

    def _admissible(self, folder: _Folder, path: Path) -> PurePath | None:
        """``path`` relative to the inbox if it belongs to this folder and is not ignored."""
        try:
            relpath = PurePath(path.relative_to(folder.config.inbox))
        except ValueError:
            return None
        if not relpath.parts or (not folder.config.recursive and len(relpath.parts) > 1):
            return None
        if folder.rules.is_ignored(relpath) is not None:
            return None
        return relpath

    def _scan_pending_dirs(self) -> None:
        with self._lock:
            pending, self._pending_dirs = self._pending_dirs, {}
        for folder_name, directory in pending:
            if _is_real_dir(directory):
                self.scan(folder_name, directory)
            else:  # polling reports a file that took a removed folder's inode as that folder
                self.notice(folder_name, directory)  # moved there: a file, or gone

    def _pop_earliest_due(self, now: float) -> tuple[str, Observation] | None:
        """Across folders, remove and return the observation that settled first."""
        with self._lock:
            best: tuple[float, str] | None = None
            for name, folder in self._folders.items():
                deadline = folder.tracker.next_deadline()
                if deadline is None or deadline > now:
                    continue
                if best is None or deadline < best[0]:
                    best = (deadline, name)
            if best is None:
                return None
            due = self._folders[best[1]].tracker.due_observations(now, max_items=1)
        return (best[1], due[0]) if due else None

    def _not_held_open(self, settled: list[tuple[str, Observation]]) -> list[
        tuple[str, Observation]
    ]:
        """``settled`` without the files a writer may still hold open: those are tracked
        again, due after a fresh settling period."""
        held = held_open((seen.path for _, seen in settled), self._opens)
        ready: list[tuple[str, Observation]] = []
        for name, seen in settled:
            if seen.path in held:
                self._hold(self._folders[name], seen)
            else:
                ready.append((name, seen))
        return ready

    def _hold(self, folder: _Folder, seen: Observation) -> None:
        logger.debug("folder %s: %s is still open: settling again", folder.config.name,
                     seen.path)
        with self._lock:
            folder.tracker.hold(seen.path, seen.size, seen.mtime_ns, HELD_OPEN_RECHECK_S)

    def _confirm(self, folder: _Folder, seen: Observation) -> bool:
        """True (and in flight) if ``seen.path`` still looks exactly as when it settled."""
        try:
            st = revalidated_stat(seen.path) if folder.on_network else os.lstat(seen.path)
        except OSError:
            return False  # gone or unreadable: a later event or rescan brings it back
        unchanged = (st.st_size, st.st_mtime_ns) == (seen.size, seen.mtime_ns)
        if unchanged and self._raw.leave_alone(folder.config, seen.path, st):
            return False  # camera RAW, never uploaded: stays in the inbox, untouched
        key = str(seen.path)
        with self._lock:
            if key in self._in_flight:
                return False
            if not unchanged:
                folder.tracker.observe(seen.path, st.st_size, st.st_mtime_ns)
                return False
            folder.tracker.forget(seen.path)
            self._in_flight.add(key)
            return True

    def _new_folder(self, config: FolderConfig, stability_s: float) -> _Folder:
        # network_settle_s = 0 treats a share like a local disk
        on_network = config.network_settle_s > 0 and is_network_folder(
            config.inbox, self._mountinfo_path)
        quiet_s = quiet_period_s(stability_s, config.network_settle_s, on_network)
        return _Folder(config, IgnoreRules(config.ignore),
                       StabilityTracker(quiet_s, self.clock), on_network)


def _is_real_dir(path: Path) -> bool:
    """A directory itself (not a symlink to one); False when gone or unreadable."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
