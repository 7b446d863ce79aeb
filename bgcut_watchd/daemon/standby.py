"""Folders on standby: their share is declared (``/etc/fstab``, a ``.mount`` unit) but not
mounted (a late NFS/SMB mount at boot, a share that dropped). Nothing is watched or written
there, so the daemon never fills an empty mount point on the local disk; when the share is
mounted the folder is watched, recovered and scanned like any other (``config.folders``,
``mounts``). The service refreshes this every second from the mount tables alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bgcut_watchd.config.folders import folder_standby_of_resolved, folder_standby_paths
from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.mounts import SYSTEM_TABLES, MountTables, MountView

log = logging.getLogger("bgcut_watchd.daemon.service")


class Standby:
    """Which configured folders wait for their mount. For the service loop only."""

    def __init__(self, folders: Sequence[FolderConfig],
                 tables: MountTables = SYSTEM_TABLES) -> None:
        self.folders = tuple(folders)
        self._tables = tables
        # Resolved once: the check every second then reads only the mount tables, never a
        # folder (a share that stopped answering would block the service loop).
        self._paths = {f.name: folder_standby_paths(f) for f in self.folders}
        self._view = MountView(tables)  # the tables re-read only when they change
        self.reasons: dict[str, str] = {}

    def refresh(self) -> list[str]:
        """Look again; the names of the folders that came off standby (their share is there
        now). Logs each change. Raises nothing."""
        before = self.reasons
        tables_now = self._view.now()
        self.reasons = {f.name: why for f in self.folders
                        if (why := folder_standby_of_resolved(self._paths[f.name], self._tables,
                                                              tables_now)) is not None}
        for name, why in self.reasons.items():
            if name not in before:
                log.warning("folder %s on standby: %s", name, why)
        back = [name for name in before if name not in self.reasons]
        for name in back:
            log.warning("folder %s: its share is mounted: watching it", name)
        return back

    def active(self) -> tuple[FolderConfig, ...]:
        """The folders that are not on standby."""
        return tuple(f for f in self.folders if f.name not in self.reasons)

    def changed_since(self, names: set[str]) -> bool:
        """Whether the set of folders on standby differs from ``names``."""
        return set(self.reasons) != names
