"""An input is frozen before it is paid for: the claimed input must stay as it was claimed.

The stability gate (``intake.stability``) only sees a writer that writes. Scanners and SMB
copies pause longer than ``stability_s`` with the file still open, and tools rewrite a file in
place through a handle they kept: the claim (a rename) does not stop either, both go on writing
into the claimed file. So the job journals the input's fingerprint at the claim, ``(size,
mtime_ns, inode)``, and checks it before it uploads (with a look for writers, ``intake.writers``),
after the upload (before the paid process call), before it blames the input (quarantine) and
before it disposes of the input (archive or delete). A changed input starts over from the claim
once it is quiet again: it is never paid for, quarantined or archived half-written.

Where a changed input waits: in its job directory, not back in the inbox. The work area is on
the inbox's filesystem and the writer's handle follows the file there, so the rest of the write
lands in it; the job keeps its lock, its id and its journal (a crash resumes it, and the check
runs again); nothing else can take the name; and no rename back can collide with a new file of
the same name. Putting it back would need a name, a crash-safe hand-over between two owners, and
a fresh claim that a second daemon could win.

A local check that says "truncated" or "undecodable" about a file written within the last
``RECENT_WRITE_FACTOR * stability_s`` may be judging a half file whose writer (on another host,
invisible here) only paused: it gets one more settling period (``EXTRA_SETTLE_FACTOR *
stability_s``) before the verdict stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bgcut_watchd.errors import (
    InputError,
    InputUnsettledError,
    LocalInputError,
    QuarantineUnfinishedError,
)
from bgcut_watchd.fsops import show_path
from bgcut_watchd.intake.writers import claimed_open_for_writing
from bgcut_watchd.job.journal import Fingerprint, JobRecord, JobState, fingerprint_of
from bgcut_watchd.job.logfields import job_fields
from bgcut_watchd.job.publish import discard_temps
from bgcut_watchd.job.validate import EMPTY_FILE, INVALID_IMAGE
from bgcut_watchd.job.workarea import ClaimedJob

log = logging.getLogger("bgcut_watchd.job")

HALF_WRITTEN_REASONS = frozenset({INVALID_IMAGE, EMPTY_FILE})
"""Local-check verdicts that a half-written file also gets."""

RECENT_WRITE_FACTOR = 3.0
"""A write this many ``stability_s`` ago or less may be a paused writer's."""

EXTRA_SETTLE_FACTOR = 2.0
"""The one more settling period of a suspect verdict, in ``stability_s``."""

MIN_SETTLE_S = 0.1
"""The shortest wait between two looks at a settling input (``stability_s`` may be 0)."""

Writers = Callable[[Iterable[Path]], set[Path]]


@dataclass(frozen=True)
class InputFreeze:
    """The checks that keep one folder's claimed inputs as they were claimed. Thread-safe."""

    folder_name: str
    stability_s: float
    writers: Writers = claimed_open_for_writing  # the input is claimed: in the work area
    wall_ns: Callable[[], int] = time.time_ns
    network_wait_s: float | None = None  # a network folder: one more settling period, always

    @property
    def settle_s(self) -> float:
        """How long a settling input is left alone before the next look."""
        return max(self.stability_s, MIN_SETTLE_S)

    def ensure_unchanged(self, job: ClaimedJob, out_dir: Path, *,
                         look_for_writers: bool = False) -> None:
        """Go on only with the input as claimed: same size, mtime and inode, and, with
        ``look_for_writers``, open for writing by no process this host shows.

        A changed input starts over from the claim (journaled; its temporaries in ``out_dir``
        deleted). Raises InputUnsettledError (wait, then look again), OSError when the journal
        cannot be written; nothing when the input is gone (the next step says so).
        """
        current = fingerprint_of(job.input_path)
        claimed = job.record.input_fingerprint
        if current is None:
            return
        if claimed is None:  # claimed before fingerprints were journaled: from now on
            job.save(job.record.advance(job.record.state, input_fingerprint=current))
        elif current != claimed:
            self._start_over(job, out_dir, claimed, current)
            raise InputUnsettledError("the input changed since it was claimed", self.settle_s)
        if look_for_writers and self.writers([job.input_path]):
            log.info("job %s [%s] %s: the input is open for writing: waiting for its writer",
                     job.job_id, self.folder_name, show_path(job.record.original_relpath),
                     extra=self._fields(job))
            raise InputUnsettledError("the input is open for writing", self.settle_s)

    def before_blaming(self, job: ClaimedJob, out_dir: Path, exc: InputError) -> None:
        """Before the input is quarantined for ``exc``: raise InputUnsettledError instead when
        it changed since the claim, is open for writing, or failed the local check as a half
        file would, so soon after a write that its writer may only have paused (once per
        content). Raises OSError when the journal cannot be written.
        """
        if isinstance(exc, QuarantineUnfinishedError):
            return
        self.ensure_unchanged(job, out_dir, look_for_writers=True)
        current = fingerprint_of(job.input_path)
        if current is None:
            return
        if self.network_wait_s is not None and _looks_unfinished(exc, job.record):
            # A share's client caches can hide another machine's writes (and fake an old
            # mtime): whatever the clock says, the verdict waits for one more settling period.
            wait_s, why = self.network_wait_s, "on a network folder, whose caches may hide a writer"
        elif may_be_half_written(exc, job.record, current, self.stability_s, self.wall_ns()):
            wait_s = max(EXTRA_SETTLE_FACTOR * self.stability_s, MIN_SETTLE_S)
            why = "so soon after a write"
        else:
            return
        log.info("job %s [%s] %s: %s %s that it may be half-written: one more settling period "
                 "(%.1fs) first", job.job_id, self.folder_name,
                 show_path(job.record.original_relpath), exc.reason, why, wait_s,
                 extra=self._fields(job))
        job.save(job.record.advance(job.record.state, extra_settle_used=True))
        raise InputUnsettledError(f"{exc.reason}: the input may still be being written", wait_s)

    def _start_over(self, job: ClaimedJob, out_dir: Path, claimed: Fingerprint,
                    current: Fingerprint) -> None:
        published = job.record.state is JobState.PUBLISHED and job.record.final_outputs
        log.warning("job %s [%s] %s: the input changed since it was claimed (%s): it is "
                    "processed again once it has settled%s", job.job_id, self.folder_name,
                    show_path(job.record.original_relpath), describe_change(claimed, current),
                    "; the outputs of the earlier content stay published" if published else "",
                    extra=self._fields(job))
        discard_temps(out_dir, job.job_id)
        job.save(job.record.resettle(current))

    def _fields(self, job: ClaimedJob) -> dict[str, str]:
        return job_fields(job.job_id, self.folder_name, job.record.original_relpath)


def written_within(fingerprint: Fingerprint, window_s: float, now_ns: int) -> bool:
    """Whether the fingerprinted file was last written less than ``window_s`` before ``now_ns``
    (a wall-clock time). A modification time in the future (clock skew, ``touch -d``) says
    nothing: False."""
    age_ns = now_ns - fingerprint[1]
    return 0 <= age_ns < window_s * 1e9


def _looks_unfinished(exc: InputError, record: JobRecord) -> bool:
    """A truncated or empty verdict of the local check, not granted a second look already."""
    return (isinstance(exc, LocalInputError) and exc.reason in HALF_WRITTEN_REASONS
            and not record.extra_settle_used)


def may_be_half_written(exc: InputError, record: JobRecord, fingerprint: Fingerprint,
                        stability_s: float, now_ns: int) -> bool:
    """Whether the local check's verdict ``exc`` deserves one more settling period first:
    truncated or empty, written recently, and not granted one already for this content."""
    return (_looks_unfinished(exc, record)
            and written_within(fingerprint, RECENT_WRITE_FACTOR * stability_s, now_ns))


def describe_change(before: Fingerprint, after: Fingerprint) -> str:
    """What changed, for a log line: ``1200 -> 2400 bytes``, ``rewritten``, ``replaced``."""
    if before[2] != after[2]:
        return "replaced by another file"
    if before[0] != after[0]:
        return f"{before[0]} -> {after[0]} bytes"
    return "rewritten"
