"""The stability gate with a fake clock: quiet time, resets, forgetting, bounded memory."""

from __future__ import annotations

import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from bgcut_watchd.intake.stability import StabilityTracker, quiet_period_s, revalidated_stat

A = Path("/in/a.jpg")
B = Path("/in/b.jpg")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_due_only_after_quiet_time_then_removed(clock: FakeClock) -> None:
    tracker = StabilityTracker(2.0, clock)
    assert tracker.observe(A, 10, 1) is True
    assert tracker.due(101.99) == []
    assert tracker.due(102.0) == [A]
    assert A not in tracker
    assert tracker.due(200.0) == []


def test_a_change_restarts_the_timer(clock: FakeClock) -> None:
    tracker = StabilityTracker(2.0, clock)
    tracker.observe(A, 10, 1)
    clock.now = 101.5
    assert tracker.observe(A, 20, 1) is True  # size changed
    assert tracker.due(102.0) == []
    clock.now = 103.0
    assert tracker.observe(A, 20, 2) is True  # mtime changed
    assert tracker.due(104.9) == []
    assert tracker.due(105.0) == [A]


def test_an_unchanged_observation_keeps_the_timer(clock: FakeClock) -> None:
    tracker = StabilityTracker(2.0, clock)
    tracker.observe(A, 10, 1)
    clock.now = 101.9
    assert tracker.observe(A, 10, 1) is False
    assert tracker.due(102.0) == [A]


def test_forget_and_next_deadline(clock: FakeClock) -> None:
    tracker = StabilityTracker(2.0, clock)
    assert tracker.next_deadline() is None
    tracker.observe(A, 1, 1)
    clock.now = 101.0
    tracker.observe(B, 1, 1)
    assert tracker.next_deadline() == 102.0
    tracker.forget(A)
    tracker.forget(Path("/never/seen.jpg"))
    assert tracker.next_deadline() == 103.0
    assert tracker.due(1000.0) == [B]
    assert tracker.next_deadline() is None


def test_oldest_first_and_max_items(clock: FakeClock) -> None:
    tracker = StabilityTracker(1.0, clock)
    paths = [Path(f"/in/{i}.jpg") for i in range(5)]
    for i, path in enumerate(reversed(paths)):
        clock.now = 100.0 + i
        tracker.observe(path, 1, 1)
    assert tracker.due(1000.0, max_items=2) == [paths[4], paths[3]]
    assert len(tracker) == 3
    assert tracker.due(1000.0) == [paths[2], paths[1], paths[0]]


def test_observations_carry_what_was_seen(clock: FakeClock) -> None:
    tracker = StabilityTracker(0.0, clock)
    tracker.observe(A, 123, 456)
    (seen,) = tracker.due_observations(100.0)
    assert (seen.path, seen.size, seen.mtime_ns, seen.changed_at) == (A, 123, 456, 100.0)


def test_negative_stability_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="stability_s"):
        StabilityTracker(-1.0, clock)


def test_memory_stays_bounded_for_a_path_changing_many_times(clock: FakeClock) -> None:
    tracker = StabilityTracker(2.0, clock)
    tracker.observe(A, 0, 0)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for size in range(1, 50_001):
            clock.now += 0.001
            tracker.observe(A, size, size)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Without compaction the heap would hold 50,000 stale items (several MB).
    assert after - before < 50_000
    assert tracker.due(clock.now + 2.0) == [A]


def test_quiet_period_adds_network_settle_on_network_folders_only() -> None:
    assert quiet_period_s(2.0, 30.0, on_network=True) == 32.0
    assert quiet_period_s(2.0, 30.0, on_network=False) == 2.0


def test_revalidated_stat_reads_a_regular_file_through_an_open(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 10)
    seen = revalidated_stat(path)
    assert (seen.st_size, seen.st_ino) == (10, os.lstat(path).st_ino)


def test_revalidated_stat_never_opens_a_fifo_or_follows_a_symlink(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading without O_NONBLOCK would hang
    (tmp_path / "link.jpg").symlink_to(tmp_path / "pipe.jpg")
    assert stat.S_ISFIFO(revalidated_stat(tmp_path / "pipe.jpg").st_mode)
    assert stat.S_ISLNK(revalidated_stat(tmp_path / "link.jpg").st_mode)
    with pytest.raises(FileNotFoundError):
        revalidated_stat(tmp_path / "gone.jpg")
