"""Publishing: the downloaded temporaries of one job renamed into place under their final names.

The downloader streams each output to ``<outbox>/<subfolder>/.bgcut-<job_id>-<n>.part`` (hidden,
beside its destination, so the rename is atomic) and fsyncs it. :func:`publish_set` then renames
them all and fsyncs the directory once. It is idempotent: after a crash in the middle, calling it
again with the same names finishes the job without duplicating or clobbering anything.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from bgcut_watchd.fsops import StrPath, fsync_dir, local_disk, rename_noreplace
from bgcut_watchd.job.naming import is_job_temp

__all__ = ["discard_temps", "publish_set"]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _check_pairs(pairs: list[tuple[Path, Path]], *, overwrite: bool) -> None:
    """Refuse before renaming anything: a lost temporary, or a final name taken by someone else."""
    for temp, final in pairs:
        if not os.path.lexists(temp):
            if os.path.lexists(final):
                continue  # published before a crash
            raise FileNotFoundError(errno.ENOENT, "temporary output missing", str(temp))
        if not overwrite and os.path.lexists(final) and not _same_file(temp, final):
            raise FileExistsError(errno.EEXIST, "output name already taken", str(final))


def _publish_one(temp: Path, final: Path, *, overwrite: bool) -> None:
    if not os.path.lexists(temp):
        return
    if overwrite:
        temp.replace(final)
        return
    try:
        rename_noreplace(temp, final)
    except FileExistsError:
        if not _same_file(temp, final):
            raise
        # A crash between link and unlink (rename_noreplace's fallback): finish the unlink.
        temp.unlink()


def publish_set(temps: Sequence[Path], finals: Sequence[Path], *, overwrite: bool) -> None:
    """Rename every ``temps[i]`` to ``finals[i]`` (same directory), then fsync the directory.

    Idempotent: a temporary already gone whose final exists counts as published.
    Raises FileExistsError (nothing renamed yet, unless another writer raced us) when, without
    ``overwrite``, a final name is taken by a file that is not ours: choose new names and call
    again. Raises FileNotFoundError when a temporary and its final are both missing: download
    again. Raises LocalDiskError for any other failure. ValueError if the lengths differ.
    """
    if len(temps) != len(finals):
        raise ValueError(f"{len(temps)} temporary files for {len(finals)} final names")
    pairs = [(Path(t), Path(f)) for t, f in zip(temps, finals, strict=True)]
    with local_disk("checking outputs", passthrough=(FileExistsError, FileNotFoundError)):
        _check_pairs(pairs, overwrite=overwrite)
    with local_disk("publishing outputs", passthrough=(FileExistsError,)):
        for temp, final in pairs:
            _publish_one(temp, final, overwrite=overwrite)
        for folder in dict.fromkeys(final.parent for _, final in pairs):
            fsync_dir(folder)


def discard_temps(out_dir: StrPath, job_id: str) -> list[Path]:
    """Remove job ``job_id``'s leftover ``.part``/``.dl`` files in ``out_dir``; return them.

    A missing ``out_dir`` holds nothing. Raises LocalDiskError.
    """
    folder = Path(out_dir)
    removed: list[Path] = []
    with local_disk("removing temporary outputs", folder):
        try:
            entries = [e.name for e in os.scandir(folder)]
        except FileNotFoundError:
            return []
        for name in entries:
            if is_job_temp(name, job_id):
                (folder / name).unlink(missing_ok=True)
                removed.append(folder / name)
        if removed:
            fsync_dir(folder)
    return removed
