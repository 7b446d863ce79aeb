"""Quarantine: a failed input and its ``.error.json`` side by side, and the way back (requeue).

Order of effects, so that an input is never lost and a visible ``<name>.error.json`` always has
its ``<name>`` beside it:

1. the record is written (fsynced) under a hidden pending name ``.<name>.error.json.pending``;
2. the input is moved in as ``<name>`` (or ``stem-N.ext``: the pair takes the first free name);
3. the pending file is renamed to ``<name>.error.json`` and the folder fsynced.

A crash after 2 leaves the input with a hidden pending record: :func:`complete_pending` (run at
startup, before any job) reveals it, or removes pending records whose input never arrived.

Across filesystems step 2 is a copy, then the unlink of the input. The job journals the chosen
``<name>`` before step 2 (``before_move``); when the unlink did not happen (a crash, a failure),
the job finds it with :func:`interrupted_quarantine` and finishes it (``resume_at``): the same
bytes there mean only the unlink is left, so the input is never quarantined twice (``x.jpg``
and ``x-1.jpg``).
Requeue undoes it in the reverse order: the error file goes first, then the input moves back.

Over 300 lines on purpose: quarantine, its crash completion and requeue are one protocol run
forwards and backwards; its ordering argument above holds only if all three read it here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from bgcut_watchd.fsops import (
    StrPath,
    atomic_write_bytes,
    discard_stale_temps,
    durable_rename,
    fsync_dir,
    local_disk,
    make_dirs,
    move_file,
    remove_file,
    rename_noreplace,
    same_content,
    show_path,
    temp_path_beside,
    write_new_file,
)
from bgcut_watchd.job.dispose import move_to_free_name
from bgcut_watchd.job.naming import (
    NamesForStem,
    choose_output_set,
    retry_name_races,
    split_name,
)

log = logging.getLogger(__name__)

ERROR_SUFFIX = ".error.json"
PENDING_SUFFIX = ".pending"
STAGES = ("validate", "upload", "process", "download", "publish")


@dataclass(frozen=True)
class QuarantineRecord:
    """The content of ``<name>.error.json`` (product.md); times are ISO 8601 UTC strings."""

    file: str
    folder: str
    stage: str
    reason: str
    http_status: int | None
    detail: str
    attempts: int
    sha256: str | None
    variants: tuple[str, ...]
    first_seen: str
    quarantined_at: str

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {self.stage!r}")

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, in product.md's field order."""
        data = dataclasses.asdict(self)
        data["variants"] = list(self.variants)
        return data

    def to_json(self) -> str:
        """The record as JSON text; odd bytes in names stay as ``\\udcxx`` escapes."""
        return json.dumps(self.to_dict(), ensure_ascii=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> QuarantineRecord:
        """Parse an error file. Raises ValueError (and its subclass JSONDecodeError), TypeError."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("an error file holds a JSON object")
        data["variants"] = tuple(data.get("variants", ()))
        return cls(**data)


def _pair_names(suffix: str) -> NamesForStem:
    def names(stem: str) -> list[str]:
        name = stem + suffix
        return [name, name + ERROR_SUFFIX, f".{name}{ERROR_SUFFIX}{PENDING_SUFFIX}"]
    return names


def _reveal(pending: Path, error_file: Path, data: bytes) -> None:
    try:
        durable_rename(pending, error_file, overwrite=True)
    except FileNotFoundError:
        # Someone's complete_pending removed it before our input arrived: write it again.
        atomic_write_bytes(error_file, data)


def _try_pair(input_path: StrPath, data: bytes, paths: list[Path]) -> Path | None:
    """One attempt at steps 1-3 with the chosen names: the quarantined input's path, or None
    when a name was taken meanwhile."""
    final, error_file, pending = paths
    try:
        write_new_file(pending, data)
    except FileExistsError:
        return None
    try:
        fsync_dir(final.parent)
        move_file(input_path, final, overwrite=False)
    except BaseException as exc:
        if not isinstance(exc, FileExistsError) and same_content(input_path, final):
            _reveal(pending, error_file, data)  # the copy is in place: keep the pair whole
            raise
        pending.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            return None
        raise
    _reveal(pending, error_file, data)
    return final


def _finish_at(input_path: StrPath, target: Path, data: bytes) -> bool:
    """Finish a quarantine interrupted after its copy reached ``target``; False when ``target``
    does not hold the input's bytes (nothing done)."""
    if not os.path.lexists(target) or not same_content(input_path, target):
        return False
    error_file = target.with_name(target.name + ERROR_SUFFIX)
    if not os.path.lexists(error_file):
        pending = target.with_name(f".{target.name}{ERROR_SUFFIX}{PENDING_SUFFIX}")
        if os.path.lexists(pending):
            durable_rename(pending, error_file, overwrite=True)
        else:
            atomic_write_bytes(error_file, data)
    remove_file(input_path)
    return True


def interrupted_quarantine(input_path: StrPath, target: StrPath) -> QuarantineRecord | None:
    """The error record of a quarantine interrupted after its copy reached ``target`` (the name
    journaled before the move), or None when ``target`` does not hold the input's bytes or has
    no readable error record (visible, or still pending). Changes nothing; raises nothing.
    """
    destination = Path(target)
    if not same_content(input_path, destination):
        return None
    error_file = destination.with_name(destination.name + ERROR_SUFFIX)
    pending = destination.with_name(f".{destination.name}{ERROR_SUFFIX}{PENDING_SUFFIX}")
    for candidate in (error_file, pending):
        try:
            return QuarantineRecord.from_json(candidate.read_text("ascii"))
        except (OSError, ValueError, TypeError):
            continue
    return None


def _nothing(_target: Path) -> None:
    return None


def quarantine(
    input_path: StrPath, quarantine_root: StrPath, subfolder: StrPath, original_name: str,
    error: QuarantineRecord, *, resume_at: StrPath | None = None,
    before_move: Callable[[Path], None] = _nothing,
) -> Path:
    """Move the input to ``<quarantine_root>/<subfolder>/<name>`` beside ``<name>.error.json``.

    ``<name>`` is ``original_name`` or, if it or its error file exists, ``stem-N.ext``. Works
    across filesystems. ``before_move(path)`` is called with the chosen path before the input
    moves (to journal it); ``resume_at``, such a journaled path, is finished instead when it
    already holds the input's bytes. Returns the quarantined input's path. Raises
    LocalDiskError (the input stays where it was), ValueError for an invalid name.
    """
    folder = Path(quarantine_root) / subfolder
    stem, suffix = split_name(original_name)
    data = error.to_json().encode("ascii")
    with local_disk("quarantining input", input_path):
        make_dirs(folder)
        if resume_at is not None:
            discard_stale_temps(resume_at)  # the half copy of an attempt killed mid-copy
            if _finish_at(input_path, Path(resume_at), data):
                return Path(resume_at)

        def choose() -> list[Path]:
            paths = choose_output_set(folder, _pair_names(suffix), stem, "rename")
            before_move(paths[0])
            return paths

        return retry_name_races(choose, partial(_try_pair, input_path, data),
                                f"quarantine name for {show_path(original_name)}")


def error_file_beside(folder: StrPath, original_name: str, error: QuarantineRecord) -> Path:
    """Write ``<name>.error.json`` (or ``<stem>-N...`` when taken) into ``folder``, where the
    outputs of a detached job (``process``'s copies) would have gone; its path.

    Raises LocalDiskError.
    """
    target_dir = Path(folder)
    stem, suffix = split_name(original_name)
    data = error.to_json().encode("ascii")
    with local_disk("writing an error file", target_dir):
        make_dirs(target_dir)
        path = retry_name_races(
            lambda: choose_output_set(target_dir, lambda s: [s + suffix + ERROR_SUFFIX], stem,
                                      "rename")[0],
            partial(_write_unless_taken, data),
            f"error file name for {show_path(original_name)}")
        fsync_dir(target_dir)
        return path


def _write_unless_taken(data: bytes, path: Path) -> Path | None:
    """Write ``data`` as new file ``path``; None, writing nothing, when ``path`` was taken."""
    temp = temp_path_beside(path)  # whole or invisible: written, then renamed in
    write_new_file(temp, data, exclusive=False)
    try:
        rename_noreplace(temp, path)
    except FileExistsError:
        temp.unlink(missing_ok=True)
        return None
    return path


def _pending_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(ERROR_SUFFIX + PENDING_SUFFIX):
                yield Path(dirpath) / name


def complete_pending(quarantine_root: StrPath) -> list[Path]:
    """Finish quarantines a crash interrupted; return the error files revealed.

    Run at startup, before any job. A pending record whose input arrived becomes its
    ``.error.json``; one whose input never arrived is removed (the job will quarantine again).
    Raises LocalDiskError.
    """
    revealed: list[Path] = []
    with local_disk("completing quarantine", quarantine_root):
        for pending in _pending_files(Path(quarantine_root)):
            error_name = pending.name[1:-len(PENDING_SUFFIX)]
            input_file = pending.with_name(error_name[:-len(ERROR_SUFFIX)])
            if os.path.lexists(input_file):
                durable_rename(pending, pending.with_name(error_name), overwrite=True)
                revealed.append(pending.with_name(error_name))
            else:
                pending.unlink(missing_ok=True)
                fsync_dir(pending.parent)
    return revealed


def _inputs_in(dirpath: Path, names: set[str]) -> Iterator[Path]:
    for name in sorted(names):
        if name.startswith("."):
            continue  # our pending records and temporaries
        if name.endswith(ERROR_SUFFIX) and name + ERROR_SUFFIX not in names:
            if name[:-len(ERROR_SUFFIX)] not in names:
                log.warning("requeue: skipping %s: error file without its input",
                            show_path(dirpath / name))
            continue
        yield dirpath / name


def _all_inputs(root: Path) -> Iterator[Path]:
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        # A quarantined symlink to a folder is an input, not a folder to enter.
        names = set(files) | {d for d in dirs if (here / d).is_symlink()}
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in names)
        yield from _inputs_in(here, names)


def _absolute(path: StrPath) -> Path:
    """Absolute and normalised, symlinks NOT followed (a quarantined input may be one)."""
    return Path(os.path.normpath(Path(path).absolute()))


def _input_for(root: Path, given: StrPath) -> Path | None:
    path = _absolute(given)
    path.relative_to(_absolute(root))  # ValueError when outside the quarantine
    own_error = path.with_name(path.name + ERROR_SUFFIX)
    if path.name.endswith(ERROR_SUFFIX) and not os.path.lexists(own_error):
        path = path.with_name(path.name[:-len(ERROR_SUFFIX)])
    if os.path.lexists(path):
        return path
    if os.path.lexists(path.with_name(path.name + ERROR_SUFFIX)):
        log.warning("requeue: skipping %s: error file without its input", show_path(path))
        return None
    raise FileNotFoundError(f"not in the quarantine: {show_path(given)}")


def _requeue_one(root: Path, inbox: Path, item: Path) -> Path:
    relative = item.relative_to(_absolute(root))
    folder = inbox / relative.parent
    error_file = item.with_name(item.name + ERROR_SUFFIX)
    with local_disk("requeueing input", item):
        make_dirs(folder)
        if os.path.lexists(error_file):  # first: a visible error file always has its input
            error_file.unlink()
            fsync_dir(item.parent)
        return move_to_free_name(item, folder, item.name)


def requeue(
    quarantine_root: StrPath, inbox: StrPath, targets: Iterable[StrPath] | Literal["all"],
) -> list[Path]:
    """Move quarantined inputs back to ``<inbox>/<subfolder>/<name>``, removing their error files.

    ``targets`` is ``"all"`` or paths of quarantined inputs (or of their error files). Orphan
    error files are skipped with a warning. Returns the new paths in the inbox. Every target is
    checked before anything moves: ValueError for a path outside the quarantine,
    FileNotFoundError for one that is not there. Raises LocalDiskError.
    """
    root = Path(quarantine_root)
    if targets == "all":
        items = list(_all_inputs(root))
    else:
        found = [_input_for(root, given) for given in targets]
        items = [item for item in found if item is not None]
    return [_requeue_one(root, Path(inbox), _absolute(item)) for item in items]
