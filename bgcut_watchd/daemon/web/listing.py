"""The quarantine of a folder as a list for the page: newest first, bounded, with each file's
reason read from its ``.error.json``.

A file is named in forms by a key (the URL-safe base64 of its path's bytes relative to the
quarantine), never by a path the browser could change into another: :func:`resolve_key` turns a
key back into a path inside the quarantine or raises.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
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


def list_quarantine(root: Path, limit: int) -> QuarantineList:
    """The ``limit`` most recently quarantined inputs of ``root`` (by their error file's
    modification time) and the total. Raises nothing: an unreadable folder lists nothing."""
    found: list[tuple[int, Path]] = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        names = set(files)
        for name in names:
            if (name.endswith(ERROR_SUFFIX) and not name.startswith(".")
                    and name[:-len(ERROR_SUFFIX)] in names):
                error_file = Path(dirpath) / name
                try:
                    found.append((error_file.stat().st_mtime_ns, error_file))
                except OSError:
                    continue
    found.sort(reverse=True)
    return QuarantineList(tuple(_item(root, path) for _, path in found[:limit]), len(found))


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
