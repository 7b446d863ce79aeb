"""Disposing of an input once its outputs are durable: archive it, or delete it.

The job archives in two steps so that a move interrupted after its copy (a crash, or an unlink
that failed, on another filesystem) is finished, never repeated under a ``-1`` name: it chooses
the target (:func:`archive_target`) and journals it, then moves the input there
(:func:`move_to_target`), which on resume finds the target holding the same bytes and only
unlinks the input.
"""

from __future__ import annotations

import errno
from pathlib import Path

from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.fsops import (
    StrPath,
    discard_stale_temps,
    fsync_dir,
    local_disk,
    make_dirs,
    move_file,
    remove_file,
    same_content,
)
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


def archive_target(archive_root: StrPath, subfolder: StrPath, original_name: str) -> Path:
    """Where the input goes: ``<archive_root>/<subfolder>/<original_name>`` or ``stem-N.ext``,
    the first name free now (created folders included). Raises LocalDiskError, ValueError."""
    folder = Path(archive_root) / subfolder
    with local_disk("archiving input", folder):
        make_dirs(folder)
        return free_name(folder, original_name)


def move_to_target(input_path: StrPath, target: StrPath) -> bool:
    """Move the input to ``target`` (journaled by the caller first); True once it is there.

    Idempotent: a ``target`` that already holds the input's bytes (the copy of a move that was
    interrupted before its unlink) only costs the unlink of the input. False, moving nothing,
    when ``target`` holds something else (another writer took the name: choose again). Raises
    LocalDiskError (the input stays).
    """
    destination = Path(target)
    with local_disk("archiving input", input_path):
        make_dirs(destination.parent)
        discard_stale_temps(destination)  # the half copy of an attempt killed mid-copy
        try:
            move_file(input_path, destination, overwrite=False)
        except FileExistsError:
            if not same_content(input_path, destination):
                return False
            remove_file(input_path)
    return True


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


__all__ = ["LocalDiskError", "archive", "archive_target", "delete_input", "move_to_free_name",
           "move_to_target"]
