"""One job from its journaled state to its end: validate → upload → process → download →
verify → publish → dispose, or quarantine.

Each step journals its result before the next starts, so a job interrupted anywhere (kill -9,
a retry, a pause) resumes from the last durable state: an upload is never repeated once its
remote path is journaled, a process call never once its outputs are, and a restart after the
downloads publishes the files already on disk without any API call.

The job's identity holds under faults (issue 9): it keeps the variant set journaled at its
claim, whatever a reload changes since; its input is frozen before it is paid for
(``job.settle``: checked against the fingerprint journaled at the claim before the upload, after
it, before a quarantine and before disposal, and waited for while it changes); an unanswered
process call is never re-sent blindly (its outputs are looked for, with backoff, for
``api.process_timeout_s`` first); and a move to the archive or the quarantine is journaled
before it starts, so one interrupted after its copy is finished, never repeated.

Every download is verified (``verify``) before its ``.dl`` becomes a ``.part``, so a ``.part``
is always whole and verified. A bad output (an HTML page answered 200, a cut body) is deleted and
fetched again; a second bad copy in a row redoes the process call, once per job; after that it
is only fetched again, until the failure policy's ``max_attempts`` quarantines the job as
``bad_output``. The journal's ``last_stage`` carries this across retries and restarts.

Failures leave this module as exceptions of the tree in ``errors.py``; the failure policy
(``engine.failures``) decides from their class and calls :meth:`JobRunner.quarantine` when needed.

Over 300 lines on purpose: the steps read in order as one story, each with the journal write
that ends it (the bounded redo of a bad output included); what could stand apart does: every
name (``naming``: outputs, temporaries, remote paths, the retry of a lost name race), disposal
and the archive (``dispose``), duplicate reuse and single flight (``duplicates``), the checks of
an output (``verify``), the input checks (``settle``), the look-out of an unanswered call
(``lookout``), quarantine (``quarantining``), the scaled-down upload (``downscale``), what a
process call asks for and the local rendering of ``render = "local"`` (``render``), and its
estimated credits (``cost``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

from bgcut_watchd.api import AmbiguousOutcomeError, BackgroundCutClient
from bgcut_watchd.clock import WallClock, iso_utc, utc_now
from bgcut_watchd.config.model import (
    ApiConfig,
    DaemonConfig,
    FolderConfig,
    Variant,
    variant_key,
)
from bgcut_watchd.errors import (
    ApiError,
    BadOutputError,
    InputError,
    RemoteFileMissingError,
)
from bgcut_watchd.fsops import (
    fsync_file,
    local_disk,
    make_dirs,
    sha256_of_regular_file,
    show_path,
)
from bgcut_watchd.job.cost import pixels_of
from bgcut_watchd.job.dispose import archive_target_of, dispose_input
from bgcut_watchd.job.downscale import fit_pixels, upload_source
from bgcut_watchd.job.duplicates import (
    SameContentInFlight,
    SingleFlight,
    copy_earlier_outputs,
    flight_key,
)
from bgcut_watchd.job.fetch import decisive, fetch_all
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.logfields import job_fields
from bgcut_watchd.job.lookout import PROCESS_AMBIGUOUS, earlier_call_ran, mark_ambiguous
from bgcut_watchd.job.metadata import StudioMetadata, read_metadata
from bgcut_watchd.job.naming import (
    download_path_for,
    free_output_set,
    is_remote_master,
    job_output_dir,
    remote_upload_path,
    retry_name_races,
    temp_path_for,
)
from bgcut_watchd.job.normalize import Limits, upload_for
from bgcut_watchd.job.pages import Spawn, hand_over_pages, write_pages
from bgcut_watchd.job.publish import discard_temps, publish_set
from bgcut_watchd.job.quarantining import STAGE_OF as STAGE_OF
from bgcut_watchd.job.quarantining import JobQuarantine
from bgcut_watchd.job.render import BadRenderError, drop_master, render_set, requested_outputs
from bgcut_watchd.job.settle import InputFreeze
from bgcut_watchd.job.stamp import stamp_file
from bgcut_watchd.job.unsettled import second_look_s
from bgcut_watchd.job.validate import PixelBudget, ValidatedInput, validate_input
from bgcut_watchd.job.verify import upright_size, verify_output
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea
from bgcut_watchd.ledger import Ledger

log = logging.getLogger("bgcut_watchd.job")

T = TypeVar("T")

DOWNLOAD_MISSING = "download-missing"    # last_stage: a download answered 404 once
REUSED = "duplicate"                      # last_stage: outputs copied from an earlier job
BAD_OUTPUT = "bad-output"                # last_stage: a download failed verification once
REDO_PROCESS = "redo-process"            # last_stage: twice in a row: call process once more
PROCESS_REDONE = "process-redone"        # last_stage: process was redone: only fetch again now
_API_STATES = frozenset({JobState.CLAIMED, JobState.UPLOADED, JobState.PROCESSED})



class ApiCaller(Protocol):
    """Runs one API call under the API pause and the shared rate limiter (``control.guard``)."""

    def call(self, endpoint: str, fn: Callable[[], T]) -> T: ...


class Slots(Protocol):
    """The API slots (``control.slots``): ``take`` waits for one (raises when stopping)."""

    def take(self) -> None: ...
    def give(self) -> None: ...


class SpendMeter(Protocol):
    """Holds a process call's estimated credits against the daily budget (``engine.budget``);
    raises BudgetExceededError instead of letting a call cross it."""

    def paying(self, folder: str, input_pixels: int,
               variants: Sequence[Variant]) -> AbstractContextManager[float]: ...


@dataclass(frozen=True)
class JobRunner:
    """Carries one folder's jobs through the pipeline; safe to share between worker threads."""

    folder: FolderConfig
    api: ApiConfig
    limits: DaemonConfig
    client: BackgroundCutClient
    ledger: Ledger
    guard: ApiCaller
    monotonic: Callable[[], float] = time.monotonic
    decode_budget: PixelBudget | None = None  # shared by every folder's runner
    in_flight: SingleFlight | None = None  # shared likewise; None: no single flight
    spawn: Spawn | None = None  # runs a page job of a multi-page input (the engine's queue)
    wall_clock: WallClock = utc_now  # journaled times (the look-out of an unanswered call)
    spend: SpendMeter | None = None  # the daily budget; None: nothing counted
    downloads: Executor | None = None  # helps with a job's downloads; None: one at a time
    # ``workers`` of them (``control.slots``): a job holds one from its upload to its last
    # download, so the local work of other jobs runs beside the API calls, on the engine's
    # extra threads. None: no bound here (the pool's size is the bound).
    api_slots: Slots | None = None

    @cached_property
    def freeze(self) -> InputFreeze:
        """The checks that keep this folder's claimed inputs as claimed (``job.settle``)."""
        return InputFreeze(self.folder.name, self.limits.stability_s,
                           network_wait_s=second_look_s(self.folder, self.limits.stability_s))

    @cached_property
    def quarantiner(self) -> JobQuarantine:
        """Quarantines this folder's jobs (``job.quarantining``)."""
        return JobQuarantine(self.folder, self.ledger)

    @cached_property
    def variant_key(self) -> str:
        """The folder's variant set as the ledger keys it (hashed once, read per job)."""
        return variant_key(self.folder.variants)

    def variants_of(self, job: ClaimedJob) -> tuple[Variant, ...]:
        """The variant set ``job`` was claimed with (the folder's, for a job journaled before
        variant sets were): every step uses it, so a reload applies to new jobs only."""
        return job.record.variants or self.folder.variants

    def variant_key_of(self, job: ClaimedJob) -> str:
        """The ledger's key of the variant set ``job`` was claimed with."""
        if not job.record.variants:
            return self.variant_key
        return variant_key(job.record.variants)

    def run(self, job: ClaimedJob) -> list[Path]:
        """Advance ``job`` to disposal; return its published outputs.

        Raises InputError (quarantine it), TransientError/PauseError (retry later, the job
        stays resumable), LocalDiskError (pause the folder), NotReadyError (the input is
        settling, or an unanswered call may still run: run it again later),
        SameContentInFlight (another job is paying for the same content: run it again soon).
        """
        try:
            return self._carry(job)
        finally:  # whatever the outcome: a job waiting for the same content may go on now
            if self.in_flight is not None:
                self.in_flight.end(job.job_id)

    def _carry(self, job: ClaimedJob) -> list[Path]:
        started = self.monotonic()
        steps: dict[JobState, Callable[[ClaimedJob], None]] = {
            JobState.CLAIMED: self._upload, JobState.UPLOADED: self._process,
            JobState.PROCESSED: self._download, JobState.DOWNLOADED: self._publish,
            JobState.PUBLISHED: self._dispose,
        }
        if job.record.quarantine_target is not None:
            self.quarantiner.check_interrupted(job)
        try:
            while job.record.state in steps:
                try:
                    steps[job.record.state](job)
                except InputError as exc:
                    self.freeze.before_blaming(job, self._out_dir(job), exc)
                    raise
                if job.record.state not in _API_STATES:
                    self._leave_api(job)
        finally:
            self._leave_api(job)
        outputs = [Path(p) for p in job.record.final_outputs]
        self.ledger.finish_done(job.job_id, self._by_variant_name(job, outputs),
                                self.monotonic() - started, sha256s=self._output_sha256s(job))
        job.timeline.mark("ledger")
        log.info("job %s [%s] %s: done, %d output(s) in %s", job.job_id, self.folder.name,
                 show_path(job.record.original_relpath), len(outputs),
                 show_path(self._out_dir(job)), extra=self.log_fields(job, stage="dispose"))
        job.finish()
        job.timeline.mark("finish")
        job.timeline.log_done(job.job_id)
        return outputs

    def _enter_api(self, job: ClaimedJob) -> None:
        """Take an API slot for ``job`` unless it holds one (waits for a free one)."""
        if self.api_slots is not None and not job.holds_api_slot:
            self.api_slots.take()  # GateClosed when the daemon stops meanwhile
            job.holds_api_slot = True
            job.timeline.mark("slot")

    def _leave_api(self, job: ClaimedJob) -> None:
        if job.holds_api_slot:
            job.holds_api_slot = False
            if self.api_slots is not None:
                self.api_slots.give()

    # -- steps ----------------------------------------------------------------------------

    def _upload(self, job: ClaimedJob) -> None:
        self.freeze.ensure_unchanged(job, self._out_dir(job), look_for_writers=True)
        self._wait_while_in_flight(job, job.record.sha256)  # before decoding the input again
        hand_over_pages(job, WorkArea(self.folder.inbox), self.spawn)  # before anything fails
        checked = validate_input(job.input_path, max_bytes=self.limits.max_input_bytes,
                                 max_pixels=self.limits.max_input_pixels,
                                 budget=self.decode_budget)
        job.keep(job.record.advance(JobState.CLAIMED, sha256=checked.sha256))
        self.ledger.update(job.job_id, sha256=checked.sha256, stage="upload")
        fit = fit_pixels(checked, self.variants_of(job),
                         enabled=self.folder.downscale_before_upload)
        self._split_pages(job, checked, fit)
        if self._reuse_duplicate(job, checked.sha256):
            return
        source, name = upload_for(job, checked, self._decode_limits, partial(self._say, job),
                                  fit)  # a converted input is scaled before its one encoding
        upload_path = remote_upload_path(self.api.upload_prefix, job.job_id,
                                         job.record.remote_round)
        if source == job.input_path:  # scaled down when larger than needed
            source = self._upload_source(job, source, checked)
        job.timeline.mark("check")
        self._enter_api(job)
        remote = self.guard.call("upload", lambda: self.client.upload(
            source, upload_path, name))
        job.timeline.mark("upload")
        # What was checked and uploaded is what was claimed: only then is it paid for.
        self.freeze.ensure_unchanged(job, self._out_dir(job))
        # Journaled with the process call's "sent" mark, just before that call: a crash
        # before it uploads again, which is free.
        job.keep(job.record.advance(JobState.UPLOADED, remote_input=remote))

    def _upload_source(self, job: ClaimedJob, source: Path, checked: ValidatedInput) -> Path:
        """``source`` (the input, sent as it is; ``checked`` describes it), or its copy
        scaled down to what the variants need (``job.downscale``). Raises LocalDiskError."""
        scaled = upload_source(job.job_dir, source, checked, self.variants_of(job),
                               enabled=self.folder.downscale_before_upload,
                               budget=self.decode_budget)
        if scaled.saved_pixels:
            log.info("job %s [%s] %s: scaled down before the upload: %d pixels and %d bytes "
                     "fewer to send", job.job_id, self.folder.name,
                     show_path(job.record.original_relpath), scaled.saved_pixels,
                     scaled.saved_bytes, extra=self.log_fields(job, stage="upload"))
        return scaled.path

    def _process(self, job: ClaimedJob) -> None:
        self._enter_api(job)
        variants, wanted = requested_outputs(self.folder.render, self.api.upload_prefix,
                                             job.job_id, self.variants_of(job),
                                             job.record.remote_round)
        if job.record.last_stage == PROCESS_AMBIGUOUS and earlier_call_ran(
                job, wanted, partial(self._outputs_exist, wanted), self.api.process_timeout_s,
                self.wall_clock, self.folder.name):
            return
        outputs = self._call_process(job, variants, wanted, redo=False)
        job.timeline.mark("process")
        processed = job.record.advance(JobState.PROCESSED, remote_outputs=tuple(outputs),
                                       last_stage="process")
        if outputs == wanted:
            # Kept, journaled with the job's next write (the chosen names, after the downloads
            # and checks; or a failed download's): a crash before it restarts from the "sent"
            # mark, whose look-out finds these outputs where they were asked for and pays
            # nothing again. Off the critical path: the downloads start at once.
            job.keep(processed)
        else:  # stored elsewhere than asked: a look-out would not find them
            job.save(processed)
            job.timeline.mark("journal")

    def _redo_process(self, job: ClaimedJob) -> None:
        """An output came back bad twice in a row: it may be broken on the service's side, so
        render it again, once per job. A redo that may have run is not sent a third time."""
        variants, wanted = requested_outputs(self.folder.render, self.api.upload_prefix,
                                             job.job_id, self.variants_of(job),
                                             job.record.remote_round)
        outputs = self._call_process(job, variants, wanted, redo=True)
        job.save(job.record.advance(JobState.PROCESSED, remote_outputs=tuple(outputs),
                                    last_stage=PROCESS_REDONE))

    def _call_process(self, job: ClaimedJob, variants: tuple[Variant, ...], wanted: list[str],
                      *, redo: bool) -> list[str]:
        """The paid call. When it may have run without an answer: a first call is looked for
        before it is sent again (``lookout``), a redo is not sent again. A 404 restarts the
        remote work. Raises ApiError subclasses, OSError."""
        remote_input = job.record.remote_input
        assert remote_input is not None  # journaled with state "uploaded", kept after
        try:
            return self.guard.call("process", lambda: self._send_process(
                job, remote_input, variants, wanted))
        except AmbiguousOutcomeError:
            if redo:
                job.save(job.record.advance(job.record.state, last_stage=PROCESS_REDONE))
            else:  # the call may have run (and been paid for): look before sending it again
                mark_ambiguous(job, self._now())
            raise
        except RemoteFileMissingError:  # the upload expired or lives in another region
            self._restart_remote(job)
            raise
        except ApiError:  # answered: the call did not run, a restart need not look for it
            if job.record.process_sent_at is not None:
                job.save(job.record.advance(job.record.state, process_sent_at=None))
            raise

    def _send_process(self, job: ClaimedJob, remote_input: str, variants: tuple[Variant, ...],
                      wanted: list[str]) -> list[str]:
        """Journal that the paid call is being sent (a restart then looks for its outputs
        first), then send it, its estimated credits held against the daily budget. Raises
        ApiError subclasses (BudgetExceededError: not sent), OSError."""
        spending = (contextlib.nullcontext(0.0) if self.spend is None else self.spend.paying(
            self.folder.name, pixels_of(job.input_path), variants))
        with spending:  # BudgetExceededError here: nothing sent, nothing journaled
            job.save(job.record.advance(job.record.state, process_sent_at=self._now()))
            job.timeline.mark("journal")
            return self.client.process(remote_input, variants, wanted)

    def _download(self, job: ClaimedJob) -> None:
        self._enter_api(job)
        if job.record.last_stage == REDO_PROCESS:
            self._redo_process(job)
        out_dir = self._out_dir(job)
        with local_disk("creating the outbox folder", out_dir):
            make_dirs(out_dir)
        input_size = upright_size(job.input_path)  # the header only
        parts = [temp_path_for(out_dir, job.job_id, index)
                 for index in range(len(job.record.remote_outputs))]
        missing = [(index, remote, parts[index])
                   for index, remote in enumerate(job.record.remote_outputs)
                   if not os.path.lexists(parts[index])]  # finished ones survive a retry
        meta = read_metadata(job.input_path) if self.folder.keep_metadata else None
        failed = fetch_all(
            missing, lambda item: self._fetch_one(job, *item), self.downloads,
            check_one=lambda item: self._check_one(job, *item, input_size, meta),
            on_fetched=lambda: self._leave_api(job))
        job.timeline.mark("download")
        if failed:
            self._after_failed_download(job, failed)
        temps = [os.fsdecode(part) for part in parts]
        local = is_remote_master(job.record.remote_outputs[0])
        if local:  # render = "local": the one cutout becomes every variant here
            temps = render_set(
                Path(temps[0]), self.variants_of(job), out_dir, job.job_id, self.decode_budget,
                finish=lambda path, variant: self._finish_rendered(job, path, variant,
                                                                   input_size, meta))
        downloaded = job.record.advance(JobState.DOWNLOADED, temp_outputs=tuple(temps),
                                        last_stage="download")
        if local:  # journaled before its master is dropped
            job.save(downloaded)
            drop_master(out_dir, job.job_id)
        else:  # journaled with the chosen names, before any is published
            job.keep(downloaded)

    def _downloaded_variants(self, job: ClaimedJob) -> tuple[Variant, ...]:
        """What each remote output of ``job`` is: its variants, or the one master of
        ``render = "local"`` (decided by what was asked for, whatever a reload says now)."""
        if job.record.remote_outputs and is_remote_master(job.record.remote_outputs[0]):
            master, _ = requested_outputs("local", self.api.upload_prefix, job.job_id,
                                          self.variants_of(job), job.record.remote_round)
            return master
        return self.variants_of(job)

    def _fetch_one(self, job: ClaimedJob, index: int, remote: str, temp: Path) -> None:
        """Download output ``index`` into its ``.dl``; ``_check_one`` makes it a ``.part``.
        Runs beside the job's other downloads: journals nothing (what a failure means for the
        job is decided once, by ``_after_failed_download``). Raises ApiError subclasses,
        LocalDiskError, OSError."""
        partial_path = download_path_for(temp.parent, job.job_id, index)
        with local_disk("writing an output", partial_path):  # ENOSPC: pause the folder
            self.guard.call("download", partial(self.client.download, remote, partial_path))

    def _check_one(self, job: ClaimedJob, index: int, remote: str, temp: Path,
                   input_size: tuple[int, int] | None, meta: StudioMetadata | None) -> None:
        """Stamp, fsync and verify a fetched ``.dl``, then rename it to ``.part``: a ``.part``
        is always whole and verified. Runs after the job gave its API slot back. Raises
        BadOutputError (the download deleted), LocalDiskError, OSError."""
        del remote  # the item's shape is _fetch_one's
        partial_path = download_path_for(temp.parent, job.job_id, index)
        variants = self._downloaded_variants(job)
        # index past the set cannot happen with the journaled set: stamped, not verified
        variant = variants[index] if index < len(variants) else None
        self._stamp_and_verify(job, partial_path, variant, input_size, meta)
        with local_disk("writing an output", temp):
            partial_path.rename(temp)

    def _finish_rendered(self, job: ClaimedJob, path: Path, variant: Variant,
                         input_size: tuple[int, int] | None,
                         meta: StudioMetadata | None) -> None:
        """A locally rendered ``.dl`` treated exactly as a downloaded output. Raises
        BadRenderError (the file deleted), LocalDiskError, OSError."""
        try:
            self._stamp_and_verify(job, path, variant, input_size, meta)
        except BadOutputError as exc:
            raise BadRenderError("download", f"rendered {variant.name}: {exc.detail}") from exc

    def _stamp_and_verify(self, job: ClaimedJob, path: Path, variant: Variant | None,
                          input_size: tuple[int, int] | None,
                          meta: StudioMetadata | None) -> None:
        """Stamp the studio's metadata (``meta``) into a fetched or rendered ``.dl``, fsync it
        and verify it against ``variant`` (none: not verified). Raises BadOutputError (the
        file deleted), LocalDiskError, OSError."""
        self._keep_metadata(job, path, meta)
        with local_disk("writing an output", path):
            fsync_file(path)
            if variant is None:
                return
            try:
                verify_output(path, variant, input_size, self.decode_budget)
            except BadOutputError:
                path.unlink(missing_ok=True)
                raise

    def _after_failed_download(self, job: ClaimedJob,
                               failed: Sequence[BaseException]) -> NoReturn:
        """Journal what the failed downloads of one round mean for the job, once whatever
        their number, and raise the one that decides its fate (``fetch.decisive``).

        A download is free but a new process call is paid: a 404 is retried in place once
        (the next request may reach the right region), a second round with one redoes the
        whole job. A bad output is fetched again, then redone (``_after_bad_output``)."""
        if any(isinstance(exc, RemoteFileMissingError) for exc in failed):
            if job.record.last_stage == DOWNLOAD_MISSING:
                self._restart_remote(job)
            else:
                job.save(job.record.advance(JobState.PROCESSED, last_stage=DOWNLOAD_MISSING))
        elif any(isinstance(exc, BadOutputError) for exc in failed):
            job.save(job.record.advance(JobState.PROCESSED,
                                        last_stage=_after_bad_output(job.record.last_stage)))
        else:  # a job that waits to fetch again waits journaled "processed", its outputs named
            with contextlib.suppress(OSError):  # unwritable: a restart's look-out finds them
                job.save(job.record)
        raise decisive(failed)

    def _publish(self, job: ClaimedJob) -> None:
        temps = [Path(p) for p in job.record.temp_outputs]
        self._hash_temps(job, temps)
        retry_name_races(partial(self._journaled_names, job),
                         partial(self._published, job, temps),
                         f"output names in {show_path(self._out_dir(job))}")

    def _journaled_names(self, job: ClaimedJob) -> list[Path]:
        """The outputs' final names: journaled ones, else the first free set, journaled now."""
        if not job.record.final_outputs:
            finals = free_output_set(self.folder, job.record, self.variants_of(job))
            job.save(job.record.advance(JobState.DOWNLOADED, final_outputs=tuple(
                os.fsdecode(p) for p in finals)))
        return [Path(p) for p in job.record.final_outputs]

    def _published(self, job: ClaimedJob, temps: list[Path], finals: list[Path]) -> bool | None:
        """Publish ``temps`` as ``finals``; None when a name was taken since they were chosen
        (forgotten: choose again). True once published, or once the temporaries were found
        lost (the outbox cleaned): the job fetches them again then."""
        try:
            publish_set(temps, finals, overwrite=self.folder.on_conflict == "overwrite")
        except FileExistsError:
            job.save(job.record.advance(JobState.DOWNLOADED, final_outputs=()))
            return None
        except FileNotFoundError:
            self._restart_remote(job)
            return True
        # The archive target is journaled with the publish (one write fewer per job).
        job.save(job.record.advance(JobState.PUBLISHED,
                                    dispose_target=archive_target_of(self.folder, job)))
        drop_master(self._out_dir(job), job.job_id)  # a crash may have left it
        job.timeline.mark("publish")
        return True

    def _dispose(self, job: ClaimedJob) -> None:
        self.freeze.ensure_unchanged(job, self._out_dir(job))  # outputs of what is disposed of
        dispose_input(self.folder, job)
        # Not journaled: the job dir is removed right after. A crash before that resumes at
        # "published" with the input gone, and only finishes the job.
        job.keep(job.record.advance(JobState.DISPOSED))
        job.timeline.mark("dispose")

    # -- quarantine -----------------------------------------------------------------------

    def quarantine(self, job: ClaimedJob, exc: BaseException, reason: str) -> Path | None:
        """Move the job's input to quarantine with its ``.error.json`` (``reason``: the failure
        policy's reason code); finish the job.

        Returns the quarantined path (None when the input was already gone). Raises
        LocalDiskError when the quarantine folder cannot be written (the input stays).
        """
        return self.quarantiner.quarantine(job, exc, reason, self.variants_of(job))

    # -- normalisation (job.normalize, job.pages, job.stamp) ------------------------------

    @cached_property
    def _decode_limits(self) -> Limits:
        return Limits(self.limits.max_input_bytes, self.limits.max_input_pixels,
                      self.decode_budget)

    def _split_pages(self, job: ClaimedJob, checked: ValidatedInput, fit: int | None) -> None:
        """Pages 2..N of a multi-page input become jobs of their own (``job.pages``), each
        scaled down to ``fit`` pixels before its one encoding."""
        write_pages(job, checked, self._decode_limits, self.folder.keep_metadata,
                    partial(self._say, job), fit)
        hand_over_pages(job, WorkArea(self.folder.inbox), self.spawn)

    def _keep_metadata(self, job: ClaimedJob, output: Path,
                       meta: StudioMetadata | None) -> None:
        """Stamp the input's copyright, artist, date and description (``meta``, read once per
        job when ``keep_metadata``) into a downloaded output. Raises LocalDiskError; an output
        it cannot parse stays as it is."""
        if not meta:
            return
        try:
            with local_disk("writing an output", output):
                stamp_file(output, meta)
        except ValueError as exc:
            log.warning("job %s [%s] %s: output kept without metadata: %s", job.job_id,
                        self.folder.name, show_path(job.record.original_relpath), exc,
                        extra=self.log_fields(job, stage="download"))

    def _say(self, job: ClaimedJob, text: str) -> None:
        log.info("job %s [%s] %s: %s", job.job_id, self.folder.name,
                 show_path(job.record.original_relpath), text, extra=self.log_fields(job))

    # -- helpers --------------------------------------------------------------------------

    def progress(self, job: ClaimedJob) -> tuple[int, int]:
        """How far the job got: its state's rank, then its whole downloads on disk. A retry
        that got further than the last one starts its attempt count afresh."""
        rank = list(JobState).index(job.record.state)
        if job.record.state is not JobState.PROCESSED:
            return rank, 0
        out_dir = self._out_dir(job)
        done = sum(os.path.lexists(temp_path_for(out_dir, job.job_id, index))
                   for index in range(len(job.record.remote_outputs)))
        return rank, done

    def note_failure(self, job: ClaimedJob, attempts: int, error: str) -> None:
        """Journal and record a failed attempt (the failure policy's retry). Raises nothing:
        the journal is the truth and the ledger only a record, so neither stops the retry."""
        try:
            job.save(job.record.advance(job.record.state, attempts=attempts, last_error=error))
        except OSError as exc:
            log.error("job %s: cannot journal the failure: %s", job.job_id, exc)
        try:
            self.ledger.update(job.job_id, attempts=attempts, last_error=error)
        except sqlite3.Error as exc:
            log.error("job %s: cannot record the failure in the ledger: %s", job.job_id, exc)

    def log_fields(self, job: ClaimedJob, stage: str | None = None,
                   reason: str | None = None) -> dict[str, str]:
        """Structured fields of a log line about ``job`` (JOB_ID, FOLDER, ... in the journal)."""
        return job_fields(job.job_id, self.folder.name, job.record.original_relpath,
                          stage=stage, reason=reason)

    def _reuse_duplicate(self, job: ClaimedJob, sha256: str) -> bool:
        """Same content, same variants, outputs still holding their recorded bytes: copy them,
        pay nothing. Raises SameContentInFlight while another job pays for this content."""
        if self.folder.reprocess_duplicates:
            return False
        key = self.variant_key_of(job)
        if self.in_flight is not None and not self.in_flight.begin(
                flight_key(sha256, key), job.job_id):
            log.info("job %s [%s] %s: the same content is being processed by another job: "
                     "waiting for its outputs", job.job_id, self.folder.name,
                     show_path(job.record.original_relpath), extra=self.log_fields(job))
            raise SameContentInFlight(f"job {job.job_id}: the same content is in flight")
        copied = copy_earlier_outputs(self.ledger, sha256, key, self.variants_of(job),
                                      self._out_dir(job), job.job_id)
        if copied is None:
            return False
        log.info("job %s [%s] %s: same content and variants as an earlier job: outputs "
                 "copied, no API call", job.job_id, self.folder.name,
                 show_path(job.record.original_relpath), extra=self.log_fields(job))
        job.save(job.record.advance(JobState.DOWNLOADED, temp_outputs=copied.temps,
                                    output_sha256s=copied.sha256s, last_stage=REUSED))
        return True

    def _wait_while_in_flight(self, job: ClaimedJob, sha256: str | None) -> None:
        """Raise SameContentInFlight when another job pays for the content this job's journal
        says it holds: a waiting job is run again often, and must not decode its input then."""
        if (self.in_flight is not None and sha256 is not None
                and not self.folder.reprocess_duplicates
                and self.in_flight.busy(flight_key(sha256, self.variant_key_of(job)),
                                        job.job_id)):
            raise SameContentInFlight(f"job {job.job_id}: the same content is in flight")

    def _hash_temps(self, job: ClaimedJob, temps: list[Path]) -> None:
        """Journal the sha256 of every temporary output before any is published: what the
        ledger will say the outputs hold (duplicate reuse checks it). A set the journal of an
        older version named, or one whose temporaries cannot all be read, stays unhashed and is
        never reused (``publish_set`` says what is wrong with it)."""
        if len(job.record.output_sha256s) == len(temps) or job.record.final_outputs:
            return
        hashes = [h for h in map(sha256_of_regular_file, temps) if h is not None]
        if len(hashes) == len(temps):  # journaled with the chosen names, next
            job.keep(job.record.advance(JobState.DOWNLOADED, output_sha256s=tuple(hashes)))

    def _output_sha256s(self, job: ClaimedJob) -> list[str] | None:
        """The published outputs' hashes, ordered as the ledger lists them; None if unknown."""
        hashes = list(job.record.output_sha256s)
        if not hashes or len(hashes) != len(job.record.final_outputs):
            return None
        return self._by_variant_name(job, hashes)

    def _restart_remote(self, job: ClaimedJob) -> None:
        discard_temps(self._out_dir(job), job.job_id)
        job.save(job.record.restart_remote(final_outputs=(), last_stage=None))

    def _outputs_exist(self, remote_paths: list[str]) -> bool:
        return all(self.guard.call("download", partial(self.client.remote_file_exists, p))
                   for p in remote_paths)

    def _out_dir(self, job: ClaimedJob) -> Path:
        return job_output_dir(self.folder, job.record)

    def _by_variant_name(self, job: ClaimedJob, outputs: Sequence[T]) -> list[T]:
        """Outputs (or their hashes) ordered by variant name: how duplicates are matched to
        variants later."""
        pairs = zip(self.variants_of(job), outputs, strict=False)
        return [p for _, p in sorted(pairs, key=lambda vp: vp[0].name)]

    def _now(self) -> str:
        return iso_utc(self.wall_clock())

def _after_bad_output(last_stage: str | None) -> str:
    """The journal's next ``last_stage`` after a bad download: fetch again, then redo the
    process call once, then only fetch again."""
    if last_stage == BAD_OUTPUT:
        return REDO_PROCESS
    if last_stage == PROCESS_REDONE:
        return PROCESS_REDONE
    return BAD_OUTPUT
