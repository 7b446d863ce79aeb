"""Which files a process holds open for writing (``intake.writers``): real files, real
descriptors of this process and of a child process, the real ``/proc``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bgcut_watchd.intake.writers import (
    OpenCounts,
    claimed_open_for_writing,
    held_open,
    open_for_writing,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_file_open_for_writing_is_found_a_read_or_closed_one_is_not(tmp_path: Path) -> None:
    written, read, closed = (tmp_path / n for n in ("w.jpg", "r.jpg", "c.jpg"))
    for path in (written, read, closed):
        path.write_bytes(b"x")
    with written.open("ab"), read.open("rb"):
        assert open_for_writing([written, read, closed, tmp_path / "gone.jpg"]) == {written}
    assert open_for_writing([written]) == set()


def test_read_write_opens_count_as_writers(tmp_path: Path) -> None:
    path = tmp_path / "rw.jpg"
    path.write_bytes(b"x")
    with path.open("r+b"):
        assert open_for_writing([path]) == {path}


@contextlib.contextmanager
def writer_process(path: Path) -> Iterator[None]:
    """Another process holding ``path`` open for appending (half written) until the block ends."""
    script = ("import sys; f = open(sys.argv[1], 'ab'); f.write(b'half'); f.flush(); "
              "print('open', flush=True); sys.stdin.read()")
    writer = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"open\n"
        yield
    finally:
        assert writer.stdin is not None
        writer.stdin.close()
        writer.wait(timeout=10)


def test_another_process_writing_is_found(tmp_path: Path) -> None:
    path = tmp_path / "scan.jpg"
    path.write_bytes(b"")
    with writer_process(path):
        assert open_for_writing([path]) == {path}
    assert open_for_writing([path]) == set()


def test_a_missing_proc_finds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "w.jpg"
    path.write_bytes(b"x")
    with path.open("ab"):
        assert open_for_writing([path], proc=tmp_path / "no-proc") == set()


def test_open_counts_hold_until_closed_and_at_most_the_hold_time(tmp_path: Path) -> None:
    clock, path = FakeClock(), tmp_path / "a.jpg"
    counts = OpenCounts(clock, hold_max_s=60.0)
    counts.closed(path)  # a close whose open came before the watch: nothing held
    assert not counts.held(path)
    counts.opened(path)
    counts.opened(path)
    counts.closed(path)
    assert counts.held(path)  # one open left
    clock.now = 61.0
    assert not counts.held(path)  # a close missed, or a reader that never lets go
    counts.closed(path)
    counts.opened(path)
    assert counts.held(path)
    counts.forget(path)
    assert not counts.held(path)
    path.write_bytes(b"x")
    counts.opened(path)
    assert held_open([path, tmp_path / "other.jpg"], counts) == {path}


def fake_proc_with_a_writer(root: Path, path: Path) -> Path:
    """A ``/proc`` in which process 4242 holds ``path`` open for writing (``O_WRONLY``)."""
    proc = root / "proc"
    (proc / "4242" / "fd").mkdir(parents=True)
    (proc / "4242" / "fdinfo").mkdir()
    (proc / "4242" / "fd" / "3").symlink_to(path)
    (proc / "4242" / "fdinfo" / "3").write_text("pos:\t0\nflags:\t0100001\n")
    return proc


def test_a_claimed_file_nobody_writes_is_answered_by_the_kernel_without_proc(
        tmp_path: Path) -> None:
    """A granted read lease proves no process has the file open for writing: ``/proc`` is not
    read (here a fake one that names a writer, which the plain scan believes)."""
    path = tmp_path / "claimed.jpg"
    path.write_bytes(b"x")
    proc = fake_proc_with_a_writer(tmp_path, path)
    assert open_for_writing([path], proc) == {path}
    assert claimed_open_for_writing([path], proc) == set()


def test_a_claimed_file_being_written_is_found_here_and_in_another_process(
        tmp_path: Path) -> None:
    """The lease is refused while a writer holds the file; ``/proc`` then confirms it."""
    path = tmp_path / "claimed.jpg"
    path.write_bytes(b"")
    with path.open("ab"):
        assert claimed_open_for_writing([path]) == {path}
    with writer_process(path):
        assert claimed_open_for_writing([path]) == {path}
    assert claimed_open_for_writing([path]) == set()


def test_a_refused_lease_is_not_trusted_alone(tmp_path: Path) -> None:
    """NFS and SMB refuse leases without a delegation: a refusal sends the file to ``/proc``,
    which decides (here a FIFO, where no lease is possible, and a missing ``/proc``)."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert claimed_open_for_writing([fifo], proc=tmp_path / "no-proc") == set()
    assert claimed_open_for_writing([tmp_path / "gone.jpg"]) == set()
