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

from ..fsops import StrPath, fsync_dir, fsync_file, local_disk, rename_noreplace

__all__ = ["discard_temps", "download_path_for", "fsync_file", "publish_set", "temp_path_for"]

_PART_SUFFIX = ".part"
_DOWNLOADING_SUFFIX = ".dl"


def _temp_prefix(job_id: str) -> str:
    return f".bgcut-{job_id}-"


def temp_path_for(out_dir: StrPath, job_id: str, index: int) -> Path:
    """Where the downloader writes output ``index`` of job ``job_id``: hidden, in ``out_dir``."""
    return Path(out_dir) / f"{_temp_prefix(job_id)}{index}{_PART_SUFFIX}"


def download_path_for(out_dir: StrPath, job_id: str, index: int) -> Path:
    """Where output ``index`` is written while it downloads; renamed to :func:`temp_path_for`
    once complete and fsynced, so an existing ``.part`` is always a whole download."""
    return Path(out_dir) / f"{_temp_prefix(job_id)}{index}{_DOWNLOADING_SUFFIX}"


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


def _is_job_temp(name: str, prefix: str) -> bool:
    suffix = next((s for s in (_PART_SUFFIX, _DOWNLOADING_SUFFIX) if name.endswith(s)), None)
    if suffix is None or not name.startswith(prefix):
        return False
    index = name[len(prefix):-len(suffix)]
    return index.isascii() and index.isdigit()


def discard_temps(out_dir: StrPath, job_id: str) -> list[Path]:
    """Remove job ``job_id``'s leftover ``.part``/``.dl`` files in ``out_dir``; return them.

    A missing ``out_dir`` holds nothing. Raises LocalDiskError.
    """
    folder = Path(out_dir)
    prefix = _temp_prefix(job_id)
    removed: list[Path] = []
    with local_disk("removing temporary outputs", folder):
        try:
            entries = [e.name for e in os.scandir(folder)]
        except FileNotFoundError:
            return []
        for name in entries:
            if _is_job_temp(name, prefix):
                (folder / name).unlink(missing_ok=True)
                removed.append(folder / name)
        if removed:
            fsync_dir(folder)
    return removed
