"""Duplicate reuse: an input whose content and variant set were processed before gets copies of
the earlier outputs, and no API call, while the files at the recorded paths still hold the
recorded bytes.

Paths alone prove nothing: a shop's importer may move the first outputs away and another image
of the same name may then be published under the freed names. So the ledger keeps each
output's sha256, every earlier output is hashed while it is copied, and a set in which one file
differs is not reused (an older set may be; else the job pays).

Single flight: identical content (same input sha256, same variant set) in flight at once is paid
for once. A job :meth:`SingleFlight.begin`\\ s its key before it looks for a duplicate; while
another job holds the key it raises :class:`SameContentInFlight`, the engine hands its ticket
back to the scheduler (no attempt counted), and a later run finds the first job's outputs, or,
when that job failed, holds the key itself and pays. The registry is the engine's
(``engine.inflight``); this module only says what a job needs of it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bgcut_watchd.config.model import Variant
from bgcut_watchd.fsops import (
    copy_file_durably,
    local_disk,
    make_dirs,
    sha256_of_regular_file,
    show_path,
)
from bgcut_watchd.job.naming import temp_path_for
from bgcut_watchd.job.publish import discard_temps
from bgcut_watchd.ledger import Ledger, PublishedOutput

log = logging.getLogger("bgcut_watchd.job")


class SameContentInFlight(Exception):
    """Another job is paying for the same content and variants right now: hand the ticket back
    and try again shortly, counting no attempt."""


class SingleFlight(Protocol):
    """Which content is being paid for now, by which job (``engine.inflight.InFlight``)."""

    def begin(self, key: str, job_id: str) -> bool:
        """Hold ``key`` for ``job_id``; False when another job holds it."""
        ...

    def busy(self, key: str, job_id: str) -> bool:
        """Whether another job than ``job_id`` holds ``key``."""
        ...

    def end(self, job_id: str) -> None:
        """Let go of whatever ``job_id`` holds."""
        ...


def flight_key(sha256: str, variant_key: str) -> str:
    """The single-flight key of content ``sha256`` processed with variant set ``variant_key``."""
    return f"{sha256}:{variant_key}"


@dataclass(frozen=True)
class CopiedOutputs:
    """This job's temporaries holding copies of earlier outputs, in variant order, and the
    sha256 of each (checked against the ledger's record while copying)."""

    temps: tuple[str, ...]
    sha256s: tuple[str, ...]

log = logging.getLogger("bgcut_watchd.job")


def copy_earlier_outputs(ledger: Ledger, sha256: str, variant_key: str,
                         variants: Sequence[Variant], out_dir: Path,
                         job_id: str) -> CopiedOutputs | None:
    """Copy the outputs of the newest earlier job with the same content and variants whose
    files all still hold their recorded bytes to this job's temporaries in ``out_dir``; None
    when there is no such job. Raises LocalDiskError (writing the copies failed).
    """
    for earlier in ledger.earlier_outputs(sha256, variant_key):
        if len(earlier) != len(variants):
            continue
        # The ledger lists a job's outputs ordered by variant name.
        by_name = dict(zip(sorted(v.name for v in variants), earlier, strict=True))
        # Copies left by an interrupted attempt would make every later copy fail (EEXIST).
        discard_temps(out_dir, job_id)
        copied = _copy_intact(variants, by_name, out_dir, job_id)
        if copied is not None:
            return copied
        discard_temps(out_dir, job_id)
    return None


def intact_earlier_outputs(ledger: Ledger, sha256: str, variant_key: str,
                           variant_count: int) -> list[Path] | None:
    """The outputs :func:`copy_earlier_outputs` would copy now (each file hashed, nothing
    written), in the ledger's order; None when it would find none. Raises sqlite3.Error."""
    for earlier in ledger.earlier_outputs(sha256, variant_key):
        if len(earlier) == variant_count and all(
                sha256_of_regular_file(o.path) == o.sha256 for o in earlier):
            return [o.path for o in earlier]
    return None


def _copy_intact(variants: Sequence[Variant], by_name: dict[str, PublishedOutput],
                 out_dir: Path, job_id: str) -> CopiedOutputs | None:
    """Copy every earlier output; None as soon as one is gone or holds other bytes than
    recorded. Raises LocalDiskError."""
    temps: list[str] = []
    hashes: list[str] = []
    with local_disk("copying an earlier output", out_dir):
        make_dirs(out_dir)
        for index, variant in enumerate(variants):
            earlier = by_name[variant.name]
            temp = temp_path_for(out_dir, job_id, index)
            if _copy_one(earlier, temp, job_id) is None:
                return None
            temps.append(os.fsdecode(temp))
            hashes.append(earlier.sha256)
    return CopiedOutputs(tuple(temps), tuple(hashes))


def _copy_one(earlier: PublishedOutput, temp: Path, job_id: str) -> str | None:
    """Copy ``earlier`` to ``temp``; its sha256, or None when it is not what the ledger
    recorded (the caller discards ``temp``). Raises OSError about ``temp`` or the disk."""
    try:
        sha256 = copy_file_durably(earlier.path, temp)
    except OSError as exc:
        if exc.filename is None or os.fsdecode(exc.filename) != os.fsdecode(earlier.path):
            raise
        sha256 = None  # gone, a symlink, not a regular file, unreadable: nothing to reuse
    if sha256 != earlier.sha256:
        log.info("job %s: earlier output %s is gone or holds other bytes than recorded: "
                 "not reused", job_id, show_path(earlier.path))
        return None
    return sha256
