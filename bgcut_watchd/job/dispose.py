"""Disposing of a job's input once its outputs are durable: archive it, or delete it
(:func:`dispose_input`); and moving a file to a free name (requeue's way back to the inbox).

The job archives in two steps so that a move interrupted after its copy (a crash, or an unlink
that failed, on another filesystem) is finished, never repeated under a ``-1`` name: it chooses
the target (:func:`archive_target`) and journals it (with the publish already:
:func:`archive_target_of`), then moves the input there (:func:`move_to_target`), which on resume
finds the target holding the same bytes and only unlinks the input. Another writer taking the
journaled name first makes it choose again (``naming.retry_name_races``).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from bgcut_watchd.config.model import FolderConfig
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
    show_path,
)
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.naming import free_name, relative_subfolder, retry_name_races
from bgcut_watchd.job.workarea import ClaimedJob


def dispose_input(folder: FolderConfig, job: ClaimedJob) -> None:
    """Archive or delete ``job``'s input (one already gone: nothing to do, a resume).

    Raises LocalDiskError (the input stays), ValueError for a name the archive cannot take.
    """
    source = job.input_path
    if not os.path.lexists(source):
        return
    if deletes_input(folder, job):
        delete_input(source)  # a page's file: its multi-page original is archived
    else:
        _archive(folder, job, source)


def deletes_input(folder: FolderConfig, job: ClaimedJob) -> bool:
    """Whether disposal deletes the input rather than archiving it: ``on_success = "delete"``,
    a detached job (``process``'s copies), or a page of a multi-page input."""
    return (folder.on_success == "delete" or job.record.detached
            or job.record.page_of is not None)


def archive_target_of(folder: FolderConfig, job: ClaimedJob) -> str | None:
    """Where disposal will move ``job``'s input (journaled with the publish); None when it is
    deleted instead, or when the archive cannot take it now (disposal tries again and says
    why)."""
    if deletes_input(folder, job):
        return None
    try:
        return _free_archive_name(folder, job)
    except (LocalDiskError, ValueError):
        return None


def _free_archive_name(folder: FolderConfig, job: ClaimedJob) -> str:
    """The first free name for the input in the archive. Raises LocalDiskError, ValueError."""
    assert folder.archive is not None  # config requires it with "archive"
    subfolder = relative_subfolder(folder.inbox, job.record.original_relpath)
    return os.fsdecode(archive_target(folder.archive, subfolder,
                                      Path(job.record.original_relpath).name))


def _archive(folder: FolderConfig, job: ClaimedJob, source: Path) -> None:
    """Journal the archive target, then move there: a move interrupted after its copy
    (another filesystem) is finished on resume, never repeated under a ``-1`` name."""
    def journaled_target() -> Path:
        if job.record.dispose_target is None:
            job.save(job.record.advance(JobState.PUBLISHED,
                                        dispose_target=_free_archive_name(folder, job)))
        assert job.record.dispose_target is not None
        return Path(job.record.dispose_target)

    def moved(target: Path) -> Path | None:
        if move_to_target(source, target):
            return target
        job.save(job.record.advance(JobState.PUBLISHED, dispose_target=None))  # choose again
        return None

    job.final_input_path = retry_name_races(
        journaled_target, moved, f"archive name for {show_path(job.record.original_relpath)}")


def move_to_free_name(src: StrPath, folder: StrPath, name: str) -> Path:
    """Move ``src`` into existing ``folder`` as ``name`` or ``stem-N.ext``; return the new path.

    Never overwrites: if another writer takes the chosen name first, the next free one is used.
    Raises LocalDiskError after too many lost races, OSError, ValueError for an invalid name.
    """
    return retry_name_races(partial(free_name, folder, name), partial(_move_unless_taken, src),
                            f"name for {show_path(name)} in {show_path(folder)}")


def _move_unless_taken(src: StrPath, target: Path) -> Path | None:
    """Move ``src`` to ``target``; None, moving nothing, when ``target`` was taken."""
    try:
        move_file(src, target, overwrite=False)
    except FileExistsError:
        return None
    return target


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


__all__ = ["LocalDiskError", "archive_target", "archive_target_of", "delete_input",
           "deletes_input", "dispose_input", "move_to_free_name", "move_to_target"]
