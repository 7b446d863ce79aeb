"""Every name scheme of a job, in one place: output names (the ``output_name`` template), the
``-1, -2, ...`` rule shared by outputs, archive and quarantine, the one bounded retry when
another writer takes a chosen name first (:func:`retry_name_races`), NAME_MAX, the hidden temporary
names of downloads, the input's name in its job directory, the files normalisation writes there,
the page suffix of a multi-page input, and the remote paths of a job.

Pages: page N of a multi-page input ``scan.tif`` is a job of its own whose input is named
``scan-pN.<ext>`` (its quarantine name), and every page's outputs take ``-pN`` on ``{stem}``,
page 1 included (``scan-p1.full.png``, ``scan-p2.full.png``...), so ``output_name`` sees the
stem ``scan-p2``. The suffix survives a NAME_MAX cut and comes before a conflict's ``-1``.

Names are ``str`` as Python decodes them: undecodable bytes are lone surrogates and count as one
byte each. Every name produced here fits in :data:`MAX_NAME_BYTES` bytes; when a long stem would
overflow, the stem is cut on a character boundary (never inside a UTF-8 sequence) before the
``-N`` suffix, so the suffix and the extension always survive. Nothing here runs a shell, so a
leading ``-`` or a newline in a name is just a character.

Over 300 lines on purpose: every name scheme of a job lives here and nowhere else (the house
rule of issue 8), so a newcomer who looks for how a file is named finds all of them side by
side; each scheme is a few short functions.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bgcut_watchd.config.model import FolderConfig, Variant, expand_output_name
from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.fsops import StrPath
from bgcut_watchd.job.journal import JobRecord

MAX_NAME_BYTES = 255
"""NAME_MAX of the filesystems we write to (ext4, xfs, btrfs, tmpfs, NFS, SMB)."""

ON_CONFLICT_CHOICES = ("rename", "overwrite")
_MAX_CONFLICT_SUFFIX = 1_000_000
MAX_NAME_RACES = 100
"""How often a move or a publish chooses a free name again after another writer took it."""

INPUT_STEM = "input"
PART_SUFFIX = ".part"      # a whole, fsynced download, waiting to be published
DOWNLOADING_SUFFIX = ".dl"  # a download in progress
STAMPING_SUFFIX = ".meta"  # a download being rewritten with the studio's metadata (job.stamp)
# What a network client leaves for a file unlinked while still open, until its last close:
# FUSE's high-level library renames it ``.fuse_hidden<hex>``, the NFS client ``.nfs<hex>``.
UNLINK_PLACEHOLDER_PREFIXES = (".fuse_hidden", ".nfs")
_ASCII_EXT = re.compile(r"\.[A-Za-z0-9]{1,16}")

NamesForStem = Callable[[str], list[str]]
Chosen = TypeVar("Chosen")
Taken = TypeVar("Taken")


def name_bytes(name: str) -> int:
    """The length of ``name`` on disk, in bytes."""
    return len(os.fsencode(name))


def truncate_to_bytes(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose encoding fits in ``max_bytes`` (whole characters)."""
    total = 0
    for index, char in enumerate(text):
        total += len(os.fsencode(char))
        if total > max_bytes:
            return text[:index]
    return text


def split_name(name: str) -> tuple[str, str]:
    """``"photo.jpg"`` -> ``("photo", ".jpg")``; no suffix for ``".hidden"``, ``"a."``, ``"a"``."""
    leading_dots = len(name) - len(name.lstrip("."))
    dot = name.rfind(".")
    if dot < leading_dots or dot == len(name) - 1:
        return name, ""
    return name[:dot], name[dot:]


def _check_name(name: str) -> str:
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"not a valid file name: {name!r}")
    return name


def output_names(
    template: str, stem: str, variants: Sequence[Variant], folder_name: str,
) -> list[str]:
    """The output file names of one input, in variant order.

    Raises ValueError when the template gives an invalid name (empty, ``/``) or the same name
    for two variants, KeyError for an unknown placeholder.
    """
    names = [_check_name(expand_output_name(template, stem, v, folder_name)) for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"output_name {template!r} gives the same name to two variants")
    return names


def _fit(names_for_stem: NamesForStem, stem: str, suffix: str) -> list[str]:
    """The names for ``stem + suffix``, the stem shortened until every name fits NAME_MAX."""
    budget = name_bytes(stem)
    while True:
        cut = truncate_to_bytes(stem, budget)
        names = names_for_stem(cut + suffix)
        overflow = max(name_bytes(n) for n in names) - MAX_NAME_BYTES
        if overflow <= 0:
            return names
        if not cut:
            raise ValueError(f"names too long even with an empty stem: {names[0]!r}")
        budget = max(0, name_bytes(cut) - overflow)


def choose_output_set(
    out_dir: StrPath, names_for_stem: NamesForStem, stem: str, on_conflict: str,
    tail: str = "",
) -> list[Path]:
    """Paths in ``out_dir`` for the whole set of names; ``-1``, ``-2``, ... on the stem if needed.

    With ``on_conflict="rename"``, if ANY name of the set exists the whole set moves on to the next
    suffix, so the names of one set always share one stem. ``"overwrite"`` keeps the names.
    ``tail`` (a page suffix) follows the stem and is never cut. Raises ValueError for an
    unknown ``on_conflict`` or a set whose names ignore the stem.
    """
    if on_conflict not in ON_CONFLICT_CHOICES:
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT_CHOICES}, not {on_conflict!r}")
    folder = Path(out_dir)
    first = _fit(names_for_stem, stem, tail)
    if on_conflict == "overwrite":
        return [folder / n for n in first]
    if _fit(names_for_stem, stem, tail + "-1") == first:
        raise ValueError("the names do not depend on the stem: cannot rename on conflict")
    for number in itertools.count():
        names = first if number == 0 else _fit(names_for_stem, stem, f"{tail}-{number}")
        paths = [folder / n for n in names]
        if not any(os.path.lexists(p) for p in paths):
            return paths
        if number >= _MAX_CONFLICT_SUFFIX:
            break
    raise FileExistsError(f"no free name for {stem!r} in {str(folder)!r}")


def free_name(directory: StrPath, name: str) -> Path:
    """``directory/name``, or ``stem-1.ext``, ``stem-2.ext``, ... : the first that is free.

    Raises ValueError for an invalid name.
    """
    stem, suffix = split_name(_check_name(name))
    return choose_output_set(directory, lambda s: [s + suffix], stem, "rename")[0]


def retry_name_races(choose: Callable[[], Chosen], take: Callable[[Chosen], Taken | None],
                     what: str) -> Taken:
    """``take(choose())`` until ``take`` answers something other than None (None: another
    writer took the chosen name first), at most :data:`MAX_NAME_RACES` times; its answer.

    ``choose`` picks (and may journal) a free name, ``take`` claims it without overwriting.
    Raises LocalDiskError ("no free <what> after N tries") when every try lost its race, and
    whatever ``choose`` and ``take`` raise.
    """
    for _ in range(MAX_NAME_RACES):
        taken = take(choose())
        if taken is not None:
            return taken
    raise LocalDiskError(f"no free {what} after {MAX_NAME_RACES} tries: another writer keeps "
                         "taking them")


def relative_subfolder(inbox: StrPath, original_relpath: StrPath) -> Path:
    """The subfolder of an input below its inbox (``Path(".")`` at the top).

    ``original_relpath`` is relative to ``inbox`` (or absolute inside it). Raises ValueError when
    it lies outside the inbox or climbs with ``..``.
    """
    relative = Path(original_relpath)
    if relative.is_absolute():
        relative = relative.relative_to(inbox)
    if ".." in relative.parts:
        raise ValueError(f"path climbs out of the inbox: {str(original_relpath)!r}")
    return relative.parent


def job_output_dir(folder: FolderConfig, record: JobRecord) -> Path:
    """Where a job's outputs go: its own output folder (``process``'s) or the folder's outbox,
    then the input's subfolder below its inbox. Raises ValueError (``relative_subfolder``)."""
    root = Path(record.output_dir) if record.output_dir else folder.outbox
    return root / relative_subfolder(folder.inbox, record.original_relpath)


def free_output_set(folder: FolderConfig, record: JobRecord,
                    variants: Sequence[Variant]) -> list[Path]:
    """The final paths of a job's outputs, one per variant: the ``output_name`` template on
    the input's stem (a page's suffix included), ``-1, -2, ...`` when any is taken
    (:func:`choose_output_set`). Raises ValueError, KeyError (``output_names``)."""
    stem, tail = output_stem(record.original_relpath, page=record.page,
                             page_of=record.page_of, pages=record.pages)
    return choose_output_set(
        job_output_dir(folder, record),
        lambda s: output_names(folder.output_name, s, variants, folder.name),
        stem, folder.on_conflict, tail)


def input_name_for(original: str) -> str:
    """The input's name in its job directory: ``input`` plus the lowercased extension of
    ``original`` when it is short plain ASCII."""
    suffix = Path(original).suffix
    return INPUT_STEM + (suffix.lower() if _ASCII_EXT.fullmatch(suffix) else "")


def page_tail(page: int) -> str:
    """What page ``page`` of a multi-page input adds to its stem: ``-p2``."""
    return f"-p{page}"


def output_stem(original_relpath: str, *, page: int = 0, page_of: str | None = None,
                pages: int = 1) -> tuple[str, str]:
    """(stem, tail) of a job's outputs: a page job's come from the multi-page input's name and
    its page; page 1 of a multi-page input takes ``-p1``; any other input its own stem."""
    if page_of is not None and page > 0:
        return split_name(Path(page_of).name)[0], page_tail(page)
    stem = split_name(Path(original_relpath).name)[0]
    return stem, page_tail(1) if pages > 1 else ""


def page_relpath(original_relpath: str, page: int, ext: str) -> str:
    """The relpath of page ``page`` of a multi-page input: ``sub/scan-p2.png`` (within
    NAME_MAX, the suffix kept): its name in logs, in the ledger and in the quarantine."""
    relative = Path(original_relpath)
    stem = split_name(relative.name)[0]
    name = _fit(lambda s: [f"{s}.{ext}"], stem, page_tail(page))[0]
    return os.fsdecode(relative.parent / name)


PAGE_PREFIX = "page-"
UPLOAD_STEM = "upload"


def page_file_stem(page: int) -> str:
    """The stem of page ``page`` of a multi-page input, written into its job dir (its
    extension after it: ``page-2.png``) before its own job takes it."""
    return f"{PAGE_PREFIX}{page}"


def upload_file_name(ext: str) -> str:
    """The converted file a job uploads instead of its input (``upload.png``)."""
    return f"{UPLOAD_STEM}.{ext}"


def upload_name_for(original_relpath: str, ext: str) -> str:
    """The file name sent with a converted upload: the input's stem, the new extension."""
    return split_name(Path(original_relpath).name)[0] + f".{ext}"


def _temp_prefix(job_id: str) -> str:
    return f".bgcut-{job_id}-"


def temp_path_for(out_dir: StrPath, job_id: str, index: int) -> Path:
    """Where output ``index`` of job ``job_id`` waits, whole, to be published: hidden, beside
    its destination, so publishing is one rename."""
    return Path(out_dir) / f"{_temp_prefix(job_id)}{index}{PART_SUFFIX}"


def download_path_for(out_dir: StrPath, job_id: str, index: int) -> Path:
    """Where output ``index`` is written while it downloads; renamed to :func:`temp_path_for`
    once complete and fsynced, so an existing ``.part`` is always a whole download."""
    return Path(out_dir) / f"{_temp_prefix(job_id)}{index}{DOWNLOADING_SUFFIX}"


def stamping_path_for(path: StrPath) -> Path:
    """Where a file is rewritten with the studio's metadata before it replaces ``path``."""
    return Path(path).with_name(Path(path).name + STAMPING_SUFFIX)


def is_job_temp(name: str, job_id: str) -> bool:
    """True when ``name`` is one of job ``job_id``'s ``.part``, ``.dl`` or ``.dl.meta``
    temporaries."""
    prefix = _temp_prefix(job_id)
    suffixes = (PART_SUFFIX, DOWNLOADING_SUFFIX, DOWNLOADING_SUFFIX + STAMPING_SUFFIX)
    suffix = next((s for s in suffixes if name.endswith(s)), None)
    if suffix is None or not name.startswith(prefix):
        return False
    index = name[len(prefix):-len(suffix)]
    return index.isascii() and index.isdigit()


def remote_upload_path(upload_prefix: str, job_id: str, remote_round: int = 0) -> str:
    """The job's own remote folder (api-v3.md: a unique ``upload_path`` per job); a job that
    started over from its claim (its input changed) uses a new one per round, ``.../r<n>``,
    so nothing made from the old content is ever taken for the new content's."""
    base = f"{upload_prefix}/{job_id}"
    return base if remote_round == 0 else f"{base}/r{remote_round}"


def remote_output_paths(upload_prefix: str, job_id: str, variants: Sequence[Variant],
                        remote_round: int = 0) -> list[str]:
    """The remote ``output_file_path`` of each variant, in variant order."""
    prefix = f"{remote_upload_path(upload_prefix, job_id, remote_round)}/out"
    return [f"{prefix}/{i}-{v.name}.{v.ext}" for i, v in enumerate(variants)]


SCALED_UPLOAD_STEM = "upload-scaled"  # in the job dir; never "input*" (that is the input)


def scaled_upload_name(ext: str) -> str:
    """The job-dir name of an input scaled down before its upload (``job.downscale``)."""
    return f"{SCALED_UPLOAD_STEM}.{ext}"


REMOTE_MASTER_NAME = "master.png"  # never a variant's: theirs start with "<index>-"


def remote_master_path(upload_prefix: str, job_id: str, remote_round: int = 0) -> str:
    """The remote ``output_file_path`` of a local-render job's one cutout (``job.render``)."""
    return f"{remote_upload_path(upload_prefix, job_id, remote_round)}/out/{REMOTE_MASTER_NAME}"


def is_remote_master(remote_path: str) -> bool:
    """Whether ``remote_path`` is a local-render cutout (its variants are rendered here)."""
    return remote_path.rpartition("/")[2] == REMOTE_MASTER_NAME


def is_unlink_placeholder(name: str) -> bool:
    """True for a network client's placeholder of a file unlinked while open."""
    return name.startswith(UNLINK_PLACEHOLDER_PREFIXES)
