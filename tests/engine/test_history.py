"""Tests for bgcut_watchd.engine.history: the ledger as a record, not a gate.

A real SQLite ledger in tmp_path; its writes are made to fail with ``PRAGMA query_only`` (every
write then fails at once with "attempt to write a readonly database", as a full or read-only
state_dir makes them fail), and made to work again by turning it off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.engine.history import JobHistory
from bgcut_watchd.ledger import Ledger


class FakeMonotonic:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def history(tmp_path: Path, clock: FakeMonotonic) -> Iterator[JobHistory]:
    ledger = JobHistory(tmp_path / "state", monotonic=clock)
    yield ledger
    ledger.close()


def writable(history: JobHistory, on: bool) -> None:
    history._conn.execute(f"PRAGMA query_only = {'OFF' if on else 'ON'}")


def rows(tmp_path: Path) -> dict[str, tuple[str, str | None, str]]:
    with Ledger(tmp_path / "state") as ledger:
        found = ledger._fetch("SELECT job_id, outcome, sha256, outputs FROM jobs", ())
    return {job_id: (outcome, sha256, outputs) for job_id, outcome, sha256, outputs in found}


def run_job(history: JobHistory, job_id: str) -> None:
    """What the job path writes for one job that ends done."""
    history.record_claim(job_id, "studio", f"{job_id}.jpg", "vkey")
    history.update(job_id, sha256=f"sha-{job_id}", stage="upload")
    history.finish_done(job_id, [f"/out/{job_id}.png"], 1.5)


def test_writes_that_fail_raise_nothing_and_are_written_once_the_ledger_works(
    history: JobHistory, tmp_path: Path,
) -> None:
    writable(history, False)
    run_job(history, "j1")  # raises nothing
    assert history.problem is not None and "readonly" in history.problem
    assert history.unwritten == 1 and rows(tmp_path) == {}
    writable(history, True)
    assert history.catch_up() == 0
    assert rows(tmp_path) == {"j1": ("done", "sha-j1", '["/out/j1.png"]')}
    assert history.problem is None


def test_the_next_write_that_works_catches_up_in_order(
    history: JobHistory, tmp_path: Path, clock: FakeMonotonic,
) -> None:
    writable(history, False)
    run_job(history, "j1")
    writable(history, True)
    clock.now_s += 5.0  # past the retry throttle
    history.record_claim("j2", "studio", "j2.jpg", "vkey")
    assert set(rows(tmp_path)) == {"j1", "j2"} and rows(tmp_path)["j1"][0] == "done"
    assert history.unwritten == 0


def test_the_trouble_is_logged_once_not_once_per_job(
    history: JobHistory, clock: FakeMonotonic, caplog: pytest.LogCaptureFixture,
) -> None:
    writable(history, False)
    with caplog.at_level(logging.WARNING, "bgcut_watchd.engine"):
        for n in range(5):
            clock.now_s += 5.0  # each job tries the ledger again
            run_job(history, f"j{n}")
        writable(history, True)
        history.catch_up()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot write the ledger" in m for m in messages) == 1
    assert sum("written again" in m for m in messages) == 1
    assert history.unwritten == 0


def test_while_in_trouble_a_job_does_not_wait_for_the_ledger_each_time(
    history: JobHistory, clock: FakeMonotonic,
) -> None:
    writable(history, False)
    run_job(history, "j1")
    writable(history, True)  # works again, but not tried before RETRY_S has passed
    run_job(history, "j2")
    assert history.unwritten == 2
    assert history.catch_up() == 0  # the service's periodic call tries at once


def test_a_job_whose_row_vanished_is_recorded_again_from_its_claim(
    history: JobHistory, tmp_path: Path,
) -> None:
    history.record_claim("j1", "studio", "j1.jpg", "vkey")
    (tmp_path / "state" / "ledger.sqlite3").unlink()  # state_dir emptied under the daemon
    history.reopen()
    history.finish_done("j1", ["/out/j1.png"], 1.0)
    assert rows(tmp_path) == {"j1": ("done", None, '["/out/j1.png"]')}


def test_a_failed_duplicate_lookup_is_no_duplicate(history: JobHistory) -> None:
    history._conn.execute("DROP TABLE jobs")
    assert history.earlier_outputs("sha", "vkey") == []


def test_memory_is_bounded(tmp_path: Path, clock: FakeMonotonic) -> None:
    history = JobHistory(tmp_path / "state", max_pending=3, monotonic=clock)
    try:
        writable(history, False)
        for n in range(5):
            run_job(history, f"j{n}")
        assert history.unwritten == 3
        writable(history, True)
        history.catch_up()
        assert set(rows(tmp_path)) == {"j2", "j3", "j4"}
    finally:
        history.close()
