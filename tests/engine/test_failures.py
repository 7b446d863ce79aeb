"""Tests for bgcut_watchd.engine.failures: every exception class through the failure policy,
with a fake job and a fake runner, asserting the decision (retry with which delay, pause which
scope, quarantine with which reason)."""

from __future__ import annotations

import inspect
import logging
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bgcut_watchd import errors
from bgcut_watchd.config.model import RetryConfig
from bgcut_watchd.control.pause import FolderPauses, PauseReason, ProbedPause
from bgcut_watchd.control.tickets import JobTicket, OutcomeKind
from bgcut_watchd.engine.failures import GATE_RETRY_S, Decision, FailurePolicy, classify
from bgcut_watchd.job.journal import JobRecord, JobState

RETRY = RetryConfig(max_attempts=3, base_delay_s=2.0, max_delay_s=60.0, auth_pause_s=300.0,
                    credits_pause_s=900.0, disk_pause_s=45.0)
FOLDER = "studio"
Parts = tuple["FailurePolicy", ProbedPause, FolderPauses, "FakeHeld"]


@dataclass
class FakeJob:
    record: JobRecord

    @property
    def job_id(self) -> str:
        return self.record.job_id

    @property
    def input_path(self) -> Path:
        return Path(f"/inbox/.bgcut-work/{self.job_id}/input.jpg")


@dataclass
class FakeRunner:
    """Records what the policy asked of the job; ``moved_on`` fakes progress since the start."""

    moved_on: bool = False
    quarantine_fails: bool = False
    quarantined: list[BaseException] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # the reason the policy gave each
    failures: list[tuple[int, str]] = field(default_factory=list)

    def progress(self, job: FakeJob) -> tuple[int, int]:
        return (2, 1) if self.moved_on else (2, 0)

    def note_failure(self, job: FakeJob, attempts: int, error: str) -> None:
        self.failures.append((attempts, error))
        job.record = job.record.advance(job.record.state, attempts=attempts, last_error=error)

    def quarantine(self, job: FakeJob, exc: BaseException, reason: str) -> None:
        if self.quarantine_fails:
            raise errors.LocalDiskError("quarantining input: No space left on device")
        self.quarantined.append(exc)
        self.reasons.append(reason)

    def log_fields(self, job: FakeJob, stage: str | None = None,
                   reason: str | None = None) -> dict[str, str]:
        return {"job_id": job.job_id}


@dataclass
class FakeHeld:
    forgotten: list[str] = field(default_factory=list)

    def ticket_again(self, job: FakeJob, ticket: JobTicket) -> JobTicket:
        return JobTicket(ticket.folder, job.input_path, ticket.attempt, job.job_id)

    def forget(self, job: FakeJob) -> None:
        self.forgotten.append(job.job_id)


@pytest.fixture
def parts() -> tuple[FailurePolicy, ProbedPause, FolderPauses, FakeHeld]:
    api_pause, folder_pauses, held = ProbedPause(), FolderPauses(), FakeHeld()
    policy = FailurePolicy(RETRY, api_pause, folder_pauses, held, rng=random.Random(3))
    return policy, api_pause, folder_pauses, held


def job(attempts: int = 1, job_id: str = "j1") -> FakeJob:
    record = JobRecord.start(job_id, FOLDER, "sub/a.jpg", "2026-01-01T00:00:00+00:00")
    return FakeJob(record.advance(JobState.UPLOADED, attempts=attempts))


TICKET = JobTicket(FOLDER, Path("/inbox/sub/a.jpg"))


def test_an_input_error_quarantines_at_once(parts: Parts) -> None:
    policy, api_pause, folder_pauses, held = parts
    runner, exc = FakeRunner(), errors.ApiInputError("process", "Invalid image format", 400)
    outcome = policy.outcome(runner, TICKET, job(), exc, (2, 0))
    assert outcome.kind is OutcomeKind.QUARANTINED
    assert runner.quarantined == [exc] and runner.failures == []  # no attempt spent
    assert held.forgotten == ["j1"]
    assert not api_pause.state().paused and folder_pauses.snapshot() == {}


@pytest.mark.parametrize("exc", [
    errors.InputUnsettledError("the input changed since it was claimed", 0.7),
    errors.OutputsPendingError("process: no answer; looking for its outputs", 0.7),
])
def test_not_ready_runs_the_job_again_later_without_spending_an_attempt(
        parts: Parts, exc: errors.NotReadyError) -> None:
    policy, api_pause, folder_pauses, held = parts
    runner, claimed = FakeRunner(), job(attempts=2)
    outcome = policy.outcome(runner, TICKET, claimed, exc, (2, 0))
    assert outcome.kind is OutcomeKind.PAUSED and outcome.delay_s == 0.7
    assert outcome.ticket is not None and outcome.ticket.job_id == "j1"
    assert runner.failures == [] and runner.quarantined == [] and held.forgotten == []
    assert claimed.record.attempts == 2
    assert not api_pause.state().paused and folder_pauses.snapshot() == {}


@pytest.mark.parametrize(("exc", "reason", "pause_s"), [
    (errors.AuthError("upload", "Invalid token", 401), PauseReason.AUTH, 300.0),
    (errors.CreditsError("process", "Insufficient credits", 402), PauseReason.CREDITS, 900.0),
])
def test_the_key_or_the_account_pause_all_api_work_and_quarantine_nothing(
        parts: Parts, exc: errors.PauseError, reason: PauseReason, pause_s: float) -> None:
    policy, api_pause, _, _ = parts
    runner, claimed = FakeRunner(), job()
    outcome = policy.outcome(runner, TICKET, claimed, exc, (2, 0))
    assert outcome.kind is OutcomeKind.PAUSED and outcome.delay_s == GATE_RETRY_S
    assert outcome.ticket is not None and outcome.ticket.job_id == "j1"  # the job goes on
    state = api_pause.state()
    assert state.paused and state.reason is reason and state.detail == exc.detail
    assert state.probe_in_s == pytest.approx(pause_s, abs=1.0)
    assert runner.quarantined == [] and runner.failures == []


def test_a_disk_error_pauses_only_that_folder_and_keeps_the_input(parts: Parts) -> None:
    policy, api_pause, folder_pauses, _ = parts
    runner = FakeRunner()
    exc = errors.LocalDiskError("writing an output: No space left on device")
    outcome = policy.outcome(runner, TICKET, job(), exc, (2, 0))
    assert outcome.kind is OutcomeKind.PAUSED and outcome.delay_s == RETRY.disk_pause_s
    assert set(folder_pauses.snapshot()) == {FOLDER}
    assert folder_pauses.snapshot()[FOLDER].reason is PauseReason.DISK
    assert not api_pause.state().paused and runner.quarantined == []


def test_a_service_error_retries_with_backoff_and_counts_the_attempt(parts: Parts) -> None:
    policy, _, _, _ = parts
    runner = FakeRunner()
    outcome = policy.outcome(runner, TICKET, job(attempts=1),
                             errors.ServiceError("upload", "HTTP 503"), (2, 0))
    assert outcome.kind is OutcomeKind.RETRY
    assert 0.0 <= outcome.delay_s <= 4.0  # full jitter after the 2nd failure: [0, 2 * 2]
    assert runner.failures == [(2, "upload: HTTP 503")]
    assert outcome.ticket is not None and outcome.ticket.attempt == 3


def test_a_429_waits_at_least_its_retry_after(parts: Parts) -> None:
    policy, _, _, _ = parts
    exc = errors.RateLimitedError("process", "slow down", retry_after_s=30.0)
    outcome = policy.outcome(FakeRunner(), TICKET, job(), exc, (2, 0))
    assert outcome.kind is OutcomeKind.RETRY and outcome.delay_s >= 30.0


def test_after_max_attempts_without_progress_it_quarantines(parts: Parts) -> None:
    policy, _, _, _ = parts
    runner, exc = FakeRunner(), errors.ServiceError("process", "HTTP 500")
    outcome = policy.outcome(runner, TICKET, job(attempts=2), exc, (2, 0))
    assert outcome.kind is OutcomeKind.QUARANTINED
    assert runner.failures == [(3, "process: HTTP 500")] and runner.quarantined == [exc]


def test_progress_starts_the_count_afresh(parts: Parts) -> None:
    policy, _, _, _ = parts
    runner = FakeRunner(moved_on=True)  # e.g. one more download finished before the failure
    outcome = policy.outcome(runner, TICKET, job(attempts=2),
                             errors.ServiceError("download", "reset"), (2, 0))
    assert outcome.kind is OutcomeKind.RETRY and runner.failures[0][0] == 1


def test_a_bug_is_retried_with_its_traceback_then_quarantined(
        parts: Parts, caplog: pytest.LogCaptureFixture) -> None:
    policy, _, _, _ = parts
    runner = FakeRunner()
    with caplog.at_level(logging.ERROR):
        first = policy.outcome(runner, TICKET, job(attempts=0), KeyError("oops"), (2, 0))
    assert first.kind is OutcomeKind.RETRY
    assert any(r.exc_info for r in caplog.records if "unexpected failure" in r.getMessage())
    last = policy.outcome(runner, TICKET, job(attempts=2), KeyError("oops"), (2, 0))
    assert last.kind is OutcomeKind.QUARANTINED


def test_a_quarantine_that_cannot_be_written_pauses_the_folder(parts: Parts) -> None:
    policy, _, folder_pauses, held = parts
    runner = FakeRunner(quarantine_fails=True)
    outcome = policy.outcome(runner, TICKET, job(),
                             errors.LocalInputError("not an image", "invalid_image"), (2, 0))
    assert outcome.kind is OutcomeKind.PAUSED and outcome.delay_s == RETRY.disk_pause_s
    assert set(folder_pauses.snapshot()) == {FOLDER} and held.forgotten == []


def test_a_failed_probe_without_a_verdict_hands_the_probe_on(parts: Parts) -> None:
    policy, api_pause, _, _ = parts
    api_pause.pause(PauseReason.AUTH, 0.0, "Invalid token")
    assert api_pause.try_enter() is None  # this thread is the probe
    others: list[float | None] = []
    probe_other = threading.Thread(target=lambda: others.append(api_pause.try_enter()))
    probe_other.start()
    probe_other.join(5)
    assert others[0] is not None  # someone else is probing
    policy.outcome(FakeRunner(), TICKET, job(), errors.ServiceError("upload", "HTTP 502"), (2, 0))
    probe_other = threading.Thread(target=lambda: others.append(api_pause.try_enter()))
    probe_other.start()
    probe_other.join(5)
    assert others[1] is None and api_pause.state().paused  # the next one probes at once


# Every exception class of errors.py must appear here: a new class fails this test until
# someone decides, on purpose, what it means.
EXPECTED = {
    "BgcutError": Decision.UNEXPECTED,
    "ConfigError": Decision.UNEXPECTED,
    "UsageError": Decision.UNEXPECTED,
    "InputError": Decision.QUARANTINE,
    "LocalInputError": Decision.QUARANTINE,
    "ApiError": Decision.UNEXPECTED,
    "ApiInputError": Decision.QUARANTINE,
    "TransientError": Decision.RETRY,
    "ServiceError": Decision.RETRY,
    "AmbiguousOutcomeError": Decision.RETRY,  # the runner looks for outputs before re-sending
    "UnreachableError": Decision.PAUSE_UNREACHABLE,  # no file's fault: the service is away
    "BadOutputError": Decision.RETRY,  # fetched again, the process call redone once; the
                                       # runner quarantines it as "bad_output" in the end
    "RateLimitedError": Decision.RETRY,
    "RemoteFileMissingError": Decision.RETRY,
    "PauseError": Decision.PAUSE_AUTH,
    "AuthError": Decision.PAUSE_AUTH,
    "CreditsError": Decision.PAUSE_CREDITS,
    "BudgetExceededError": Decision.PAUSE_BUDGET,
    "LocalDiskError": Decision.PAUSE_FOLDER,
    "QuarantineUnfinishedError": Decision.QUARANTINE,
    "NotReadyError": Decision.WAIT,
    "InputUnsettledError": Decision.WAIT,
    "OutputsPendingError": Decision.WAIT,
}


def _error_classes() -> dict[str, type[BaseException]]:
    return {
        name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }


def test_the_table_covers_every_class_of_errors_py() -> None:
    assert set(_error_classes()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_classify_by_class(name: str) -> None:
    cls = _error_classes()[name]
    # No __init__: classify must not depend on the message or any attribute.
    assert classify(cls.__new__(cls)) is EXPECTED[name]


def test_classify_ignores_the_message() -> None:
    assert classify(errors.ServiceError("upload", "401 invalid api key", 503)) is Decision.RETRY
    assert classify(errors.AuthError("upload", "server error, retry", 401)) is Decision.PAUSE_AUTH


@pytest.mark.parametrize("exc", [ValueError("bug"), OSError(5, "EIO"), KeyError("x"),
                                 SystemExit(1)])
def test_unexpected_exceptions_retry_and_are_counted(exc: BaseException) -> None:
    assert classify(exc) is Decision.UNEXPECTED


def test_the_guard_hook_pauses_at_once_and_the_outcome_does_not_pause_twice(
        parts: Parts, caplog: pytest.LogCaptureFixture) -> None:
    policy, api_pause, _, _ = parts
    exc = errors.CreditsError("process", "Insufficient credits", 402)
    with caplog.at_level(logging.WARNING):
        policy.on_api_failure(exc)
        assert api_pause.state().reason is PauseReason.CREDITS
        outcome = policy.outcome(FakeRunner(), TICKET, job(), exc, (2, 0))
    assert outcome.kind is OutcomeKind.PAUSED
    assert sum("paused" in r.getMessage() for r in caplog.records) == 1
    policy.on_api_failure(errors.ServiceError("upload", "HTTP 503"))  # no pause for a 503
    assert api_pause.state().reason is PauseReason.CREDITS


# --- a service-wide outage is a pause, not a quarantine --------------------------------------

def test_an_unreachable_service_pauses_all_api_work_and_counts_no_attempt(parts: Parts) -> None:
    policy, api_pause, _, _ = parts
    runner = FakeRunner()
    exc = errors.UnreachableError("upload", "request not sent: ConnectionRefusedError")
    outcome = policy.outcome(runner, TICKET, job(attempts=2), exc, (2, 0))
    assert outcome.kind is OutcomeKind.PAUSED and outcome.delay_s == GATE_RETRY_S
    assert outcome.ticket is not None and outcome.ticket.job_id == "j1"
    state = api_pause.state()
    assert state.paused and state.reason is PauseReason.UNREACHABLE
    assert state.probe_in_s == pytest.approx(RETRY.base_delay_s, abs=0.5)
    assert runner.failures == [] and runner.quarantined == []  # attempts untouched


def test_an_outage_never_quarantines_and_each_failed_probe_backs_off() -> None:
    now_s = [0.0]
    api_pause = ProbedPause(clock=lambda: now_s[0])
    policy = FailurePolicy(RETRY, api_pause, FolderPauses(), FakeHeld(), rng=random.Random(3))
    runner = FakeRunner()
    exc = errors.UnreachableError("upload", "request not sent")
    policy.outcome(runner, TICKET, job(attempts=2), exc, (2, 0))
    waits = []
    for _ in range(10):  # far beyond max_attempts (3)
        now_s[0] += api_pause.state().probe_in_s  # the pause expires: the next caller probes
        assert api_pause.try_enter() is None and api_pause.holds_probe()
        outcome = policy.outcome(runner, TICKET, job(attempts=2), exc, (2, 0))
        assert outcome.kind is OutcomeKind.PAUSED
        waits.append(api_pause.state().probe_in_s)
    assert runner.quarantined == [] and runner.failures == []
    assert waits == sorted(waits) and waits[-1] == pytest.approx(RETRY.max_delay_s, abs=0.5)
    assert waits[0] == pytest.approx(2 * RETRY.base_delay_s, abs=0.5)


def test_a_failure_in_flight_when_the_pause_began_does_not_renew_it(parts: Parts) -> None:
    policy, api_pause, _, _ = parts
    exc = errors.UnreachableError("upload", "request not sent")
    policy.outcome(FakeRunner(), TICKET, job(), exc, (2, 0))
    before = api_pause.state().until_s
    other: list[object] = []
    worker = threading.Thread(target=lambda: other.append(
        policy.outcome(FakeRunner(), TICKET, job(job_id="j2"), exc, (2, 0))))
    worker.start()
    worker.join(5)
    assert api_pause.state().until_s == before  # not a probe: no backoff step spent


def test_service_failures_of_two_jobs_with_no_answer_between_pause_instead_of_retrying(
        parts: Parts) -> None:
    policy, api_pause, _, _ = parts
    runner = FakeRunner()
    first = policy.outcome(runner, TICKET, job(job_id="j1"),
                           errors.ServiceError("upload", "HTTP 503", 503), (2, 0))
    assert first.kind is OutcomeKind.RETRY and not api_pause.state().paused  # one job: its own
    second = policy.outcome(runner, TICKET, job(job_id="j2"),
                            errors.ServiceError("upload", "HTTP 503", 503), (2, 0))
    assert second.kind is OutcomeKind.PAUSED
    assert api_pause.state().reason is PauseReason.UNREACHABLE
    assert [attempts for attempts, _ in runner.failures] == [2]  # only the first counted


def test_a_file_that_fails_while_others_succeed_still_exhausts_its_retries(
        parts: Parts) -> None:
    policy, api_pause, _, _ = parts
    runner = FakeRunner()
    exc = errors.ServiceError("process", "HTTP 500", 500)
    policy.outcome(runner, TICKET, job(attempts=0, job_id="bad"), exc, (2, 0))
    policy.on_api_success()  # another job's call worked
    other = policy.outcome(runner, TICKET, job(attempts=0, job_id="other"), exc, (2, 0))
    assert other.kind is OutcomeKind.RETRY  # "bad"'s failure was before the success
    policy.on_api_success()
    last = policy.outcome(runner, TICKET, job(attempts=2, job_id="bad"), exc, (2, 0))
    assert last.kind is OutcomeKind.QUARANTINED and not api_pause.state().paused


def test_an_answer_that_is_not_a_service_failure_ends_the_streak(parts: Parts) -> None:
    policy, api_pause, _, _ = parts
    exc = errors.ServiceError("upload", "HTTP 503", 503)
    policy.outcome(FakeRunner(), TICKET, job(job_id="j1"), exc, (2, 0))
    policy.on_api_failure(errors.ApiInputError("upload", "Invalid image", 400))
    outcome = policy.outcome(FakeRunner(), TICKET, job(job_id="j2"), exc, (2, 0))
    assert outcome.kind is OutcomeKind.RETRY and not api_pause.state().paused


# Every exception class through the policy itself (not only through ``classify``): one
# instance each, a fresh policy, and what the job, the API and the folder end up with:
# the outcome, the API pause's reason, whether the folder is paused, whether an attempt was
# spent, whether the input went to quarantine, the error file's reason when it does (at once,
# or for a retried class once its attempts are spent), and the retry's delay bounds in seconds
# (full jitter after the 2nd failure: [0, 2 * base_delay_s]; a 429 at least its Retry-After).
JITTER = (0.0, 2 * RETRY.base_delay_s)
THROUGH_THE_POLICY: list[tuple[BaseException, OutcomeKind, PauseReason | None, bool, bool,
                               bool, str | None, tuple[float, float] | None]] = [
    (errors.InputError("unreadable"),
     OutcomeKind.QUARANTINED, None, False, False, True, "invalid_input", None),
    (errors.LocalInputError("not an image", "invalid_image"),
     OutcomeKind.QUARANTINED, None, False, False, True, "invalid_image", None),
    (errors.ApiInputError("process", "Invalid image format", 400),
     OutcomeKind.QUARANTINED, None, False, False, True, "rejected_by_api", None),
    (errors.QuarantineUnfinishedError("not an image", "too_large", "validate"),
     OutcomeKind.QUARANTINED, None, False, False, True, "too_large", None),
    (errors.InputUnsettledError("the input changed since it was claimed", 0.5),
     OutcomeKind.PAUSED, None, False, False, False, None, None),
    (errors.OutputsPendingError("process: no answer yet", 0.5),
     OutcomeKind.PAUSED, None, False, False, False, None, None),
    (errors.TransientError("upload", "reset"),
     OutcomeKind.RETRY, None, False, True, False, "retries_exhausted", JITTER),
    (errors.ServiceError("upload", "HTTP 503", 503),
     OutcomeKind.RETRY, None, False, True, False, "retries_exhausted", JITTER),
    (errors.AmbiguousOutcomeError("process", "read timed out"),
     OutcomeKind.RETRY, None, False, True, False, "retries_exhausted", JITTER),
    (errors.BadOutputError("download", "an HTML page, not a PNG"),
     OutcomeKind.RETRY, None, False, True, False, "bad_output", JITTER),
    (errors.RateLimitedError("process", "slow down", 429, retry_after_s=5.0),
     OutcomeKind.RETRY, None, False, True, False, "retries_exhausted", (5.0, 5.0)),
    (errors.RemoteFileMissingError("process", "file not found", 404),
     OutcomeKind.RETRY, None, False, True, False, "retries_exhausted", JITTER),
    (errors.UnreachableError("upload", "connection refused"),
     OutcomeKind.PAUSED, PauseReason.UNREACHABLE, False, False, False, None, None),
    (errors.PauseError("upload", "refused for the account", 403),
     OutcomeKind.PAUSED, PauseReason.AUTH, False, False, False, None, None),
    (errors.AuthError("upload", "Invalid token", 401),
     OutcomeKind.PAUSED, PauseReason.AUTH, False, False, False, None, None),
    (errors.CreditsError("process", "Insufficient credits", 402),
     OutcomeKind.PAUSED, PauseReason.CREDITS, False, False, False, None, None),
    (errors.BudgetExceededError("daily budget of 5 credits reached", 3600.0),
     OutcomeKind.PAUSED, PauseReason.BUDGET, False, False, False, None, None),
    (errors.LocalDiskError("writing an output: No space left on device"),
     OutcomeKind.PAUSED, None, True, False, False, None, None),
    (errors.BgcutError("a bug"),
     OutcomeKind.RETRY, None, False, True, False, "internal_error", JITTER),
    (errors.ConfigError(["a bug: a ConfigError inside a job"]),
     OutcomeKind.RETRY, None, False, True, False, "internal_error", JITTER),
    (errors.UsageError("a bug: a UsageError inside a job"),
     OutcomeKind.RETRY, None, False, True, False, "internal_error", JITTER),
    (errors.ApiError("process", "a bug"),
     OutcomeKind.RETRY, None, False, True, False, "internal_error", JITTER),
    (KeyError("a bug of ours"),
     OutcomeKind.RETRY, None, False, True, False, "internal_error", JITTER),
]


def test_the_policy_table_covers_every_class_of_errors_py() -> None:
    assert {type(row[0]).__name__ for row in THROUGH_THE_POLICY} == set(EXPECTED) - {
        "NotReadyError"} | {"KeyError"}  # abstract: only its subclasses are raised


@pytest.mark.parametrize(("exc", "kind", "api_reason", "folder_paused", "attempt_spent",
                          "quarantined", "reason", "delay_s"), THROUGH_THE_POLICY,
                         ids=[type(row[0]).__name__ for row in THROUGH_THE_POLICY])
def test_each_exception_class_through_the_failure_policy(
        parts: Parts, exc: BaseException, kind: OutcomeKind, api_reason: PauseReason | None,
        folder_paused: bool, attempt_spent: bool, quarantined: bool, reason: str | None,
        delay_s: tuple[float, float] | None) -> None:
    policy, api_pause, folder_pauses, held = parts
    runner, claimed = FakeRunner(), job(attempts=1)
    outcome = policy.outcome(runner, TICKET, claimed, exc, (2, 0))
    assert outcome.kind is kind
    state = api_pause.state()
    assert (state.reason if state.paused else None) is api_reason
    assert (FOLDER in folder_pauses.snapshot()) is folder_paused
    assert bool(runner.failures) is attempt_spent
    assert (runner.quarantined == [exc]) is quarantined
    assert (held.forgotten == ["j1"]) is quarantined  # a job goes on unless it ended
    if quarantined:
        assert runner.reasons == [reason] and outcome.reason == reason
    else:
        assert outcome.ticket is not None and outcome.ticket.job_id == "j1"
        assert outcome.reason is None
    if isinstance(exc, errors.BudgetExceededError):  # paused until the budget's day ends
        assert state.probe_in_s == pytest.approx(exc.pause_s, abs=1.0)
    if kind is OutcomeKind.RETRY:
        assert delay_s is not None and delay_s[0] <= outcome.delay_s <= delay_s[1]
        # ... and once its attempts are spent, the error file's reason
        last = policy.outcome(runner, TICKET, job(attempts=RETRY.max_attempts - 1), exc, (2, 0))
        assert last.kind is OutcomeKind.QUARANTINED
        assert runner.reasons == [reason] and last.reason == reason
