"""Which filesystem a folder lives on, and so whether inotify can be trusted there.

inotify only reports changes made through the local kernel. On a network or FUSE filesystem a
file written by another machine (or by the FUSE daemon behind the kernel's back) raises no
event, so ``watch = "auto"`` polls those folders (product.md, "Configuration").

The filesystem type comes from ``/proc/self/mountinfo`` (proc(5), parsed by ``mounts``): the mount
with the longest mount point containing the folder, the last one listed winning a tie (it is
mounted on top).
"""

from __future__ import annotations

import fnmatch
import logging
import os
from pathlib import Path
from typing import Literal

from bgcut_watchd.mounts import MOUNTINFO_PATH, Mount, contains, parse_mountinfo

logger = logging.getLogger("bgcut_watchd.intake")

WatchMode = Literal["inotify", "polling"]
UNKNOWN_FSTYPE = "unknown"

# Filesystems where inotify misses changes made elsewhere. The brief's list (network, FUSE)
# plus the cluster/shared filesystems that share the same blind spot.
POLLING_FSTYPES: tuple[str, ...] = (
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "sshfs", "fuse", "fuse.*", "fuseblk", "9p",
    "afs", "ceph", "glusterfs", "davfs", "lustre", "gpfs", "beegfs", "virtiofs",
)

def fstype_for(path: str, mounts: list[Mount]) -> str:
    """The type of the innermost mount containing the absolute, resolved ``path``."""
    best: Mount | None = None
    for mount in mounts:
        if contains(mount.mount_point, path) and (
            best is None or len(mount.mount_point) >= len(best.mount_point)
        ):
            best = mount
    return best.fstype if best is not None else UNKNOWN_FSTYPE


def filesystem_type(path: Path, mountinfo_path: Path = MOUNTINFO_PATH) -> str:
    """The filesystem type of ``path`` (``ext4``, ``nfs4``, ``fuse.sshfs``...), or ``unknown``.

    ``path`` need not exist yet; symlinks in it are resolved. Raises nothing: an unreadable
    mountinfo gives ``unknown``.
    """
    try:
        text = mountinfo_path.read_bytes()
    except OSError as exc:
        logger.warning("cannot read %s to find the filesystem of %s: %s", mountinfo_path, path, exc)
        return UNKNOWN_FSTYPE
    return fstype_for(os.path.realpath(path), parse_mountinfo(text))


def is_polling_fstype(fstype: str) -> bool:
    """True for the filesystems where inotify cannot see every change."""
    return any(fnmatch.fnmatchcase(fstype, pattern) for pattern in POLLING_FSTYPES)


def is_network_folder(path: Path, mountinfo_path: Path = MOUNTINFO_PATH) -> bool:
    """True when ``path`` is on a network, FUSE or cluster filesystem (the ones ``auto`` polls):
    other machines write there, and the client's caches may show their files late. Raises
    nothing."""
    return is_polling_fstype(filesystem_type(path, mountinfo_path))


def choose_watch_mode(
    path: Path, configured: str, mountinfo_path: Path = MOUNTINFO_PATH
) -> WatchMode:
    """``inotify`` or ``polling`` for a folder whose ``watch`` setting is ``configured``.

    ``auto`` polls network, FUSE and cluster filesystems and uses inotify elsewhere (including
    when the type is unknown). Raises ValueError for any other setting than auto, inotify or
    polling.
    """
    if configured in ("inotify", "polling"):
        return "inotify" if configured == "inotify" else "polling"
    if configured != "auto":
        raise ValueError(f"watch must be auto, inotify or polling, not {configured!r}")
    fstype = filesystem_type(path, mountinfo_path)
    mode: WatchMode = "polling" if is_polling_fstype(fstype) else "inotify"
    logger.debug("watch mode for %s on %s filesystem: %s", path, fstype, mode)
    return mode


__all__ = ["MOUNTINFO_PATH", "Mount", "WatchMode", "choose_watch_mode", "filesystem_type",
           "fstype_for", "is_polling_fstype", "parse_mountinfo"]
