"""The claimed input stays as claimed (``job.settle``): real work areas, real files, a real
writer (this test, holding a descriptor open), the checks of ``InputFreeze``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.errors import ApiInputError, InputUnsettledError, LocalInputError
from bgcut_watchd.job.journal import JobState, Journal
from bgcut_watchd.job.settle import (
    EXTRA_SETTLE_FACTOR,
    InputFreeze,
    may_be_half_written,
    written_within,
)
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea

STABILITY_S = 0.5
SECOND_NS = 1_000_000_000


@pytest.fixture
def job(tmp_path: Path) -> Iterator[ClaimedJob]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "scan.jpg").write_bytes(b"first half")
    claimed = WorkArea(inbox).claim("studio", inbox / "scan.jpg")
    assert claimed is not None
    yield claimed
    claimed.release()


def freeze() -> InputFreeze:
    return InputFreeze("studio", STABILITY_S)


def test_an_unchanged_input_nobody_writes_goes_on(job: ClaimedJob, tmp_path: Path) -> None:
    before = job.record
    freeze().ensure_unchanged(job, tmp_path / "out", look_for_writers=True)
    assert job.record == before


def test_a_changed_input_starts_over_from_the_claim(job: ClaimedJob, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    leftover = out_dir / f".bgcut-{job.job_id}-0.part"
    leftover.write_bytes(b"an output of the first half")
    job.save(job.record.advance(JobState.UPLOADED, sha256="a" * 64, remote_input="r/in.jpg"))
    with job.input_path.open("ab") as stream:  # the writer's second half, after the claim
        stream.write(b" and the second half")
    with pytest.raises(InputUnsettledError) as caught:
        freeze().ensure_unchanged(job, out_dir)
    assert caught.value.retry_in_s == STABILITY_S
    record = Journal(job.job_dir).read()
    assert record.state is JobState.CLAIMED and record.remote_round == 1
    assert (record.sha256, record.remote_input) == (None, None)
    assert record.input_fingerprint is not None and record.input_fingerprint[0] == 30
    assert not leftover.exists()
    freeze().ensure_unchanged(job, out_dir)  # quiet since: goes on


def test_an_input_open_for_writing_waits_for_its_writer(job: ClaimedJob, tmp_path: Path) -> None:
    with job.input_path.open("ab"):  # a writer that keeps the file open, paused
        with pytest.raises(InputUnsettledError, match="open for writing"):
            freeze().ensure_unchanged(job, tmp_path / "out", look_for_writers=True)
        freeze().ensure_unchanged(job, tmp_path / "out")  # not looked for: goes on
    with job.input_path.open("rb"):  # a reader is no writer
        freeze().ensure_unchanged(job, tmp_path / "out", look_for_writers=True)


def test_a_recent_truncated_verdict_gets_one_more_settling_period(
        job: ClaimedJob, tmp_path: Path) -> None:
    verdict = LocalInputError("image file is truncated", reason="invalid_image")
    with pytest.raises(InputUnsettledError) as caught:
        freeze().before_blaming(job, tmp_path / "out", verdict)
    assert caught.value.retry_in_s == EXTRA_SETTLE_FACTOR * STABILITY_S
    assert Journal(job.job_dir).read().extra_settle_used
    freeze().before_blaming(job, tmp_path / "out", verdict)  # once: then the verdict stands


def test_an_old_file_or_another_verdict_is_blamed_at_once(
        job: ClaimedJob, tmp_path: Path) -> None:
    os.utime(job.input_path, ns=(0, time.time_ns() - 3600 * SECOND_NS))
    job.save(job.record.advance(JobState.CLAIMED, input_fingerprint=None))
    truncated = LocalInputError("image file is truncated", reason="invalid_image")
    freeze().before_blaming(job, tmp_path / "out", truncated)  # written an hour ago
    os.utime(job.input_path, ns=(0, time.time_ns()))
    job.save(job.record.advance(JobState.CLAIMED, input_fingerprint=None))
    freeze().before_blaming(job, tmp_path / "out", LocalInputError("GIF", "unsupported_format"))
    freeze().before_blaming(job, tmp_path / "out", ApiInputError("process", "Invalid", 400))


def test_written_within_ignores_modification_times_in_the_future() -> None:
    now_ns = 1_000 * SECOND_NS
    assert written_within((1, now_ns - SECOND_NS, 1), 1.5, now_ns)
    assert not written_within((1, now_ns - 2 * SECOND_NS, 1), 1.5, now_ns)
    assert not written_within((1, now_ns + SECOND_NS, 1), 1.5, now_ns)


def test_may_be_half_written_only_for_truncated_or_empty_verdicts(job: ClaimedJob) -> None:
    now_ns = time.time_ns()
    recent = (10, now_ns - SECOND_NS // 10, 1)
    for reason, expected in [("invalid_image", True), ("empty_file", True),
                             ("too_large", False), ("unsupported_format", False)]:
        exc = LocalInputError("x", reason=reason)
        assert may_be_half_written(exc, job.record, recent, STABILITY_S, now_ns) is expected
