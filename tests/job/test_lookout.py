"""The look-out for an unanswered process call's outputs (``job.lookout``): a real job in a
real work area, a fake wall clock, outputs that exist or not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bgcut_watchd.clock import iso_utc
from bgcut_watchd.errors import OutputsPendingError
from bgcut_watchd.job.journal import JobState, Journal
from bgcut_watchd.job.lookout import (
    LOOK_MIN_S,
    PROCESS_AMBIGUOUS,
    earlier_call_ran,
    mark_ambiguous,
    next_look_s,
)
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_S = 300.0
WANTED = ["bgcut-watchd/j/out/0-full.png", "bgcut-watchd/j/out/1-thumb.webp"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def job(tmp_path: Path) -> Iterator[ClaimedJob]:
    (tmp_path / "in.jpg").write_bytes(b"img")
    claimed = WorkArea(tmp_path).claim("studio", tmp_path / "in.jpg")
    assert claimed is not None
    claimed.save(claimed.record.advance(JobState.UPLOADED, remote_input="r/in.jpg"))
    mark_ambiguous(claimed, iso_utc(T0))
    yield claimed
    claimed.release()


def test_outputs_found_mean_the_call_ran_and_is_not_paid_again(job: ClaimedJob) -> None:
    assert earlier_call_ran(job, WANTED, lambda: True, WINDOW_S, Clock(), "studio") is True
    record = Journal(job.job_dir).read()
    assert record.state is JobState.PROCESSED and record.remote_outputs == tuple(WANTED)


def test_no_outputs_yet_means_look_again_later_with_growing_waits(job: ClaimedJob) -> None:
    clock = Clock()
    waits = []
    for waited_s in (0.0, 10.0, 100.0, 299.0):
        clock.now = T0 + timedelta(seconds=waited_s)
        with pytest.raises(OutputsPendingError) as caught:
            earlier_call_ran(job, WANTED, lambda: False, WINDOW_S, clock, "studio")
        waits.append(caught.value.retry_in_s)
    assert waits == [LOOK_MIN_S, 5.0, 50.0, 1.0]  # the last look at the window's end
    assert Journal(job.job_dir).read().state is JobState.UPLOADED


def test_after_the_window_the_call_is_sent_again(job: ClaimedJob) -> None:
    clock = Clock()
    clock.now = T0 + timedelta(seconds=WINDOW_S)
    assert earlier_call_ran(job, WANTED, lambda: False, WINDOW_S, clock, "studio") is False


def test_the_window_survives_a_restart_through_the_journal(job: ClaimedJob) -> None:
    again = Journal(job.job_dir).read()
    assert (again.last_stage, again.ambiguous_since) == (PROCESS_AMBIGUOUS, iso_utc(T0))


def test_an_old_journal_without_a_start_starts_the_window_now(job: ClaimedJob) -> None:
    job.save(job.record.advance(JobState.UPLOADED, ambiguous_since=None))
    clock = Clock()
    clock.now = T0 + timedelta(days=1)
    with pytest.raises(OutputsPendingError):
        earlier_call_ran(job, WANTED, lambda: False, WINDOW_S, clock, "studio")
    assert job.record.ambiguous_since == iso_utc(clock.now)


def test_next_look_never_passes_the_window() -> None:
    assert next_look_s(0.0, 1.0) == LOOK_MIN_S
    assert next_look_s(0.9, 1.0) == pytest.approx(0.1)
