"""One job from its journaled state to its end: validate → upload → process → download →
verify → publish → dispose, or quarantine.

Each step journals its result before the next starts, so a job interrupted anywhere (kill -9,
a retry, a pause) resumes from the last durable state: an upload is never repeated once its
remote path is journaled, a process call never once its outputs are, and a restart after the
downloads publishes the files already on disk without any API call.

Every download is verified (``verify``) before its ``.dl`` becomes a ``.part``, so a ``.part``
is always whole and verified. A bad output (an HTML page answered 200, a cut body) is deleted and
fetched again; a second bad copy in a row redoes the process call, once per job; after that it
is only fetched again, until the failure policy's ``max_attempts`` quarantines the job as
``bad_output``. The journal's ``last_stage`` carries this across retries and restarts.

Failures leave this module as exceptions of the tree in ``errors.py``; the failure policy
(``engine.failures``) decides from their class and calls :meth:`JobRunner.quarantine` when needed.

Over 300 lines on purpose: the steps read in order as one story (the bounded redo of a bad
output included), and the quarantine half shares the runner's folder, ledger and naming
helpers; duplicate reuse (``duplicates``) and the checks of an output (``verify``) are apart.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, cached_property, partial
from pathlib import Path
from typing import Protocol, TypeVar

from bgcut_watchd.api import AmbiguousOutcomeError, BackgroundCutClient
from bgcut_watchd.config.model import ApiConfig, DaemonConfig, FolderConfig, variant_key
from bgcut_watchd.errors import (
    ApiError,
    BadOutputError,
    BgcutError,
    InputError,
    LocalDiskError,
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
from bgcut_watchd.job.duplicates import copy_earlier_outputs
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.logfields import job_fields
from bgcut_watchd.job.naming import (
    MAX_NAME_RACES,
    choose_output_set,
    download_path_for,
    output_names,
    relative_subfolder,
    remote_output_paths,
    remote_upload_path,
    split_name,
    temp_path_for,
)
from bgcut_watchd.job.publish import discard_temps, publish_set
from bgcut_watchd.job.quarantine import QuarantineRecord, quarantine
from bgcut_watchd.job.validate import PixelBudget, validate_input
from bgcut_watchd.job.verify import upright_size, verify_output
from bgcut_watchd.job.workarea import ClaimedJob
from bgcut_watchd.ledger import Ledger

log = logging.getLogger("bgcut_watchd.job")

T = TypeVar("T")

PROCESS_AMBIGUOUS = "process-ambiguous"  # last_stage: the process call may have run
DOWNLOAD_MISSING = "download-missing"    # last_stage: a download answered 404 once
BAD_OUTPUT = "bad-output"                # last_stage: a download failed verification once
REDO_PROCESS = "redo-process"            # last_stage: twice in a row: call process once more
PROCESS_REDONE = "process-redone"        # last_stage: process was redone: only fetch again now

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

    @cached_property
    def variant_key(self) -> str:
        """The folder's variant set as the ledger keys it (hashed once, read per job)."""
        return variant_key(self.folder.variants)

    def run(self, job: ClaimedJob) -> list[Path]:
        """Advance ``job`` to disposal; return its published outputs.

        Raises InputError (quarantine it), TransientError/PauseError (retry later, the job
        stays resumable), LocalDiskError (pause the folder).
        """
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
                                self.monotonic() - started)
        log.info("job %s [%s] %s: done, %d output(s) in %s", job.job_id, self.folder.name,
                 show_path(job.record.original_relpath), len(outputs),
                 show_path(self._out_dir(job)), extra=self.log_fields(job, stage="dispose"))
        job.finish()
        return outputs

    # -- steps ----------------------------------------------------------------------------

    def _upload(self, job: ClaimedJob) -> None:
        checked = validate_input(job.input_path, max_bytes=self.limits.max_input_bytes,
                                 max_pixels=self.limits.max_input_pixels,
                                 budget=self.decode_budget)
        job.save(job.record.advance(JobState.CLAIMED, sha256=checked.sha256))
        self.ledger.update(job.job_id, sha256=checked.sha256, stage="upload")
        if self._reuse_duplicate(job, checked.sha256):
            return
        upload_path = remote_upload_path(self.api.upload_prefix, job.job_id)
        remote = self.guard.call("upload", lambda: self.client.upload(
            job.input_path, upload_path, self._input_name(job)))
        job.save(job.record.advance(JobState.UPLOADED, remote_input=remote))

    def _process(self, job: ClaimedJob) -> None:
        wanted = remote_output_paths(self.api.upload_prefix, job.job_id, self.folder.variants)
        if job.record.last_stage == PROCESS_AMBIGUOUS and self._outputs_exist(wanted):
            job.save(job.record.advance(JobState.PROCESSED, remote_outputs=tuple(wanted)))
            return
        # A call that may have run (and been paid for): look before sending it again.
        outputs = self._call_process(job, wanted, if_ambiguous=PROCESS_AMBIGUOUS)
        job.save(job.record.advance(JobState.PROCESSED, remote_outputs=tuple(outputs),
                                    last_stage="process"))

    def _redo_process(self, job: ClaimedJob) -> None:
        """An output came back bad twice in a row: it may be broken on the service's side, so
        render it again, once per job. A redo that may have run is not sent a third time."""
        wanted = remote_output_paths(self.api.upload_prefix, job.job_id, self.folder.variants)
        outputs = self._call_process(job, wanted, if_ambiguous=PROCESS_REDONE)
        job.save(job.record.advance(JobState.PROCESSED, remote_outputs=tuple(outputs),
                                    last_stage=PROCESS_REDONE))

    def _call_process(self, job: ClaimedJob, wanted: list[str], if_ambiguous: str) -> list[str]:
        """The paid call. Journals ``if_ambiguous`` as last_stage when it may have run without
        an answer; restarts the remote work on a 404. Raises ApiError subclasses."""
        remote_input = job.record.remote_input
        assert remote_input is not None  # journaled with state "uploaded", kept after
        try:
            return self.guard.call("process", lambda: self.client.process(
                remote_input, self.folder.variants, wanted))
        except AmbiguousOutcomeError:
            job.save(job.record.advance(job.record.state, last_stage=if_ambiguous))
            raise
        except RemoteFileMissingError:  # the upload expired or lives in another region
            self._restart_remote(job)
            raise

    def _download(self, job: ClaimedJob) -> None:
        if job.record.last_stage == REDO_PROCESS:
            self._redo_process(job)
        out_dir = self._out_dir(job)
        with local_disk("creating the outbox folder", out_dir):
            make_dirs(out_dir)
        input_size = upright_size(job.input_path)  # the header only
        temps: list[str] = []
        for index, remote in enumerate(job.record.remote_outputs):
            temp = temp_path_for(out_dir, job.job_id, index)
            if not os.path.lexists(temp):  # finished downloads survive a retry or a crash
                self._download_one(job, remote, index, temp, input_size)
            temps.append(os.fsdecode(temp))
        job.save(job.record.advance(JobState.DOWNLOADED, temp_outputs=tuple(temps),
                                    last_stage="download"))

    def _download_one(self, job: ClaimedJob, remote: str, index: int, temp: Path,
                      input_size: tuple[int, int] | None) -> None:
        """Download into ``.dl``, fsync, verify, rename to ``.part``: a ``.part`` is always
        whole and verified."""
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
        with local_disk("writing an output", temp):
            fsync_file(partial_path)
            self._verify(job, partial_path, index, input_size)
            partial_path.rename(temp)

    def _verify(self, job: ClaimedJob, path: Path, index: int,
                input_size: tuple[int, int] | None) -> None:
        """Raises BadOutputError (the download deleted, the next step journaled) or OSError."""
        variants = self.folder.variants
        if index >= len(variants):  # a reload dropped variants: this output is not published
            return
        try:
            verify_output(path, variants[index], input_size, self.decode_budget)
        except BadOutputError:
            path.unlink(missing_ok=True)
            job.save(job.record.advance(JobState.PROCESSED,
                                        last_stage=_after_bad_output(job.record.last_stage)))
            raise

    def _publish(self, job: ClaimedJob) -> None:
        temps = [Path(p) for p in job.record.temp_outputs]
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
            if self.folder.on_success == "delete":
                delete_input(source)
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
        if isinstance(exc, InputError | BadOutputError):
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
            first_seen=job.record.first_seen,
            quarantined_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

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
        """Same content, same variants, outputs still there: copy them, pay nothing."""
        if self.folder.reprocess_duplicates:
            return False
        temps = copy_earlier_outputs(self.ledger, sha256, self.variant_key, self.folder.variants,
                                     self._out_dir(job), job.job_id,
                                     verify=self._verify_copy(job))
        if temps is None:
            return False
        log.info("job %s [%s] %s: same content and variants as an earlier job: outputs "
                 "copied, no API call", job.job_id, self.folder.name,
                 show_path(job.record.original_relpath), extra=self.log_fields(job))
        job.save(job.record.advance(JobState.DOWNLOADED, temp_outputs=tuple(temps),
                                    last_stage="duplicate"))
        return True

    def _verify_copy(self, job: ClaimedJob) -> Callable[[Path, int], None]:
        """Checks a copy of an earlier output like a download (raises BadOutputError)."""
        input_size = cache(partial(upright_size, job.input_path))  # read only if a copy is made

        def verify(path: Path, index: int) -> None:
            verify_output(path, self.folder.variants[index], input_size(), self.decode_budget)

        return verify

    def _restart_remote(self, job: ClaimedJob) -> None:
        discard_temps(self._out_dir(job), job.job_id)
        job.save(job.record.restart_remote(final_outputs=(), last_stage=None))

    def _outputs_exist(self, remote_paths: list[str]) -> bool:
        return all(self.guard.call("download", partial(self.client.remote_file_exists, p))
                   for p in remote_paths)

    def _choose_names(self, job: ClaimedJob) -> list[Path]:
        stem, _ = split_name(Path(job.record.original_relpath).name)
        folder = self.folder
        return choose_output_set(
            self._out_dir(job),
            lambda s: output_names(folder.output_name, s, folder.variants, folder.name),
            stem, folder.on_conflict)

    def _subfolder(self, job: ClaimedJob) -> Path:
        return relative_subfolder(self.folder.inbox, job.record.original_relpath)

    def _out_dir(self, job: ClaimedJob) -> Path:
        return self.folder.outbox / self._subfolder(job)

    def _input_name(self, job: ClaimedJob) -> str:
        return Path(job.record.original_relpath).name

    def _by_variant_name(self, outputs: list[Path]) -> list[Path]:
        """Outputs ordered by variant name: how duplicates are matched to variants later."""
        pairs = zip(self.folder.variants, outputs, strict=False)
        return [p for _, p in sorted(pairs, key=lambda vp: vp[0].name)]


def _after_bad_output(last_stage: str | None) -> str:
    """The journal's next ``last_stage`` after a bad download: fetch again, then redo the
    process call once, then only fetch again."""
    if last_stage == BAD_OUTPUT:
        return REDO_PROCESS
    if last_stage == PROCESS_REDONE:
        return PROCESS_REDONE
    return BAD_OUTPUT
