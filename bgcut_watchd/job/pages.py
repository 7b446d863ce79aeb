"""Multi-page inputs (a scanner's multi-page TIFF): every page becomes a job of its own.

The job that claimed ``scan.tif`` (3 pages) keeps page 1; pages 2 and 3 become jobs whose
inputs are ``scan-p2.png`` and ``scan-p3.png`` (converted like any upload: upright, sRGB, 8-bit,
scaled down to the largest variant before their one encoding, the studio's metadata stamped
in). Their outputs are ``scan-p2.<variant>.<ext>`` and so on;
page 1's are ``scan-p1...``. A page job deletes its page file when it is done (the original
TIFF is archived once, by the first job) and quarantines it, as ``scan-p2.png`` with its error
file, when it fails (``requeue`` brings it back as an ordinary PNG with the same name).

Crash safety (kill -9 at any point: no page lost, none processed twice) rests on one rule: a
page file is in exactly one place at every moment, and the journal says where to look.

1. :func:`write_pages`: pages 2..N are decoded one at a time (in the decode budget) and written
   into the first job's own dir as ``page-<N>.<ext>`` (temporary, fsync, rename). A crash here
   leaves some page files that nothing refers to: the resumed job writes them all again (same
   input, same bytes). A page that does not decode quarantines the whole input now, before
   any page has left.
2. The first job journals ``pages = N``. From then on the page files are committed.
3. :func:`hand_over_pages`: each page file still in the first job's dir is moved into a new job
   dir by ``WorkArea.hand_over``, the inbox claim's protocol with that dir standing in for the
   inbox (journal ``claiming`` naming the page, rename the file in, journal ``claimed``). A
   file already moved is simply not there any more; a new job dir that a crash left in
   ``claiming`` with its input is resumed by recovery like any claim. The new job is handed to
   the engine at once (``spawn``), or left for the next start's recovery without one.

``hand_over_pages`` runs first in every upload step of the first job, before its own local check
can fail: page files left by a crash are handed over even if that job is then quarantined.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from bgcut_watchd.errors import LocalDiskError, LocalInputError
from bgcut_watchd.fsops import fsync_dir, local_disk
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.metadata import StudioMetadata, read_metadata
from bgcut_watchd.job.naming import page_file_stem, page_relpath
from bgcut_watchd.job.normalize import Limits, Say, converted_page, write_within
from bgcut_watchd.job.validate import ValidatedInput
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea

log = logging.getLogger("bgcut_watchd.job")

Spawn = Callable[[ClaimedJob], None]
_HAND_OVER_TRIES = 3


def write_pages(job: ClaimedJob, checked: ValidatedInput, limits: Limits,
                keep_metadata: bool, say: Say, fit_pixels: int | None = None) -> None:
    """Write pages 2..N of a multi-page input into its job dir, then journal ``pages = N``;
    each scaled down to ``fit_pixels`` (when given) before its one encoding, so its job sends
    it as it is. Nothing to do for one page, or once journaled.

    Raises LocalInputError (a page does not decode or does not fit the limits: nothing has
    left the job yet), LocalDiskError.
    """
    if checked.pages <= 1 or job.record.pages > 1:
        return
    meta = read_metadata(job.input_path) if keep_metadata else StudioMetadata()
    for page in range(2, checked.pages + 1):
        try:
            with converted_page(job.input_path, checked.format, fit_pixels, limits,
                                page) as image:
                write_within(image, job.job_dir, page_file_stem(page), limits.max_bytes, meta)
        except LocalInputError as exc:
            raise LocalInputError(f"page {page} of {checked.pages}: {exc.detail}",
                                  reason=exc.reason) from exc
    with local_disk("writing the pages of a multi-page input", job.job_dir):
        fsync_dir(job.job_dir)
        job.save(job.record.advance(JobState.CLAIMED, pages=checked.pages))
    say(f"{checked.pages} pages: page 1 stays with this job, pages 2-{checked.pages} become "
        "jobs of their own")


def hand_over_pages(job: ClaimedJob, workarea: WorkArea, spawn: Spawn | None) -> int:
    """Give every committed page file still in ``job``'s dir to a new job; how many moved.

    Raises LocalDiskError when a page cannot be moved (it stays, for the next try).
    """
    moved = 0
    for page in range(2, job.record.pages + 1):
        source = _page_file(job.job_dir, page)
        if source is None:  # handed over before
            continue
        new_job = _hand_over(job, workarea, source, page)
        if new_job is None:
            continue
        moved += 1
        if spawn is not None:
            spawn(new_job)
        else:  # nobody to run it now: the next start's recovery resumes it
            new_job.release()
    return moved


def _hand_over(job: ClaimedJob, workarea: WorkArea, source: Path,
               page: int) -> ClaimedJob | None:
    relpath = page_relpath(job.record.original_relpath, page, source.suffix[1:])
    for _ in range(_HAND_OVER_TRIES):
        with local_disk("handing a page over to its own job", source):
            new_job = workarea.hand_over(job.record.folder, source, relpath, page=page,
                                         page_of=job.record.original_relpath,
                                         variants=job.record.variants,  # the parent's set
                                         detached=job.record.detached,
                                         output_dir=job.record.output_dir)
        if new_job is not None or not source.exists():
            return new_job
    raise LocalDiskError(f"page {page} could not be handed over after {_HAND_OVER_TRIES} "
                         "tries (another daemon's recovery kept taking the new job dir)")


def _page_file(job_dir: Path, page: int) -> Path | None:
    prefix = page_file_stem(page) + "."
    with local_disk("looking for the pages of a multi-page input", job_dir):
        return next((p for p in job_dir.iterdir() if p.name.startswith(prefix)), None)
