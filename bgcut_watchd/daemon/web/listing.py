"""The quarantine of a folder as a list for the page: newest first, bounded, with each file's
reason read from its ``.error.json`` (only for the files shown), kept by a
:class:`QuarantineIndex` until a folder of the quarantine changes.

A file is named in forms by a key (the URL-safe base64 of its path's bytes relative to the
quarantine), never by a path the browser could change into another: :func:`resolve_key` turns a
key back into a path inside the quarantine or raises.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bgcut_watchd.job.quarantine import ERROR_SUFFIX

MAX_ERROR_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class QuarantinedFile:
    """One quarantined input as the page shows it."""

    relpath: str              # relative to the quarantine folder (os.fsdecode'd)
    key: str                  # the form value naming it
    reason: str | None
    detail: str
    quarantined_at: str | None
    path: Path


@dataclass(frozen=True)
class QuarantineList:
    """The newest ``files`` of a quarantine, and how many inputs it holds in all."""

    files: tuple[QuarantinedFile, ...] = ()
    total: int = 0


def key_of(relpath: str) -> str:
    """The form key of a path relative to the quarantine."""
    return base64.urlsafe_b64encode(os.fsencode(relpath)).decode("ascii").rstrip("=")


def resolve_key(root: Path, key: str) -> Path:
    """The path inside ``root`` that ``key`` names. Raises ValueError for a bad key or a path
    that leaves ``root``."""
    try:
        raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a file key") from exc
    relative = os.fsdecode(raw)
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or any(p in ("..", ".") for p in parts):
        raise ValueError("not a path inside the quarantine")
    return root / relative


class QuarantineIndex:
    """The listing of one quarantine, scanned again only when one of its folders changed.

    A scan stats each error file (no read: only the ``limit`` shown are read) and remembers
    each folder's inode, ``st_mtime_ns`` and ``st_ctime_ns``; a later :meth:`get` stats only
    those folders. Every quarantine or requeue renames or removes an entry, which changes its
    folder's times. A folder changed within ``RACY_S`` of the scan could change again within
    the same timestamp tick unseen, so such a scan is not trusted (the next ``get`` scans
    again, like git's racily clean index), and none is kept past ``MAX_AGE_S``. Thread-safe.
    """

    RACY_S = 2.0
    MAX_AGE_S = 300.0

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._stamps: dict[str, tuple[int, int, int]] | None = None
        self._found: list[tuple[int, str]] = []   # (error file mtime_ns, its path), newest first
        self._items: dict[tuple[int, str], QuarantinedFile] = {}
        self._trusted_until_s = 0.0

    def get(self, limit: int) -> QuarantineList:
        """The ``limit`` newest quarantined inputs and the total. Raises nothing."""
        with self._lock:
            if not self._fresh():
                self._scan()
            shown = self._found[:limit]
            self._items = {k: self._items.get(k) or _item(self.root, Path(k[1]))
                           for k in shown}
            return QuarantineList(tuple(self._items[k] for k in shown), len(self._found))

    def forget(self) -> None:
        """Scan again at the next :meth:`get` (something was quarantined or requeued)."""
        with self._lock:
            self._stamps = None

    def _fresh(self) -> bool:
        if self._stamps is None or time.monotonic() > self._trusted_until_s:
            return False
        return all(_stamp(path) == stamp for path, stamp in self._stamps.items())

    def _scan(self) -> None:
        started_ns = time.time_ns()
        stamps: dict[str, tuple[int, int, int]] = {}
        found: list[tuple[int, str]] = []
        pending = [os.fspath(self.root)]
        while pending:
            folder = pending.pop()
            stamp = _stamp(folder)
            if stamp is None:
                continue
            stamps[folder] = stamp
            found += _error_files(folder, pending)
        found.sort(reverse=True)
        self._stamps, self._found = stamps, found
        racy = any(started_ns - s[1] < self.RACY_S * 1e9 for s in stamps.values())
        self._trusted_until_s = time.monotonic() + (0.0 if racy else self.MAX_AGE_S)


def _stamp(folder: str) -> tuple[int, int, int] | None:
    """A folder's inode, modification and change times in ns; None when it cannot be read."""
    try:
        st = Path(folder).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def _error_files(folder: str, subfolders: list[str]) -> list[tuple[int, str]]:
    """The visible error files in ``folder`` whose input is beside them, with their mtime_ns;
    appends its visible subfolders to ``subfolders``. Raises nothing."""
    try:
        with os.scandir(folder) as scan:
            entries = list(scan)
    except OSError:
        return []
    names = {e.name for e in entries}
    found: list[tuple[int, str]] = []
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        try:
            if name.endswith(ERROR_SUFFIX) and name[:-len(ERROR_SUFFIX)] in names:
                found.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.path))
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
        except OSError:
            continue
    return found


def _item(root: Path, error_file: Path) -> QuarantinedFile:
    path = error_file.with_name(error_file.name[:-len(ERROR_SUFFIX)])
    relpath = os.fsdecode(path.relative_to(root))
    record = read_error_record(error_file)
    return QuarantinedFile(relpath=relpath, key=key_of(relpath),
                           reason=_text(record.get("reason")), detail=str(record.get("detail")
                                                                           or ""),
                           quarantined_at=_text(record.get("quarantined_at")), path=path)


def read_error_record(error_file: Path) -> dict[str, object]:
    """The JSON object of an error file, or {} when it cannot be read."""
    try:
        with error_file.open("rb") as stream:
            data = json.loads(stream.read(MAX_ERROR_FILE_BYTES))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def error_of(quarantined: Path | None) -> tuple[str | None, str]:
    """The reason and detail of a quarantined input's error file (None, "" if unreadable)."""
    if quarantined is None:
        return None, ""
    record = read_error_record(quarantined.with_name(quarantined.name + ERROR_SUFFIX))
    reason = record.get("reason")
    return (reason if isinstance(reason, str) else None), str(record.get("detail") or "")
