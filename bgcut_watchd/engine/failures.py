"""The failure policy: what a failed job becomes, decided here and only here.

:func:`classify` maps an exception to a :class:`Decision` from its class alone (``errors.py``
draws the tree: who is to blame). :class:`FailurePolicy` carries the decision out and returns the
scheduler's :class:`Outcome`; :func:`quarantine_reason` names a quarantine's reason code, from
the class too, and the job's quarantine writes what it is given:

==================  ==========================================================================
QUARANTINE          the input is to blame: quarantine at once (no attempt counted)
PAUSE_AUTH/CREDITS  the key or the account: pause ALL API work (``retry.auth_pause_s`` /
                    ``credits_pause_s``), quarantine nothing, hand the job back
PAUSE_UNREACHABLE   the service never reached (refused, DNS, connect timeout): no file's fault,
                    pause ALL API work like a 401, quarantine nothing however long it lasts
PAUSE_BUDGET        the daily budget (``engine.budget``, which paused ALL API work until
                    00:00 itself): quarantine nothing, hand the job back
PAUSE_FOLDER        the folder's disk: pause that folder (``retry.disk_pause_s``), keep the input
RETRY               the network or the service, for this file: back off and retry; after
                    ``max_attempts`` consecutive failures, quarantine (``retries_exhausted``)
UNEXPECTED          not one of ours (a bug): retried like RETRY with its traceback logged, so it
                    ends in quarantine (``internal_error``) instead of looping forever
WAIT                nothing failed (``NotReadyError``: the input is settling, an unanswered
                    process call may still run, a share's input waits for a second look):
                    run again after ``retry_in_s``, no attempt counted
==================  ==========================================================================

A service-wide outage is a pause, not a quarantine: a ``ServiceError`` (5xx, timeout, reset)
becomes ``PAUSE_UNREACHABLE`` as soon as such failures span more than one job with no API answer
in between (``on_api_success`` or any other answer ends the streak); ``retries_exhausted`` is
kept for a file that keeps failing while others succeed. While the service is deemed down, no
failure counts an attempt; the probe's failure renews the pause with capped exponential backoff
(``retry.base_delay_s`` doubling up to ``retry.max_delay_s``); its success ends it (the guard).

``attempts`` counts consecutive failures of one step: a job that got further before failing
again starts its count afresh, so a long job on a flaky network is not quarantined for failures
it has already recovered from. A redo after a 404 is no progress.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import replace
from enum import Enum
from typing import Protocol

from bgcut_watchd.config.model import RetryConfig
from bgcut_watchd.control.pause import FolderPauses, PauseReason, ProbedPause
from bgcut_watchd.control.retry import next_delay_s, should_retry
from bgcut_watchd.control.tickets import JobTicket, Outcome
from bgcut_watchd.errors import (
    BadOutputError,
    BudgetExceededError,
    CreditsError,
    InputError,
    LocalDiskError,
    NotReadyError,
    PauseError,
    RateLimitedError,
    ServiceError,
    TransientError,
    UnreachableError,
)
from bgcut_watchd.fsops import show_path
from bgcut_watchd.job.steps import STAGE_OF
from bgcut_watchd.job.workarea import ClaimedJob

log = logging.getLogger("bgcut_watchd.engine")

GATE_RETRY_S = 0.5  # a job handed back at a closed pause is offered again this soon
ERROR_TEXT_MAX = 500


class Decision(Enum):
    """What becomes of a failed job, by who is to blame."""

    RETRY = "retry"
    QUARANTINE = "quarantine"
    PAUSE_AUTH = "pause_auth"
    PAUSE_CREDITS = "pause_credits"
    PAUSE_UNREACHABLE = "pause_unreachable"
    PAUSE_BUDGET = "pause_budget"
    PAUSE_FOLDER = "pause_folder"
    UNEXPECTED = "unexpected"
    WAIT = "wait"


def classify(exc: BaseException) -> Decision:
    """Map a failure to a :class:`Decision` from its class alone. Raises nothing.

    ``ApiInputError`` is both an ``ApiError`` and an ``InputError``: the input is to blame, so
    it quarantines. A bare ``PauseError`` (neither 401 nor 402) pauses like an auth failure.
    """
    if isinstance(exc, NotReadyError):
        return Decision.WAIT
    if isinstance(exc, InputError):
        return Decision.QUARANTINE
    if isinstance(exc, CreditsError):
        return Decision.PAUSE_CREDITS
    if isinstance(exc, BudgetExceededError):
        return Decision.PAUSE_BUDGET
    if isinstance(exc, PauseError):
        return Decision.PAUSE_AUTH
    if isinstance(exc, LocalDiskError):
        return Decision.PAUSE_FOLDER
    if isinstance(exc, UnreachableError):
        return Decision.PAUSE_UNREACHABLE
    if isinstance(exc, TransientError):
        return Decision.RETRY
    return Decision.UNEXPECTED


RETRIES_EXHAUSTED = "retries_exhausted"
INTERNAL_ERROR = "internal_error"


def quarantine_reason(exc: BaseException) -> str:
    """The ``reason`` of the error file when ``exc`` quarantines a job, from its class alone:
    the input's own code (``InputError.reason``: ``invalid_image``, ``too_large``...),
    ``bad_output`` for outputs that kept failing verification, ``internal_error`` for a bug
    (``UNEXPECTED``), else ``retries_exhausted``. Raises nothing."""
    if isinstance(exc, InputError | BadOutputError):
        return exc.reason
    if classify(exc) is Decision.UNEXPECTED:  # a bug of ours: say so, not blame the network
        return INTERNAL_ERROR
    return RETRIES_EXHAUSTED


_API_PAUSES = (Decision.PAUSE_AUTH, Decision.PAUSE_CREDITS, Decision.PAUSE_BUDGET)


class FailedJobRunner(Protocol):
    """What the policy needs of a folder's job runner (``job.steps.JobRunner``)."""

    def progress(self, job: ClaimedJob) -> tuple[int, int]: ...
    def note_failure(self, job: ClaimedJob, attempts: int, error: str) -> None: ...
    def quarantine(self, job: ClaimedJob, exc: BaseException, reason: str) -> object: ...
    def log_fields(self, job: ClaimedJob, stage: str | None = None,
                   reason: str | None = None) -> dict[str, str]: ...


class HeldJobs(Protocol):
    """What the policy needs of the engine's claims (``engine.claim.Claims``)."""

    def ticket_again(self, job: ClaimedJob, ticket: JobTicket) -> JobTicket: ...
    def forget(self, job: ClaimedJob) -> None: ...


class FailurePolicy:
    """Turns a failed job into an :class:`Outcome`. Shared by the workers; thread-safe."""

    def __init__(self, retry: RetryConfig, api_pause: ProbedPause, folder_pauses: FolderPauses,
                 held: HeldJobs, rng: random.Random | None = None) -> None:
        self.retry = retry
        self.api_pause = api_pause
        self.folder_pauses = folder_pauses
        self.held = held
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # the rng, the failing jobs and the outage's probes
        self._failing_jobs: set[str] = set()  # service failures since the last answer
        self._outage_probes = 0  # failed probes of the running outage pause

    def on_api_failure(self, exc: BaseException) -> None:
        """The guard's ``on_failure``: a 401/402 pauses all API work at once, before any other
        worker sends a request the account would refuse as well. Any answer that is not a
        service failure (a 4xx) shows the service up. Raises nothing."""
        decision = classify(exc)
        if decision in _API_PAUSES:
            self._pause_api(decision, exc)
        if not isinstance(exc, ServiceError):
            self.on_api_success()

    def on_api_success(self) -> None:
        """The guard's ``on_success``: the service answered, its failure streak ends."""
        with self._lock:
            self._failing_jobs.clear()
            if not self._outage_pause():
                self._outage_probes = 0

    def outcome(self, runner: FailedJobRunner, ticket: JobTicket, job: ClaimedJob,
                exc: BaseException, progress_before: tuple[int, int]) -> Outcome:
        """What ``exc``, raised by ``runner.run(job)``, makes of the job. Raises nothing."""
        decision = classify(exc)
        folder_pause = self.folder_pauses.of(ticket.folder)
        if decision is not Decision.PAUSE_FOLDER:
            folder_pause.release_probe()  # no verdict on the folder's disk
        if decision in _API_PAUSES:
            if not self.api_pause.state().paused:  # the guard's on_failure has paused already
                self._pause_api(decision, exc)
            return Outcome.paused(GATE_RETRY_S, self.held.ticket_again(job, ticket))
        if self._service_down(decision, job):
            return self._wait_for_service(ticket, job, exc)
        self.api_pause.release_probe()  # no verdict on the key or the credits
        if decision is Decision.WAIT:
            assert isinstance(exc, NotReadyError)
            return Outcome.paused(exc.retry_in_s, self.held.ticket_again(job, ticket))
        if decision is Decision.QUARANTINE:
            return self._quarantine(runner, ticket, job, exc)
        if decision is Decision.PAUSE_FOLDER:
            folder_pause.pause(PauseReason.DISK, self.retry.disk_pause_s, str(exc))
            return Outcome.paused(self.retry.disk_pause_s, self.held.ticket_again(job, ticket))
        return self._retry(runner, ticket, job, exc, decision, progress_before)

    def _pause_api(self, decision: Decision, exc: BaseException) -> None:
        detail = getattr(exc, "detail", "") or str(exc)
        if isinstance(exc, BudgetExceededError):
            self.api_pause.pause(PauseReason.BUDGET, exc.pause_s, detail)
        elif decision is Decision.PAUSE_CREDITS:
            self.api_pause.pause(PauseReason.CREDITS, self.retry.credits_pause_s, detail)
        else:
            self.api_pause.pause(PauseReason.AUTH, self.retry.auth_pause_s, detail)

    def _service_down(self, decision: Decision, job: ClaimedJob) -> bool:
        """Whether this failure is the service's as a whole: unreachable, or service failures
        of more than one job with no answer in between, or any during an outage pause."""
        if decision is Decision.PAUSE_UNREACHABLE:
            return True
        if decision is not Decision.RETRY:
            return False
        with self._lock:
            if self._outage_pause():
                return True
            self._failing_jobs.add(job.job_id)
            return len(self._failing_jobs) > 1

    def _wait_for_service(self, ticket: JobTicket, job: ClaimedJob,
                          exc: BaseException) -> Outcome:
        """Pause all API work (or renew the pause after a failed probe); count no attempt."""
        with self._lock:
            outage = self._outage_pause()
            renew = not outage or self.api_pause.holds_probe()
            if not outage:
                self._outage_probes = 0
            exponent = min(self._outage_probes, 32)
            delay_s = min(self.retry.max_delay_s, self.retry.base_delay_s * 2.0**exponent)
            self._outage_probes += renew
        if renew:  # else a request sent before the pause began: the pause stands as it is
            detail = getattr(exc, "detail", "") or str(exc)
            self.api_pause.pause(PauseReason.UNREACHABLE, delay_s, detail)
        return Outcome.paused(GATE_RETRY_S, self.held.ticket_again(job, ticket))

    def _outage_pause(self) -> bool:
        state = self.api_pause.state()
        return state.paused and state.reason is PauseReason.UNREACHABLE

    def _retry(self, runner: FailedJobRunner, ticket: JobTicket, job: ClaimedJob,
               exc: BaseException, decision: Decision,
               progress_before: tuple[int, int]) -> Outcome:
        progressed = runner.progress(job) > progress_before
        attempts = 1 if progressed else job.record.attempts + 1
        runner.note_failure(job, attempts, str(exc)[:ERROR_TEXT_MAX])
        if decision is Decision.UNEXPECTED:
            log.error("job %s: unexpected failure", job.job_id, exc_info=exc)
        if not should_retry(self.retry, attempts):
            return self._quarantine(runner, ticket, job, exc)
        retry_after = exc.retry_after_s if isinstance(exc, RateLimitedError) else None
        with self._lock:
            delay_s = next_delay_s(self.retry, attempts, self._rng, retry_after)
        log.warning("job %s [%s] %s: attempt %d failed at %s, retrying in %.1fs: %s",
                    job.job_id, ticket.folder, show_path(job.record.original_relpath), attempts,
                    job.record.state, delay_s, exc,
                    extra=runner.log_fields(job, stage=STAGE_OF.get(job.record.state)))
        return Outcome.retry(delay_s, replace(self.held.ticket_again(job, ticket),
                                              attempt=attempts + 1))

    def _quarantine(self, runner: FailedJobRunner, ticket: JobTicket, job: ClaimedJob,
                    exc: BaseException) -> Outcome:
        reason = quarantine_reason(exc)
        try:
            runner.quarantine(job, exc, reason)
        except (LocalDiskError, OSError) as disk:
            self.folder_pauses.of(ticket.folder).pause(
                PauseReason.DISK, self.retry.disk_pause_s, str(disk))
            log.error("folder %s: cannot quarantine %s, input kept, folder paused: %s",
                      ticket.folder, show_path(job.record.original_relpath), disk)
            return Outcome.paused(self.retry.disk_pause_s, self.held.ticket_again(job, ticket))
        self.held.forget(job)
        return Outcome.quarantined(reason)
