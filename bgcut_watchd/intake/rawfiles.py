"""Camera RAW files left in the inbox (``raw_files = "ignore"``, the default).

Cameras that shoot RAW+JPEG write both into one folder: the JPEG is the one to process, the RAW
is never uploaded. With ``raw_files = "ignore"`` the intake recognises a settled file as RAW by
its first bytes (``sniff.camera_raw``: one open, a read of 4 KiB, a few more for a TIFF-based
RAW) before it is claimed, logs it once and leaves it where it is, untouched. It remembers the
file's size and mtime, so the periodic rescan drops it after one ``lstat`` instead of sniffing
and logging it again; a file changed in place is looked at afresh. With ``"quarantine"`` RAW is
claimed like any file and the local check quarantines it (reason ``camera_raw``).

Memory: one small entry per RAW file in the inboxes, forgotten when the file goes.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.fsops import show_path
from bgcut_watchd.intake.sniff import sniff_camera_raw

logger = logging.getLogger("bgcut_watchd.intake")


class RawLeftAlone:
    """The RAW files each folder leaves in its inbox: (size, mtime_ns) by path. Thread-safe."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._known)

    def known(self, path: Path, st: os.stat_result) -> bool:
        """True when ``path`` is a RAW file already left alone, unchanged since."""
        with self._lock:
            return self._known.get(str(path)) == (st.st_size, st.st_mtime_ns)

    def forget(self, path: Path) -> None:
        """``path`` is gone (or changed): nothing to remember."""
        with self._lock:
            self._known.pop(str(path), None)

    def leave_alone(self, folder: FolderConfig, path: Path, st: os.stat_result) -> bool:
        """True (logged once, remembered) when ``folder`` leaves RAW alone and ``path`` is a
        regular file holding camera RAW. Raises nothing: a file that cannot be read is taken,
        and the local check says what is wrong with it."""
        if folder.raw_files != "ignore" or not stat.S_ISREG(st.st_mode):
            return False
        try:
            kind = sniff_camera_raw(path)
        except OSError:
            return False
        if kind is None:
            return False
        with self._lock:
            self._known[str(path)] = (st.st_size, st.st_mtime_ns)
        logger.info('folder %s: %s is camera RAW (%s): left in the inbox (raw_files = "ignore")',
                    folder.name, show_path(path), kind)
        return True
