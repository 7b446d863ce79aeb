"""Every folder's watcher, kept watching the folder its configuration names.

A watch is on a directory, not on a path: when the inbox is moved away and a fresh one created,
or a share is mounted over it after the daemon started (a late NFS/SMB mount at boot), inotify
(and a poller started on the old directory) keeps watching the old one, and new files waited for
the next rescan, up to ``rescan_interval_s`` (issue 9, finding 13). :meth:`WatchSet.check` (the
service calls it every second) therefore compares the inbox's identity (device, inode) with the
one the watcher started on, and watches a replaced inbox anew, its mode chosen again (the new
directory may be on a network filesystem); it also restarts watchers that died. The caller
rescans each folder :meth:`WatchSet.check` returns: its events were lost meanwhile.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.intake.fstype import choose_watch_mode
from bgcut_watchd.intake.watcher import FolderWatcher, ObserverFactory, PathCallback

logger = logging.getLogger("bgcut_watchd.intake")


class WatchSet:
    """One :class:`FolderWatcher` per folder name. For the service loop's thread only."""

    def __init__(self, on_path: PathCallback, on_dir: PathCallback,
                 observer_factory: ObserverFactory, mountinfo_path: Path, *,
                 on_open: PathCallback | None = None,
                 on_close: PathCallback | None = None) -> None:
        self._on_path = on_path
        self._on_dir = on_dir
        self._on_open = on_open
        self._on_close = on_close
        self._observer_factory = observer_factory
        self._mountinfo_path = mountinfo_path
        self._watchers: dict[str, FolderWatcher] = {}
        self._configs: dict[str, FolderConfig] = {}

    def start(self, config: FolderConfig) -> None:
        """Watch ``config.inbox`` (replacing any watcher of that folder), the mode chosen now.
        An inbox that cannot be watched yet is logged and retried by ``check``. Raises
        nothing."""
        self.stop(config.name)
        self._configs[config.name] = config
        self._launch(config)

    def stop(self, name: str) -> None:
        """Stop folder ``name``'s watcher, if any. Raises nothing."""
        watcher = self._watchers.pop(name, None)
        self._configs.pop(name, None)
        if watcher is not None:
            watcher.stop()

    def stop_all(self) -> None:
        """Stop every watcher (they stay known: ``modes`` says ``stopped``). Raises nothing."""
        for watcher in self._watchers.values():
            watcher.stop()

    def names(self) -> list[str]:
        return list(self._watchers)

    def check(self) -> list[str]:
        """Watch replaced inboxes anew and restart dead watchers; the folders (re)started.
        Raises nothing."""
        restarted: list[str] = []
        for name, watcher in list(self._watchers.items()):
            if watcher.replaced():
                _log_replaced(name, watcher.inbox)
                watcher.stop()
                started = self._launch(self._configs[name]).is_alive()
            else:
                started = not watcher.is_alive() and watcher.ensure_alive()
            if started:
                restarted.append(name)
        return restarted

    def modes(self) -> dict[str, str]:
        """Per folder: ``inotify``, ``polling`` or ``stopped`` (for ``status``)."""
        return {
            name: watcher.mode if watcher.is_alive() else "stopped"
            for name, watcher in self._watchers.items()
        }

    def _launch(self, config: FolderConfig) -> FolderWatcher:
        mode = choose_watch_mode(config.inbox, config.watch, self._mountinfo_path)
        watcher = FolderWatcher(
            config.name, config.inbox, config.recursive, mode, config.poll_interval_s,
            self._on_path, on_dir=self._on_dir, on_open=self._on_open, on_close=self._on_close,
            observer_factory=self._observer_factory,
        )
        self._watchers[config.name] = watcher
        try:
            watcher.start()
            logger.info("folder %s: watching %s (%s)", config.name, config.inbox, watcher.mode)
        except OSError as exc:
            logger.warning("folder %s: cannot watch %s yet: %s", config.name, config.inbox, exc)
        return watcher


def _log_replaced(name: str, inbox: Path) -> None:
    if inbox.is_dir():
        logger.warning("folder %s: the inbox %s was replaced (recreated, moved or mounted "
                       "over): watching the new one", name, inbox)
    else:
        logger.warning("folder %s: the inbox %s is gone: watching it again once it is back",
                       name, inbox)
