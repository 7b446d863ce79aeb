"""Scanning an inbox (product.md step 1: the startup scan and the periodic rescan).

A generator over ``os.scandir`` with an explicit stack: no recursion limit on deep trees, one
directory handle open at a time, and never a list of every path. Symlinked folders are never
followed (a link to ``/`` or to the inbox itself would loop or escape); ignored folders are
skipped before being opened, so the work area ``.bgcut-work`` costs nothing.

What is yielded: every regular file not ignored, and any other non-folder entry (symlink, FIFO,
socket, device) whose name looks like an image. The local check quarantines those later
(product.md step 5); here they are only named, never opened or followed.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath

from bgcut_watchd.intake.ignore import IgnoreRules

logger = logging.getLogger("bgcut_watchd.intake")

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".avif")


def looks_like_image(name: str) -> bool:
    """True when ``name`` ends with an image extension (any case)."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def is_candidate(name: str, mode: int) -> bool:
    """Whether an entry with this name and ``lstat`` mode is an input to take.

    Regular files always are; folders never; anything else only when named like an image.
    """
    if stat.S_ISREG(mode):
        return True
    if stat.S_ISDIR(mode):
        return False
    return looks_like_image(name)


def scan_folder(
    inbox: Path, recursive: bool, rules: IgnoreRules, start: Path | None = None
) -> Iterator[Path]:
    """Yield the candidate inputs under ``inbox`` (or only under ``start``, a folder inside it).

    Unreadable subfolders are logged and skipped. Raises OSError when the starting folder itself
    cannot be listed (missing inbox, permission denied), and ValueError when ``start`` is not
    inside ``inbox``.
    """
    root = inbox if start is None else start
    root_rel = PurePath(root.relative_to(inbox))
    if root_rel.parts and (not recursive or rules.is_ignored(root_rel) is not None):
        return
    stack: list[tuple[Path, PurePath]] = [(root, root_rel)]
    while stack:
        directory, directory_rel = stack.pop()
        try:
            entries = os.scandir(directory)
        except OSError as exc:
            if directory == root:
                raise
            logger.warning("cannot scan %s, skipped until the next rescan: %s", directory, exc)
            continue
        with entries:
            for entry in entries:
                relpath = directory_rel / entry.name
                if rules.is_ignored(relpath, parents_checked=True) is not None:
                    continue
                kind = _kind(entry)
                if kind == "dir":
                    if recursive:
                        stack.append((directory / entry.name, relpath))
                elif kind == "file" or (kind == "other" and looks_like_image(entry.name)):
                    yield directory / entry.name


def _kind(entry: os.DirEntry[str]) -> str:
    """``dir``, ``file``, ``other`` or ``gone``, from the entry's own type (links not followed)."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return "dir"
        if entry.is_file(follow_symlinks=False):
            return "file"
    except OSError:
        return "gone"
    return "other"
