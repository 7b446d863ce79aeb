"""One job from its journaled state to its end: validate → upload → process → download →
publish → dispose, or quarantine.

Each step journals its result before the next starts, so a job interrupted anywhere (kill -9,
a retry, a pause) resumes from the last durable state: an upload is never repeated once its
remote path is journaled, a process call never once its outputs are, and a restart after the
downloads publishes the files already on disk without any API call.

Failures leave this module as exceptions of the tree in ``errors.py``; the failure policy
(``engine.failures``) decides from their class and calls :meth:`JobRunner.quarantine` when needed.

Over 300 lines on purpose: the steps read in order as one story, and the quarantine half
shares the runner's folder, ledger and naming helpers; duplicate reuse and single flight are
apart (``duplicates``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, partial
from pathlib import Path
from typing import Protocol, TypeVar

from bgcut_watchd.api import AmbiguousOutcomeError, BackgroundCutClient
from bgcut_watchd.clock import iso_utc_seconds
from bgcut_watchd.config.model import ApiConfig, DaemonConfig, FolderConfig, variant_key
from bgcut_watchd.errors import (
    ApiError,
    BgcutError,
    InputError,
    LocalDiskError,
    LocalInputError,
    RemoteFileMissingError,
)
from bgcut_watchd.fsops import (
    fsync_file,
    local_disk,
    make_dirs,
    sha256_of_regular_file,
    show_path,
)
from bgcut_watchd.job.dispose import archive, delete_input
from bgcut_watchd.job.duplicates import (
    SameContentInFlight,
    SingleFlight,
    copy_earlier_outputs,
    flight_key,
)
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.logfields import job_fields
from bgcut_watchd.job.metadata import read_metadata
from bgcut_watchd.job.naming import (
    MAX_NAME_RACES,
    choose_output_set,
    download_path_for,
    output_names,
    output_stem,
    relative_subfolder,
    remote_output_paths,
    remote_upload_path,
    temp_path_for,
)
from bgcut_watchd.job.normalize import Limits, upload_for
from bgcut_watchd.job.pages import Spawn, hand_over_pages, write_pages
from bgcut_watchd.job.publish import discard_temps, publish_set
from bgcut_watchd.job.quarantine import QuarantineRecord, quarantine
from bgcut_watchd.job.stamp import stamp_file
from bgcut_watchd.job.unsettled import check_again_later, second_look_s
from bgcut_watchd.job.validate import PixelBudget, ValidatedInput, validate_input
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea
from bgcut_watchd.ledger import Ledger

log = logging.getLogger("bgcut_watchd.job")

T = TypeVar("T")

PROCESS_AMBIGUOUS = "process-ambiguous"  # last_stage: the process call may have run
DOWNLOAD_MISSING = "download-missing"    # last_stage: a download answered 404 once

# The stage each state's next step belongs to (the quarantine file's "stage").
STAGE_OF = {
    JobState.CLAIMING: "validate", JobState.CLAIMED: "upload", JobState.UPLOADED: "process",
    JobState.PROCESSED: "download", JobState.DOWNLOADED: "publish",
    JobState.PUBLISHED: "publish",
}


class ApiCaller(Protocol):
    """Runs one API call under the API pause and the shared rate limiter (``control.guard``)."""

    def call(self, endpoint: str, fn: Callable[[], T]) -> T: ...


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

    @cached_property
    def variant_key(self) -> str:
        """The folder's variant set as the ledger keys it (hashed once, read per job)."""
        return variant_key(self.folder.variants)

    @cached_property
    def second_look_s(self) -> float | None:
        """On a network folder, how soon an unfinished-looking input is checked again."""
        return second_look_s(self.folder, self.limits.stability_s)

    def run(self, job: ClaimedJob) -> list[Path]:
        """Advance ``job`` to disposal; return its published outputs.

        Raises InputError (quarantine it), TransientError/PauseError (retry later, the job
        stays resumable), LocalDiskError (pause the folder), SameContentInFlight (another job
        is paying for the same content: run it again shortly).
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
        while job.record.state in steps:
            steps[job.record.state](job)
        outputs = [Path(p) for p in job.record.final_outputs]
        self.ledger.finish_done(job.job_id, self._by_variant_name(outputs),
                                self.monotonic() - started, sha256s=self._output_sha256s(job))
        log.info("job %s [%s] %s: done, %d output(s) in %s", job.job_id, self.folder.name,
                 show_path(job.record.original_relpath), len(outputs),
                 show_path(self._out_dir(job)), extra=self.log_fields(job, stage="dispose"))
        job.finish()
        return outputs

    # -- steps ----------------------------------------------------------------------------

    def _upload(self, job: ClaimedJob) -> None:
        self._wait_while_in_flight(job, job.record.sha256)  # before decoding the input again
        hand_over_pages(job, WorkArea(self.folder.inbox), self.spawn)  # before anything fails
        try:
            checked = validate_input(job.input_path, max_bytes=self.limits.max_input_bytes,
                                     max_pixels=self.limits.max_input_pixels,
                                     budget=self.decode_budget)
        except LocalInputError as exc:
            check_again_later(job, exc, self.second_look_s)  # a share's writer may not be done
            raise
        job.save(job.record.advance(JobState.CLAIMED, sha256=checked.sha256))
        self.ledger.update(job.job_id, sha256=checked.sha256, stage="upload")
        self._split_pages(job, checked)
        if self._reuse_duplicate(job, checked.sha256):
            return
        source, name = upload_for(job, checked, self._decode_limits, partial(self._say, job))
        upload_path = remote_upload_path(self.api.upload_prefix, job.job_id)
        remote = self.guard.call("upload", lambda: self.client.upload(
            source, upload_path, name))
        job.save(job.record.advance(JobState.UPLOADED, remote_input=remote))

    def _process(self, job: ClaimedJob) -> None:
        remote_input = job.record.remote_input
        assert remote_input is not None  # journaled with state "uploaded"
        wanted = remote_output_paths(self.api.upload_prefix, job.job_id, self.folder.variants)
        if job.record.last_stage == PROCESS_AMBIGUOUS and self._outputs_exist(wanted):
            job.save(job.record.advance(JobState.PROCESSED, remote_outputs=tuple(wanted)))
            return
        try:
            outputs = self.guard.call("process", lambda: self.client.process(
                remote_input, self.folder.variants, wanted))
        except AmbiguousOutcomeError:
            # The call may have run (and been paid for): look before sending it again.
            job.save(job.record.advance(JobState.UPLOADED, last_stage=PROCESS_AMBIGUOUS))
            raise
        except RemoteFileMissingError:  # the upload expired or lives in another region
            self._restart_remote(job)
            raise
        job.save(job.record.advance(JobState.PROCESSED, remote_outputs=tuple(outputs),
                                    last_stage="process"))

    def _download(self, job: ClaimedJob) -> None:
        out_dir = self._out_dir(job)
        with local_disk("creating the outbox folder", out_dir):
            make_dirs(out_dir)
        temps: list[str] = []
        for index, remote in enumerate(job.record.remote_outputs):
            temp = temp_path_for(out_dir, job.job_id, index)
            if not os.path.lexists(temp):  # finished downloads survive a retry or a crash
                self._download_one(job, remote, index, temp)
            temps.append(os.fsdecode(temp))
        job.save(job.record.advance(JobState.DOWNLOADED, temp_outputs=tuple(temps),
                                    last_stage="download"))

    def _download_one(self, job: ClaimedJob, remote: str, index: int, temp: Path) -> None:
        """Download into ``.dl``, fsync, rename to ``.part``: a ``.part`` is always whole."""
        partial_path = download_path_for(temp.parent, job.job_id, index)
        try:
            with local_disk("writing an output", partial_path):  # ENOSPC: pause the folder
                self.guard.call("download", partial(self.client.download, remote, partial_path))
        except RemoteFileMissingError:
            # A download is free but a new process call is paid: one 404 is retried in place
            # (the next request may reach the right region); a second redoes the whole job.
            if job.record.last_stage == DOWNLOAD_MISSING:
                self._restart_remote(job)
            else:
                job.save(job.record.advance(JobState.PROCESSED, last_stage=DOWNLOAD_MISSING))
            raise
        self._keep_metadata(job, partial_path)
        with local_disk("writing an output", temp):
            fsync_file(partial_path)
            partial_path.rename(temp)

    def _publish(self, job: ClaimedJob) -> None:
        temps = [Path(p) for p in job.record.temp_outputs]
        self._hash_temps(job, temps)
        overwrite = self.folder.on_conflict == "overwrite"
        for _ in range(MAX_NAME_RACES):
            if not job.record.final_outputs:
                finals = self._choose_names(job)
                job.save(job.record.advance(JobState.DOWNLOADED, final_outputs=tuple(
                    os.fsdecode(p) for p in finals)))
            try:
                publish_set(temps, [Path(p) for p in job.record.final_outputs],
                            overwrite=overwrite)
            except FileExistsError:  # a name was taken since we chose: choose again
                job.save(job.record.advance(JobState.DOWNLOADED, final_outputs=()))
                continue
            except FileNotFoundError:  # temps lost (e.g. outbox cleaned): fetch them again
                self._restart_remote(job)
                return
            job.save(job.record.advance(JobState.PUBLISHED))
            return
        raise LocalDiskError(f"no free output names in {show_path(self._out_dir(job))} after "
                             f"{MAX_NAME_RACES} tries: another writer keeps taking them")

    def _dispose(self, job: ClaimedJob) -> None:
        source = job.input_path
        if os.path.lexists(source):
            name = Path(job.record.original_relpath).name
            if self.folder.on_success == "delete" or job.record.page_of is not None:
                delete_input(source)  # a page's file: its multi-page original is archived
            else:
                assert self.folder.archive is not None  # config requires it with "archive"
                archive(source, self.folder.archive, self._subfolder(job), name)
        job.save(job.record.advance(JobState.DISPOSED))

    # -- quarantine -----------------------------------------------------------------------

    def quarantine(self, job: ClaimedJob, exc: BaseException) -> Path | None:
        """Move the job's input to quarantine with its ``.error.json``; finish the job.

        Returns the quarantined path (None when the input was already gone). Raises
        LocalDiskError when the quarantine folder cannot be written (the input stays).
        """
        stage = STAGE_OF.get(job.record.state, "validate")
        if isinstance(exc, InputError) and not isinstance(exc, ApiError):
            stage = "validate"
        discard_temps(self._out_dir(job), job.job_id)
        record = self._quarantine_record(job, exc, stage)
        target = None
        if os.path.lexists(job.input_path):
            target = quarantine(job.input_path, self.folder.quarantine, self._subfolder(job),
                                Path(job.record.original_relpath).name, record)
        job.save(job.record.advance(JobState.QUARANTINED, last_error=record.detail,
                                    last_stage=stage))
        self.ledger.finish_quarantined(job.job_id, stage, record.reason, record.detail,
                                       record.http_status)
        log.warning("job %s [%s] %s: quarantined at %s: %s (%s)", job.job_id, self.folder.name,
                    show_path(job.record.original_relpath), stage, record.reason, record.detail,
                    extra=self.log_fields(job, stage=stage, reason=record.reason))
        job.finish()
        return target

    def _quarantine_record(self, job: ClaimedJob, exc: BaseException,
                           stage: str) -> QuarantineRecord:
        if isinstance(exc, InputError):
            reason = exc.reason
        elif isinstance(exc, BgcutError):
            reason = "retries_exhausted"
        else:  # a bug of ours: say so rather than blame the network
            reason = "internal_error"
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        return QuarantineRecord(
            file=os.fsdecode(self.folder.inbox / job.record.original_relpath),
            folder=self.folder.name, stage=stage, reason=reason,
            http_status=getattr(exc, "http_status", None), detail=str(detail),
            attempts=max(1, job.record.attempts),
            sha256=job.record.sha256 or sha256_of_regular_file(job.input_path),
            variants=tuple(v.name for v in self.folder.variants),
            first_seen=iso_utc_seconds(job.record.first_seen),
            quarantined_at=iso_utc_seconds(datetime.now(UTC)),
        )

    # -- normalisation (job.normalize, job.pages, job.stamp) ------------------------------

    @cached_property
    def _decode_limits(self) -> Limits:
        return Limits(self.limits.max_input_bytes, self.limits.max_input_pixels,
                      self.decode_budget)

    def _split_pages(self, job: ClaimedJob, checked: ValidatedInput) -> None:
        """Pages 2..N of a multi-page input become jobs of their own (``job.pages``)."""
        write_pages(job, checked, self._decode_limits, self.folder.keep_metadata,
                    partial(self._say, job))
        hand_over_pages(job, WorkArea(self.folder.inbox), self.spawn)

    def _keep_metadata(self, job: ClaimedJob, output: Path) -> None:
        """Stamp the input's copyright, artist, date and description into a downloaded output
        (``keep_metadata``). Raises LocalDiskError; an output it cannot parse stays as it is."""
        meta = read_metadata(job.input_path) if self.folder.keep_metadata else None
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
        if self.in_flight is not None and not self.in_flight.begin(
                flight_key(sha256, self.variant_key), job.job_id):
            log.info("job %s [%s] %s: the same content is being processed by another job: "
                     "waiting for its outputs", job.job_id, self.folder.name,
                     show_path(job.record.original_relpath), extra=self.log_fields(job))
            raise SameContentInFlight(f"job {job.job_id}: the same content is in flight")
        copied = copy_earlier_outputs(self.ledger, sha256, self.variant_key,
                                      self.folder.variants, self._out_dir(job), job.job_id)
        if copied is None:
            return False
        log.info("job %s [%s] %s: same content and variants as an earlier job: outputs "
                 "copied, no API call", job.job_id, self.folder.name,
                 show_path(job.record.original_relpath), extra=self.log_fields(job))
        job.save(job.record.advance(JobState.DOWNLOADED, temp_outputs=copied.temps,
                                    output_sha256s=copied.sha256s, last_stage="duplicate"))
        return True

    def _wait_while_in_flight(self, job: ClaimedJob, sha256: str | None) -> None:
        """Raise SameContentInFlight when another job pays for the content this job's journal
        says it holds: a waiting job is run again often, and must not decode its input then."""
        if (self.in_flight is not None and sha256 is not None
                and not self.folder.reprocess_duplicates
                and self.in_flight.busy(flight_key(sha256, self.variant_key), job.job_id)):
            raise SameContentInFlight(f"job {job.job_id}: the same content is in flight")

    def _hash_temps(self, job: ClaimedJob, temps: list[Path]) -> None:
        """Journal the sha256 of every temporary output before any is published: what the
        ledger will say the outputs hold (duplicate reuse checks it). A set the journal of an
        older version named, or one whose temporaries cannot all be read, stays unhashed and is
        never reused (``publish_set`` says what is wrong with it)."""
        if len(job.record.output_sha256s) == len(temps) or job.record.final_outputs:
            return
        hashes = [h for h in map(sha256_of_regular_file, temps) if h is not None]
        if len(hashes) == len(temps):
            job.save(job.record.advance(JobState.DOWNLOADED, output_sha256s=tuple(hashes)))

    def _output_sha256s(self, job: ClaimedJob) -> list[str] | None:
        """The published outputs' hashes, ordered as the ledger lists them; None if unknown."""
        hashes = list(job.record.output_sha256s)
        if not hashes or len(hashes) != len(job.record.final_outputs):
            return None
        return self._by_variant_name(hashes)

    def _restart_remote(self, job: ClaimedJob) -> None:
        discard_temps(self._out_dir(job), job.job_id)
        job.save(job.record.restart_remote(final_outputs=(), last_stage=None))

    def _outputs_exist(self, remote_paths: list[str]) -> bool:
        return all(self.guard.call("download", partial(self.client.remote_file_exists, p))
                   for p in remote_paths)

    def _choose_names(self, job: ClaimedJob) -> list[Path]:
        record, folder = job.record, self.folder
        stem, tail = output_stem(record.original_relpath, page=record.page,
                                 page_of=record.page_of, pages=record.pages)
        return choose_output_set(
            self._out_dir(job),
            lambda s: output_names(folder.output_name, s, folder.variants, folder.name),
            stem, folder.on_conflict, tail)

    def _subfolder(self, job: ClaimedJob) -> Path:
        return relative_subfolder(self.folder.inbox, job.record.original_relpath)

    def _out_dir(self, job: ClaimedJob) -> Path:
        return self.folder.outbox / self._subfolder(job)

    def _by_variant_name(self, outputs: Sequence[T]) -> list[T]:
        """Outputs (or their hashes) ordered by variant name: how duplicates are matched to
        variants later."""
        pairs = zip(self.folder.variants, outputs, strict=False)
        return [p for _, p in sorted(pairs, key=lambda vp: vp[0].name)]
