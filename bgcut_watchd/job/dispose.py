"""Disposing of an input once its outputs are durable: archive it, or delete it."""

from __future__ import annotations

import errno
from pathlib import Path

from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.fsops import StrPath, fsync_dir, local_disk, make_dirs, move_file
from bgcut_watchd.job.naming import MAX_NAME_RACES, free_name


def move_to_free_name(src: StrPath, folder: StrPath, name: str) -> Path:
    """Move ``src`` into existing ``folder`` as ``name`` or ``stem-N.ext``; return the new path.

    Never overwrites: if another writer takes the chosen name first, the next free one is used.
    Raises OSError (FileExistsError after too many lost races), ValueError for an invalid name.
    """
    for _ in range(MAX_NAME_RACES):
        target = free_name(folder, name)
        try:
            move_file(src, target, overwrite=False)
        except FileExistsError:
            continue
        return target
    taken = str(Path(folder) / name)
    raise FileExistsError(errno.EEXIST, "no free name after repeated races", taken)


def archive(
    input_path: StrPath, archive_root: StrPath, subfolder: StrPath, original_name: str,
) -> Path:
    """Move the input to ``<archive_root>/<subfolder>/<original_name>`` (or ``stem-N.ext``).

    Works across filesystems (copy, fsync, rename, then unlink the source: at worst a duplicate).
    Returns the archived path. Raises LocalDiskError; ValueError for an invalid name.
    """
    folder = Path(archive_root) / subfolder
    with local_disk("archiving input", input_path):
        make_dirs(folder)
        return move_to_free_name(input_path, folder, original_name)


def delete_input(path: StrPath) -> None:
    """Unlink the input and fsync its directory; an input already gone is fine (resume).

    Raises LocalDiskError.
    """
    target = Path(path)
    with local_disk("deleting input", target):
        try:
            target.unlink()
        except FileNotFoundError:
            return
        fsync_dir(target.parent)


__all__ = ["LocalDiskError", "archive", "delete_input", "move_to_free_name"]
