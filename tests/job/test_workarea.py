from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from bgcut_watchd.config.model import Variant
from bgcut_watchd.job import workarea
from bgcut_watchd.job.journal import JobRecord, JobState, Journal
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea

FOLDER = "studio"


def drop(inbox: Path, relpath: str | bytes, data: bytes = b"image") -> Path:
    path = inbox / os.fsdecode(relpath)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def claim(area: WorkArea, path: Path) -> ClaimedJob:
    job = area.claim(FOLDER, path)
    assert job is not None
    return job


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def test_claim_moves_the_input_and_journals_claiming_once(
        inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[JobState] = []
    real_write = Journal.write

    def counted(journal: Journal, record: JobRecord) -> JobRecord:
        writes.append(record.state)
        return real_write(journal, record)

    monkeypatch.setattr(Journal, "write", counted)
    source = drop(inbox, "sub/Photo.JPG", b"pixels")
    job = claim(WorkArea(inbox), source)
    try:
        assert not source.exists()
        assert job.input_path == inbox / ".bgcut-work" / job.job_id / "input.jpg"
        assert job.input_path.read_bytes() == b"pixels"
        assert job.record.state is JobState.CLAIMED
        assert (job.record.folder, job.record.original_relpath) == (FOLDER, "sub/Photo.JPG")
        # One durable write: "claimed" is kept, journaled with the job's next write (a crash
        # before it leaves "claiming" with the input in, which recovery resumes).
        assert writes == [JobState.CLAIMING]
        assert Journal(job.job_dir).read().state is JobState.CLAIMING
        assert sorted(os.listdir(job.job_dir)) == ["input.jpg", "job.json", "lock"]
        job.save(job.record)
        assert Journal(job.job_dir).read() == job.record
    finally:
        job.release()


@pytest.mark.parametrize(
    ("name", "input_name"),
    [("noext", "input"), ("a.tar.GZ", "input.gz"), ("x.jpé", "input"),
     (os.fsdecode(b"bad\xff.pNg"), "input.png"), (os.fsdecode(b"bad.\xff"), "input")],
)
def test_input_takes_a_lowercased_ascii_extension(inbox: Path, name: str, input_name: str) -> None:
    job = claim(WorkArea(inbox), drop(inbox, name))
    try:
        assert job.input_path.name == input_name
        assert job.input_path.exists()
        assert inbox / job.record.original_relpath == inbox / name
    finally:
        job.release()


def test_second_claim_of_the_same_path_returns_none_and_cleans_up(inbox: Path) -> None:
    area = WorkArea(inbox)
    source = drop(inbox, "a.png")
    first = claim(area, source)
    try:
        assert area.claim(FOLDER, source) is None
        assert area.pending_count() == 1
        assert first.input_path.exists()
    finally:
        first.release()


def test_claim_of_a_path_under_a_file_returns_none(inbox: Path) -> None:
    area = WorkArea(inbox)
    not_a_dir = drop(inbox, "file.png")
    assert area.claim(FOLDER, not_a_dir / "x.png") is None  # ENOTDIR
    assert area.claim(FOLDER, inbox / "never-there.png") is None  # ENOENT
    assert area.pending_count() == 0
    assert not_a_dir.read_bytes() == b"image"


def test_claim_refuses_paths_outside_the_inbox_or_in_the_work_area(
    inbox: Path, tmp_path: Path,
) -> None:
    area = WorkArea(inbox)
    outside = drop(tmp_path, "elsewhere.png")
    with pytest.raises(ValueError):
        area.claim(FOLDER, outside)
    with pytest.raises(ValueError):
        area.claim(FOLDER, inbox / ".bgcut-work" / "x" / "input.png")
    assert outside.exists()


def test_two_work_areas_racing_claim_each_file_exactly_once(inbox: Path) -> None:
    content = {f"d{i % 5}/img{i}.png": f"pixels {i}".encode() for i in range(50)}
    sources = [drop(inbox, relpath, data) for relpath, data in content.items()]
    barrier = threading.Barrier(2)
    results: dict[int, list[ClaimedJob]] = {0: [], 1: []}

    def worker(index: int) -> None:
        area = WorkArea(inbox)
        barrier.wait()
        for source in sources:  # the same order: both threads fight over every file
            job = area.claim(FOLDER, source)
            if job is not None:
                results[index].append(job)

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    jobs = results[0] + results[1]
    claimed = Counter(job.record.original_relpath for job in jobs)
    assert claimed == Counter(list(content))  # every file once, none twice
    for job in jobs:
        assert job.input_path.read_bytes() == content[job.record.original_relpath]
    assert WorkArea(inbox).pending_count() == 50  # the losers left no job dir behind
    for job in jobs:
        job.release()


def test_finish_removes_the_job_dir_once_the_input_is_gone(inbox: Path, tmp_path: Path) -> None:
    area = WorkArea(inbox)
    job = claim(area, drop(inbox, "a.png"))
    with pytest.raises(ValueError):
        job.finish()  # not disposed yet
    job.save(job.record.advance(JobState.PUBLISHED).advance(JobState.DISPOSED))
    with pytest.raises(ValueError):
        job.finish()  # the input is still there: never deleted here
    job.input_path.rename(tmp_path / "archived.png")
    job.finish()
    assert not job.job_dir.exists()
    assert area.pending_count() == 0


def test_release_lets_another_work_area_recover_the_job(inbox: Path) -> None:
    owner = claim(WorkArea(inbox), drop(inbox, "a.png"))
    other = WorkArea(inbox)
    assert other.recover(FOLDER) == []  # held by its owner (this process: skipped unopened)
    owner.release()
    [resumed] = other.recover(FOLDER)
    try:  # recovery journals "claimed" (the owner had only kept it) with the same fingerprint
        assert resumed.record == dataclasses.replace(owner.record,
                                                     updated_at=resumed.record.updated_at)
        assert Journal(resumed.job_dir).read() == resumed.record
        assert resumed.input_path.exists()
    finally:
        resumed.release()


def released_job(inbox: Path, name: str = "a.png") -> ClaimedJob:
    job = claim(WorkArea(inbox), drop(inbox, name))
    job.release()
    return job


def rewrite(job: ClaimedJob, record: JobRecord) -> None:
    Journal(job.job_dir).write(record)


def test_recover_claiming_with_input_becomes_claimed(inbox: Path) -> None:
    job = released_job(inbox)
    rewrite(job, JobRecord.start(job.job_id, FOLDER, "a.png", "t0"))
    [resumed] = WorkArea(inbox).recover(FOLDER)
    try:
        assert resumed.record.state is JobState.CLAIMED
        assert Journal(job.job_dir).read().state is JobState.CLAIMED
    finally:
        resumed.release()


def test_recover_claiming_without_input_removes_the_dir(inbox: Path) -> None:
    job_dir = inbox / ".bgcut-work" / "deadbeef"
    job_dir.mkdir(parents=True)
    Journal(job_dir).write(JobRecord.start("deadbeef", FOLDER, "a.png", "t0"))
    source = drop(inbox, "a.png")  # the rename never happened: the input is still here
    assert WorkArea(inbox).recover(FOLDER) == []
    assert not job_dir.exists()
    assert source.exists()


@pytest.mark.parametrize(
    "state",
    [JobState.CLAIMED, JobState.UPLOADED, JobState.PROCESSED, JobState.DOWNLOADED,
     JobState.PUBLISHED],
)
def test_recover_returns_unfinished_jobs_for_resumption(inbox: Path, state: JobState) -> None:
    job = released_job(inbox)
    rewrite(job, job.record.advance(state, remote_input="r/in"))
    [resumed] = WorkArea(inbox).recover(FOLDER)
    try:
        assert (resumed.record.state, resumed.record.remote_input) == (state, "r/in")
        assert resumed.input_path.exists()
    finally:
        resumed.release()


@pytest.mark.parametrize("state", [JobState.DISPOSED, JobState.QUARANTINED])
def test_recover_removes_finished_leftovers(inbox: Path, state: JobState) -> None:
    job = released_job(inbox)
    job.input_path.unlink()
    rewrite(job, job.record.advance(state))
    assert WorkArea(inbox).recover(FOLDER) == []
    assert not job.job_dir.exists()


def test_recover_never_deletes_an_input_left_in_a_finished_job(inbox: Path) -> None:
    job = released_job(inbox)
    rewrite(job, job.record.advance(JobState.DISPOSED))
    assert WorkArea(inbox).recover(FOLDER) == []
    assert job.input_path.read_bytes() == b"image"


def test_recover_closes_an_unpublished_job_whose_input_left(inbox: Path, tmp_path: Path) -> None:
    job = released_job(inbox)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    ours = outbox / f".bgcut-{job.job_id}-0.part"
    ours.write_bytes(b"partial")
    not_ours = outbox / "a.full.png"
    not_ours.write_bytes(b"someone's file")
    job.input_path.unlink()  # the quarantine moved it, the crash came before the journal
    rewrite(job, job.record.advance(JobState.DOWNLOADED,
                                    temp_outputs=(str(ours), str(not_ours))))
    assert WorkArea(inbox).recover(FOLDER) == []
    assert not job.job_dir.exists()
    assert not ours.exists()
    assert not_ours.exists()


@pytest.mark.parametrize("content", [b"{garbage", None])
def test_recover_unreadable_journal_keeps_the_input(inbox: Path, content: bytes | None) -> None:
    job = released_job(inbox, "pic.WEBP")
    if content is None:
        job.journal.path.unlink()
    else:
        job.journal.path.write_bytes(content)
    [resumed] = WorkArea(inbox).recover(FOLDER)
    try:
        assert resumed.record.state is JobState.CLAIMED
        assert resumed.record.job_id == job.job_id
        assert resumed.input_path == job.input_path
        assert resumed.input_path.read_bytes() == b"image"
        assert Journal(job.job_dir).read() == resumed.record
        assert (job.job_dir / "job.json.corrupt").exists() == (content is not None)
    finally:
        resumed.release()


def test_recover_unreadable_journal_without_input_removes_the_dir(inbox: Path) -> None:
    job = released_job(inbox)
    job.input_path.unlink()
    job.journal.path.write_bytes(b"\x00\x01")
    assert WorkArea(inbox).recover(FOLDER) == []
    assert not job.job_dir.exists()


HOLD_LOCK = """
import os, sys
from bgcut_watchd.job.workarea import lock_exclusive
fd = os.open(sys.argv[1], os.O_RDWR)
assert lock_exclusive(fd)
print("locked", flush=True)
sys.stdin.read()
"""


def test_recover_skips_a_dir_locked_by_another_process_until_it_dies(inbox: Path) -> None:
    job = released_job(inbox)
    rewrite(job, JobRecord.start(job.job_id, FOLDER, "a.png", "t0"))  # claiming
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(job.job_dir / "lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        assert WorkArea(inbox).recover(FOLDER) == []
        assert Journal(job.job_dir).read().state is JobState.CLAIMING  # untouched
        assert job.input_path.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    assert holder.returncode == -signal.SIGKILL
    [resumed] = WorkArea(inbox).recover(FOLDER)
    try:
        assert resumed.record.state is JobState.CLAIMED
    finally:
        resumed.release()


def test_recover_returns_jobs_oldest_first_and_ignores_stray_files(inbox: Path) -> None:
    older = released_job(inbox, "b.png")
    newer = released_job(inbox, "a.png")
    rewrite(older, older.record.advance(older.record.state, first_seen="2020-01-01"))
    (inbox / ".bgcut-work" / "stray-file").write_bytes(b"x")
    jobs = WorkArea(inbox).recover(FOLDER)
    try:
        assert [j.job_id for j in jobs] == [older.job_id, newer.job_id]
    finally:
        for job in jobs:
            job.release()


def test_pending_count_and_recover_on_a_fresh_inbox(inbox: Path) -> None:
    area = WorkArea(inbox)
    assert area.pending_count() == 0
    assert area.recover(FOLDER) == []
    jobs = [claim(area, drop(inbox, f"{n}.png")) for n in range(3)]
    assert area.pending_count() == 3
    for job in jobs:
        job.release()


def _open_paths() -> set[str]:
    """Every file this process holds open, by path (``/proc/self/fd``)."""
    paths = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the fd of the listing itself, closed meanwhile
            continue
    return paths


@pytest.fixture
def unlinked_while_open(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths unlinked while this process still held them open. On NFS and FUSE such a file
    survives as a ``.nfs*`` / ``.fuse_hidden*`` placeholder, and its directory cannot be
    removed (finding 16)."""
    found: list[str] = []
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if str(self) in _open_paths():
            found.append(self.name)
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    return found


def test_finish_releases_the_lock_before_unlinking_it(
        inbox: Path, tmp_path: Path, unlinked_while_open: list[str]) -> None:
    job = claim(WorkArea(inbox), drop(inbox, "a.png"))
    job.input_path.rename(tmp_path / "archived.png")
    job.save(job.record.advance(JobState.DISPOSED))
    job.finish()
    assert not job.job_dir.exists()
    assert unlinked_while_open == []


def test_recovery_releases_the_lock_before_unlinking_it(
        inbox: Path, unlinked_while_open: list[str]) -> None:
    leftover = inbox / ".bgcut-work" / "leftover"
    leftover.mkdir(parents=True)  # no journal, no input: what a crashed claim leaves
    job = released_job(inbox)
    job.input_path.unlink()
    rewrite(job, job.record.advance(JobState.QUARANTINED))
    assert WorkArea(inbox).recover(FOLDER) == []
    assert not leftover.exists() and not job.job_dir.exists()
    assert unlinked_while_open == []


def test_our_own_recovery_pass_never_opens_the_lock_of_a_job_we_hold(
        inbox: Path, tmp_path: Path, unlinked_while_open: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rescan's adopting pass opened the lock file of each job dir, ours included. When a
    worker finished its job while the pass held that file open, the lock file was unlinked
    while open: on a FUSE share a ``.fuse_hidden*`` placeholder, the rmdir failed and the job
    dir stayed (the netfs test failed about one run in fourteen)."""
    area = WorkArea(inbox)
    job = claim(area, drop(inbox, "a.png"))
    job.input_path.rename(tmp_path / "archived.png")
    job.save(job.record.advance(JobState.DISPOSED))
    real_lock = workarea.lock_exclusive

    def finish_first(fd: int) -> bool:
        # The worst moment: the pass holds the lock file open, the worker finishes the job.
        if job.job_dir.exists():
            job.finish()
        return real_lock(fd)

    monkeypatch.setattr(workarea, "lock_exclusive", finish_first)
    assert area.recover(FOLDER) == []
    if job.job_dir.exists():
        job.finish()
    assert not job.job_dir.exists()
    assert unlinked_while_open == []


def test_a_job_dir_gone_under_our_recovery_leaves_no_lock_open(
        inbox: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A peer removed its finished job dir just as our pass took the lock: the pass used to
    keep that lock fd open for the rest of the run."""
    job = released_job(inbox)
    real_lock = workarea.lock_exclusive

    def lock_then_owner_removes(fd: int) -> bool:
        taken = real_lock(fd)
        shutil.rmtree(job.job_dir)  # the owner finished it (its lock was released already)
        return taken

    monkeypatch.setattr(workarea, "lock_exclusive", lock_then_owner_removes)
    assert WorkArea(inbox).recover(FOLDER) == []
    assert "cannot recover" in caplog.text
    assert [p for p in _open_paths() if p.startswith(str(job.job_dir))] == []


def test_a_job_dir_being_made_or_removed_is_left_to_its_owner(inbox: Path) -> None:
    area = WorkArea(inbox, new_job_id=lambda: "fixed")
    job_dir = area.root / "fixed"
    seen: list[list[ClaimedJob]] = []
    real_mkdir = Path.mkdir

    def mkdir_then_recover(self: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        if self == job_dir:  # made, not locked yet: another pass of ours must not take it
            seen.append(area.recover(FOLDER))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "mkdir", mkdir_then_recover)
        job = claim(area, drop(inbox, "a.png"))
    try:
        assert seen == [[]] and job.job_dir == job_dir
        assert Journal(job_dir).read().state is JobState.CLAIMING
    finally:
        job.release()
    [resumed] = area.recover(FOLDER)  # released: now it is anyone's to adopt
    resumed.release()


@pytest.mark.parametrize("placeholder", [".fuse_hidden0000000400000001", ".nfs000000000012345"])
def test_recovery_removes_a_stale_placeholder(inbox: Path, placeholder: str) -> None:
    leftover = inbox / ".bgcut-work" / "leftover"
    leftover.mkdir(parents=True)
    (leftover / placeholder).write_bytes(b"")  # its client died before it could remove it
    assert WorkArea(inbox).recover(FOLDER) == []
    assert not leftover.exists()


def test_the_claim_journals_the_variant_set_and_the_input_fingerprint(inbox: Path) -> None:
    variants = (Variant("full"), Variant("thumb", format="webp", autocrop=True))
    source = drop(inbox, "a.jpg", b"pixels")
    inode = source.stat().st_ino
    job = WorkArea(inbox).claim(FOLDER, source, variants)
    assert job is not None
    try:
        assert Journal(job.job_dir).read().variants == variants  # before the input moves in
        assert job.record.input_fingerprint == (6, job.input_path.stat().st_mtime_ns, inode)
        job.save(job.record)  # the fingerprint is journaled with the job's next write
        assert Journal(job.job_dir).read().input_fingerprint == job.record.input_fingerprint
    finally:
        job.release()


def test_a_copy_claim_journals_its_variant_set_and_the_copy_fingerprint(
        inbox: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(b"pixels!")
    job = WorkArea(inbox).claim_copy(FOLDER, outside, "elsewhere.jpg", (Variant("full"),))
    assert job is not None
    try:
        assert job.record.variants == (Variant("full"),)
        assert job.record.input_fingerprint is not None
        assert job.record.input_fingerprint[0] == 7
        assert job.record.input_fingerprint[2] == job.input_path.stat().st_ino
    finally:
        job.release()
