"""Watching one inbox with watchdog: inotify where it works, polling where it cannot.

The handler only forwards paths: watchdog runs every handler of an observer on one thread, so
it must never block (house style, habit 6). It forwards file creations, writes closed, writes,
attribute changes, moves (both ends: the source so a tracker can forget it, the destination
because a file renamed into place is the common way to publish one) and deletions; and new or
moved-in folders to ``on_dir``, for the caller to scan on its own thread. With inotify, opens
(``FileOpenedEvent``) go to ``on_open`` and closes (``FileClosedEvent`` after writing,
``FileClosedNoWriteEvent`` after reading) to ``on_close``, so the caller can tell a file still
held open by a paused writer (``intake.writers``); inotify does not say an open's mode.

Fallback: creating the inotify observer fails with ENOSPC when ``fs.inotify.max_user_watches``
is exhausted and with EMFILE when ``fs.inotify.max_user_instances`` is. The folder is then
polled, with one warning naming the sysctl to raise. Note that watchdog 7 silently skips a
*subfolder* it cannot watch; the periodic rescan finds what lands there.

Over 300 lines on purpose: the inotify-or-polling choice, the observer's restart and watchdog's
workarounds share one observer's lifecycle.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from bgcut_watchd.intake.fstype import WatchMode

logger = logging.getLogger("bgcut_watchd.intake")

PathCallback = Callable[[str, Path], None]
ObserverFactory = Callable[[WatchMode, float], BaseObserver]

EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileClosedEvent, FileModifiedEvent, FileAttribEvent, FileMovedEvent,
    FileDeletedEvent, DirCreatedEvent, DirMovedEvent, FileOpenedEvent, FileClosedNoWriteEvent,
]
_INOTIFY_LIMITS = {
    errno.ENOSPC: "fs.inotify.max_user_watches",
    errno.EMFILE: "fs.inotify.max_user_instances",
}
STOP_TIMEOUT_S = 5.0


def default_observer_factory(mode: WatchMode, poll_interval_s: float) -> BaseObserver:
    """A new, unstarted observer. Raises OSError (ENOSPC, EMFILE) when inotify is exhausted.

    Polling uses ``os.lstat``: watchdog's plain PollingObserver stats with ``os.stat`` and so
    descends into symlinked folders (a link to ``/`` would be walked every poll).
    """
    if mode == "inotify":
        _shorten_move_pairing_hold()
        return _inotify_observer()
    return PollingObserverVFS(os.lstat, os.scandir, polling_interval=poll_interval_s)


def _inotify_observer() -> BaseObserver:
    """watchdog's inotify observer, without watches on hidden folders below the inbox.

    Hidden names are always ignored (``intake.ignore``), and the work area ``.bgcut-work``
    is one: every journal write, rename and job folder there became inotify events that
    watchdog decoded in Python and the handler then dropped, ~18% of the daemon's CPU under
    load (issue 14). A hidden folder renamed to a visible name is still seen: its move into
    a watched folder adds its watches. Needs watchdog 5+'s ``InotifyWatchGroup``; with an
    older watchdog every folder is watched, as before.
    """
    from watchdog.observers import inotify, inotify_c

    group_type = getattr(inotify, "InotifyWatchGroup", None)
    if group_type is None or not hasattr(group_type, "_add_callback"):
        return inotify.InotifyObserver()

    class UnhiddenGroup(group_type):  # type: ignore[misc,valid-type]
        def _add_callback(self, path: bytes) -> None:
            below = path[len(self.path):].split(b"/") if path.startswith(self.path) else []
            if any(part.startswith(b".") for part in below):
                return  # in a hidden folder, at any depth
            super()._add_callback(path)

    class Emitter(inotify.InotifyEmitter):
        def on_thread_start(self) -> None:
            self._inotify = UnhiddenGroup(
                self._inotify_fd, os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink)

    class Observer(inotify.InotifyObserver):
        def __init__(self) -> None:
            self._inotify_fd = inotify_c.InotifyFD()
            self._inotify_fd.start()
            BaseObserver.__init__(self, Emitter, timeout=DEFAULT_OBSERVER_TIMEOUT,
                                  inotify_fd=self._inotify_fd)

    return Observer()


MOVE_PAIRING_HOLD_S = 0.05


def _shorten_move_pairing_hold() -> None:
    """watchdog holds every IN_MOVED_FROM for 0.5 s, waiting for its IN_MOVED_TO, and the
    events behind it wait too. The daemon makes one such event per finished job (the input
    leaves ``<inbox>/.bgcut-work`` for the archive), so every file dropped just after a job
    ended was noticed 0.5 s late (measured by bench/latency.py: p95 1.15 s for a 0.8 s target).
    Both halves of a rename reach the same inotify read, so 50 ms pairs them as well; and this
    handler treats an unpaired half like a creation or deletion anyway. watchdog reads the
    value when it builds a watch group, so it is set before each inotify observer is built.
    """
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

    InotifyMoveEventGrouper.delay = MOVE_PAIRING_HOLD_S


class _ForwardingHandler(FileSystemEventHandler):
    """Turns watchdog events into ``on_path`` / ``on_dir`` calls. Never raises, never blocks.

    Paths are reported under the configured inbox even though the watch is on its real path.
    """

    def __init__(
        self, folder_name: str, inbox: Path, watched: str, recursive: bool,
        on_path: PathCallback, on_dir: PathCallback,
        on_open: PathCallback | None = None, on_close: PathCallback | None = None,
    ) -> None:
        self._folder_name = folder_name
        self._inbox = inbox
        self._watched_prefix = watched.rstrip("/") + "/"
        self._recursive = recursive
        self._on_path = on_path
        self._on_dir = on_dir
        self._on_open = on_open
        self._on_close = on_close

    def _path(self, raw: bytes | str) -> Path:
        text = os.fsdecode(raw)
        if text.startswith(self._watched_prefix):
            return self._inbox / text[len(self._watched_prefix):]
        return Path(text)

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._route(event)
        except Exception:
            # An exception here would kill watchdog's dispatcher thread and every later event.
            logger.exception("folder %s: handling %r failed", self._folder_name, event)

    def _route(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            if self._recursive and isinstance(event, DirMovedEvent) and event.dest_path:
                self._on_dir(self._folder_name, self._path(event.dest_path))
            elif self._recursive and isinstance(event, DirCreatedEvent):
                self._on_dir(self._folder_name, self._path(event.src_path))
            return
        if isinstance(event, FileOpenedEvent | FileClosedNoWriteEvent | FileClosedEvent):
            self._route_open_close(event)
            return
        if event.src_path:
            self._on_path(self._folder_name, self._path(event.src_path))
        if isinstance(event, FileMovedEvent) and event.dest_path:
            self._on_path(self._folder_name, self._path(event.dest_path))


    def _route_open_close(self, event: FileSystemEvent) -> None:
        path = self._path(event.src_path)
        if isinstance(event, FileOpenedEvent):
            if self._on_open is not None:
                self._on_open(self._folder_name, path)
        elif self._on_close is not None:
            self._on_close(self._folder_name, path)
        elif isinstance(event, FileClosedEvent):  # written: what on_path has always had
            self._on_path(self._folder_name, path)


class FolderWatcher:
    """One inbox's observer: start, stop, health check and restart, inotify-to-polling fallback.

    ``on_path(folder_name, path)`` is called on watchdog's thread for every file event (the
    path may already be gone); ``on_dir(folder_name, dir)`` for a folder created or moved in
    (recursive folders only), or ``on_path`` when ``on_dir`` is None; ``on_open`` and
    ``on_close`` for a file opened and closed (inotify only; without ``on_close`` a close after
    writing goes to ``on_path``). All must be quick.
    """

    def __init__(
        self,
        folder_name: str,
        inbox: Path,
        recursive: bool,
        mode: WatchMode,
        poll_interval_s: float,
        on_path: PathCallback,
        *,
        on_dir: PathCallback | None = None,
        on_open: PathCallback | None = None,
        on_close: PathCallback | None = None,
        observer_factory: ObserverFactory = default_observer_factory,
    ) -> None:
        self.folder_name = folder_name
        self.inbox = inbox
        self.recursive = recursive
        self.poll_interval_s = poll_interval_s
        self._mode: WatchMode = mode
        self._factory = observer_factory
        self._on_path = on_path
        self._on_dir = on_dir or on_path
        self._on_open = on_open
        self._on_close = on_close
        self._identity: tuple[int, int] | None = None  # the inbox's (dev, ino) at the last start
        self._observer: BaseObserver | None = None
        self._lock = threading.Lock()
        self._restart_failing = False
        self._stopped = False  # stop() was called: ensure_alive must not bring it back

    @property
    def mode(self) -> WatchMode:
        """The mode in use: ``polling`` after an inotify fallback, whatever was asked."""
        return self._mode

    def start(self) -> None:
        """Start watching. Raises OSError when the inbox cannot be watched at all (missing...)."""
        with self._lock:
            self._stopped = False
            self._stop_observer()
            self._observer = self._start_observer()

    def stop(self) -> None:
        """Stop watching and wait (up to STOP_TIMEOUT_S) for watchdog's threads. Raises nothing."""
        with self._lock:
            self._stopped = True
            self._stop_observer()

    def replaced(self) -> bool:
        """True when the inbox path no longer names the directory the last start looked at
        (moved away, recreated, mounted over, or come back): watch anew. Raises nothing."""
        return not self._stopped and _identity(self.inbox) != self._identity

    def is_alive(self) -> bool:
        """True while the observer thread and every emitter thread run."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        return all(emitter.is_alive() for emitter in observer.emitters)

    def ensure_alive(self) -> bool:
        """Restart a dead observer; True if the watcher runs after the call. Raises nothing.

        Events were lost while it was dead: after a restart, rescan the folder. A failed restart
        (inbox gone, share down) is logged once per failure streak and retried on the next call.
        A watcher stopped by ``stop()`` stays stopped (False).
        """
        if self.is_alive():
            return True
        with self._lock:
            if self._stopped:
                return False
            if not self._restart_failing:
                logger.warning("folder %s: %s watcher stopped, restarting it",
                               self.folder_name, self._mode)
            self._stop_observer()
            try:
                self._observer = self._start_observer()
            except OSError as exc:
                if not self._restart_failing:
                    logger.warning("folder %s: cannot watch %s, will retry: %s",
                                   self.folder_name, self.inbox, exc)
                self._restart_failing = True
                return False
        if self._restart_failing:
            logger.info("folder %s: watching %s again", self.folder_name, self.inbox)
        self._restart_failing = False
        return True

    def _start_observer(self) -> BaseObserver:
        if self._mode == "inotify":
            try:
                return self._launch("inotify")
            except OSError as exc:
                sysctl = _INOTIFY_LIMITS.get(exc.errno or 0)
                if sysctl is None:
                    raise
                logger.warning(
                    "folder %s: inotify limit reached (%s); polling %s every %gs instead. "
                    "Raise the sysctl %s (e.g. sysctl -w %s=524288) to use inotify",
                    self.folder_name, exc.strerror, self.inbox, self.poll_interval_s, sysctl,
                    sysctl,
                )
                self._mode = "polling"
        return self._launch("polling")

    def _launch(self, mode: WatchMode) -> BaseObserver:
        self._identity = _identity(self.inbox)
        # inotify on a symlinked inbox would watch the link itself (watchdog adds IN_DONT_FOLLOW)
        # and report nothing, so the real folder is watched and paths are mapped back.
        watched = os.path.realpath(self.inbox)
        handler = _ForwardingHandler(self.folder_name, self.inbox, watched, self.recursive,
                                     self._on_path, self._on_dir, self._on_open, self._on_close)
        observer = self._factory(mode, self.poll_interval_s)
        try:
            observer.schedule(handler, watched, recursive=self.recursive,
                              event_filter=EVENT_TYPES)
            observer.start()
        except BaseException:
            _halt(observer)
            raise
        return observer

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            _halt(observer)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the directory at ``path`` (symlinks followed), None if there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _halt(observer: BaseObserver) -> None:
    """Stop an observer, started or not, and join its thread. Raises nothing."""
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(STOP_TIMEOUT_S)
    except Exception:
        logger.debug("stopping a watchdog observer failed", exc_info=True)
