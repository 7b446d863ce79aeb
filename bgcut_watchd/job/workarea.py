"""The work area ``<inbox>/.bgcut-work/``: claiming inputs and recovering jobs after a crash.

A job lives in ``.bgcut-work/<job_id>/``: its input ``input<.ext>``, journal ``job.json`` and
lock file ``lock``. Being inside the inbox, the claim is one atomic same-filesystem rename. The
owner holds an exclusive lock on ``lock`` (an OFD lock, :func:`lock_exclusive`: like ``flock``
it belongs to the open file, and the kernel drops it when the process dies, even by ``kill
-9``), so recovery takes exactly the jobs no live process owns.

Claim order (product.md, step 4): mkdir, journal ``claiming`` (with the variant set the job
keeps), rename the input in (ENOENT/ENOTDIR: someone else took it), fsync both dirs, then
``claimed`` with the input's fingerprint (``job.settle``: it must not change before the job
pays), kept in memory and journaled with the job's next write, the paid call's "sent" mark
(one durable write fewer per job): a crash before it leaves ``claiming`` with the input in the
dir, which recovery makes ``claimed`` with a fresh fingerprint, and the upload is redone
(free). The lock is taken
right after the mkdir, before the first journal write, so another daemon's recovery never sees
our half-made dir unlocked and removes it under us; after a crash the states on disk are the same
either way.

Removal order: every other file first, then the lock is released (its fd closed), and only
then is the lock file unlinked and the directory removed. On NFS and FUSE (sshfs, SMB through
FUSE...) a file unlinked while still open survives as a placeholder (``.nfs*``,
``.fuse_hidden*``) until its last close, and the directory cannot be removed meanwhile: job
dirs piled up forever on network shares. Stale placeholders in a leftover job dir (a client
that died before closing) are unlinked by recovery like any other leftover file.

Our own dirs: the periodic adopting recovery of this process never opens the lock file of a
job dir this process holds, makes or is removing (``_Owned``). It used to open it and find the
lock taken, and when that open met our own removal, the unlink of the lock file while our
recovery held it open left a ``.fuse_hidden*`` placeholder on a FUSE share (or our recovery's
``O_CREAT`` made a fresh lock file), the directory could not be removed, and it stayed until
the next rescan (or for good, when the daemon stopped first). A peer daemon's recovery can still
meet our removal that way; the next recovery removes the leftover.

Over 300 lines on purpose: claiming and recovery share the locking protocol above, and
its correctness depends on reading both sides of it together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import stat
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bgcut_watchd.clock import WallClock, iso_utc, utc_now
from bgcut_watchd.config.model import Variant
from bgcut_watchd.fsops import copy_file_durably, fsync_dir
from bgcut_watchd.job.journal import (
    TERMINAL_STATES,
    JobRecord,
    JobState,
    Journal,
    fingerprint_of,
)
from bgcut_watchd.job.naming import INPUT_STEM, input_name_for, is_unlink_placeholder
from bgcut_watchd.job.publish import discard_temps
from bgcut_watchd.job.timeline import Timeline

log = logging.getLogger(__name__)

WORK_DIR_NAME = ".bgcut-work"
LOCK_NAME = "lock"
COPY_TEMP_NAME = ".copy.part"  # a copy-claim's bytes before they become the input
# struct flock for F_OFD_SETLK: a write lock on the whole file, l_pid 0 (Linux, 64-bit off_t)
_WRITE_LOCK = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
_GONE = (errno.ENOENT, errno.ENOTDIR)


class _Owned:
    """The job dirs this process holds a lock on, is making or is removing (see "Our own
    dirs" above). Thread-safe; one for the process."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locked: set[Path] = set()
        self._removing: set[Path] = set()

    def __contains__(self, job_dir: object) -> bool:
        with self._guard:
            return job_dir in self._locked or job_dir in self._removing

    def lock(self, job_dir: Path) -> None:
        with self._guard:
            self._locked.add(job_dir)

    def unlock(self, job_dir: Path) -> None:
        with self._guard:
            self._locked.discard(job_dir)

    @contextlib.contextmanager
    def removing(self, job_dir: Path) -> Iterator[None]:
        """Ours while the block runs, whatever happens to its lock meanwhile."""
        with self._guard:
            self._removing.add(job_dir)
        try:
            yield
        finally:
            with self._guard:
                self._removing.discard(job_dir)


_OWNED = _Owned()


class ClaimedJob:
    """A job this process owns: its directory, input, journal, current record and lock."""

    def __init__(self, job_dir: Path, journal: Journal, record: JobRecord, lock_fd: int) -> None:
        self.job_dir = job_dir
        self.journal = journal
        self.record = record
        self._lock_fd: int | None = lock_fd
        self.final_input_path: Path | None = None  # archived or quarantined here (this run)
        self.timeline = Timeline()  # where this run's time goes (job.timeline)
        self.holds_api_slot = False  # from its upload to the end of its last download

    @property
    def input_path(self) -> Path:
        """The claimed input inside the job dir (gone once disposed or quarantined)."""
        return self.job_dir / input_name_for(self.record.original_relpath)

    @property
    def job_id(self) -> str:
        return self.record.job_id

    def save(self, record: JobRecord) -> JobRecord:
        """Journal ``record`` durably and make it current. Raises OSError when the write fails."""
        self.record = self.journal.write(record)
        return self.record

    def keep(self, record: JobRecord) -> JobRecord:
        """Make ``record`` current without journaling it: the next :meth:`save` journals it
        with its own change. Only for a change a crash may lose, because a restart from the
        journaled state redoes free work (a decode, an upload, a download, a hash), never a
        paid call, a publish or a move (issue 14: a durable write costs ~4 ms)."""
        self.record = record
        return record

    def release(self) -> None:
        """Drop the lock (close its fd). Idempotent; the job dir stays for a later recovery."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
            _OWNED.unlock(self.job_dir)

    def finish(self) -> None:
        """Remove the job dir after disposal or quarantine, releasing the lock on the way.

        Unlinks the journal and any leftover files, releases the lock, unlinks the lock file,
        removes the directory and fsyncs the work area (see "Removal order" above). Raises
        ValueError, removing nothing, when the record is not disposed/quarantined or the input
        is still in the directory (an input is never deleted here); OSError when the removal
        fails (the lock is released all the same).
        """
        if self.record.state not in TERMINAL_STATES:
            raise ValueError(f"job {self.job_id} is {self.record.state}, not finished")
        if _find_input(self.job_dir) is not None:
            raise ValueError(f"job {self.job_id}: the input is still in {self.job_dir}")
        _remove_job_dir(self.job_dir, self.release)


def _find_input(job_dir: Path) -> Path | None:
    """The ``input`` or ``input.<ext>`` file in ``job_dir``, if any."""
    with os.scandir(job_dir) as entries:
        for entry in entries:
            if entry.name == INPUT_STEM or entry.name.startswith(INPUT_STEM + "."):
                return Path(entry.path)
    return None


def _remove_job_dir(job_dir: Path, release: Callable[[], None] = lambda: None) -> None:
    """Unlink every file of ``job_dir`` but the lock, ``release`` the lock (always, even when
    an unlink fails), unlink the lock file, rmdir, fsync the work area. Raises OSError.

    Our own recovery leaves the dir alone all along (``_OWNED``)."""
    with _OWNED.removing(job_dir):
        try:
            with os.scandir(job_dir) as entries:
                names = [e.name for e in entries if e.name != LOCK_NAME]
            for name in names:
                _unlink_leftover(job_dir / name)
        finally:
            release()  # before the unlink: an open file unlinked on NFS/FUSE leaves one
        (job_dir / LOCK_NAME).unlink(missing_ok=True)
        try:
            job_dir.rmdir()
        except OSError as exc:
            # Another daemon's recovery may have created a fresh lock file in between, or a
            # placeholder may still be open elsewhere; the next recovery removes the
            # leftover. A missing dir is what we wanted anyway.
            if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY):
                raise
            log.warning("workarea: could not remove %s yet: %s%s", job_dir, exc.strerror,
                        _left_in(job_dir))
    fsync_dir(job_dir.parent)


def _left_in(job_dir: Path) -> str:
    """`` (left: name, ...)`` for a log line, or nothing. Raises nothing."""
    try:
        with os.scandir(job_dir) as entries:
            names = sorted(e.name for e in entries)
    except OSError:
        return ""
    return f" (left: {', '.join(names[:5])})" if names else ""


def _unlink_leftover(path: Path) -> None:
    """Unlink one file of a finished job dir. A placeholder still open elsewhere (NFS answers
    EBUSY) stays until its last close; the rmdir after it then fails and is retried later."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        if not is_unlink_placeholder(path.name):
            raise
        log.info("workarea: %s is still open elsewhere; left for a later recovery", path)


def _closer(job_dir: Path, fd: int) -> Callable[[], None]:
    """A release for a bare lock fd on ``job_dir`` that closes it on its first call only."""
    pending = [fd]

    def close() -> None:
        while pending:
            os.close(pending.pop())
            _OWNED.unlock(job_dir)

    return close


def lock_exclusive(fd: int) -> bool:
    """Take the job-dir lock on ``fd`` without waiting: an exclusive OFD lock on the whole
    file (``fcntl(F_OFD_SETLK)``); False when another open of the file holds it.

    Why not ``flock``: on an sshfs share (FUSE), a lock file that had been flocked, closed
    and then unlinked at once now and then stayed "open" in the FUSE client for good (its
    RELEASE never arrived): a ``.fuse_hidden*`` placeholder kept the finished job dir from
    being removed (tests/netfs: about one run in twelve; none in 60 with OFD locks). OFD locks
    are owned by the open file description like flock's, so two opens in one process still
    exclude each other, and NFS carries them to the server like flock's emulation. A peer
    daemon of a version that still used ``flock`` does not see these locks on the same host:
    upgrade daemons that share folders together. Raises OSError for any other failure."""
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _WRITE_LOCK)
    except (BlockingIOError, PermissionError):  # EAGAIN, or EACCES: held by another open
        return False
    return True


def _try_lock(job_dir: Path) -> int | None:
    """An fd holding the exclusive lock on ``job_dir/lock``, or None when another holds it.

    Raises OSError (ENOENT, ENOTDIR...) when the lock file cannot be opened.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(job_dir / LOCK_NAME, flags, 0o600)
    try:
        if not lock_exclusive(fd):
            os.close(fd)
            return None
    except BaseException:
        os.close(fd)
        raise
    _OWNED.lock(job_dir)
    return fd


class WorkArea:
    """The ``.bgcut-work`` directory of one inbox. Safe to use from several threads."""

    def __init__(
        self, inbox: Path, *, clock: WallClock = utc_now,
        new_job_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.inbox = inbox
        self.root = inbox / WORK_DIR_NAME
        self._clock = clock
        self._new_job_id = new_job_id

    def claim(self, folder_name: str, path: Path,
              variants: tuple[Variant, ...] = ()) -> ClaimedJob | None:
        """Move ``path`` (a file in the inbox) into a new job dir and own that job, journaling
        ``variants`` (the folder's set now: the job keeps it whatever a reload changes).

        Returns None when the file vanished before the rename (another claimer took it).
        Raises ValueError when ``path`` is not inside the inbox or is inside the work area;
        OSError for any other filesystem failure (the job dir is then cleaned up and the
        input left where it was).
        """
        relpath = self._relpath(path)
        locked = self._new_locked_job_dir()
        if locked is None:
            return None
        start = JobRecord.start(locked[0].name, folder_name, relpath, self._now(), variants)
        return self._move_in(start, path, *locked)

    def _new_locked_job_dir(self) -> tuple[Path, int] | None:
        """A new job dir and its lock fd; None when another daemon's recovery took it.

        Raises OSError when the directory cannot be made or locked (it is removed again).
        """
        self._ensure_root()
        job_dir = self.root / self._new_job_id()
        _OWNED.lock(job_dir)  # before it exists: our own recovery never opens its lock file
        try:
            job_dir.mkdir()
            fsync_dir(self.root)
            lock_fd = _try_lock(job_dir)
        except BaseException as exc:
            _OWNED.unlock(job_dir)
            if isinstance(exc, OSError) and exc.errno in _GONE and job_dir.parent.is_dir():
                return None  # another daemon's recovery removed our brand-new dir
            if job_dir.is_dir():
                _remove_job_dir(job_dir)
            raise
        if lock_fd is None:  # another daemon's recovery holds it and will remove it
            _OWNED.unlock(job_dir)
            return None
        return job_dir, lock_fd

    def hand_over(self, folder_name: str, source: Path, relpath: str,
                  **fields: Any) -> ClaimedJob | None:
        """Move ``source`` (a file some job wrote into its own dir: a page of a multi-page
        input) into a new job dir, with ``fields`` in its journal, and own that job.

        The same protocol as :meth:`claim`, the writing job's dir standing in for the inbox:
        the file is in exactly one of the two dirs at every moment, so a crash can neither lose
        it nor give it to two jobs. Returns None when ``source`` is gone (handed over already)
        or another daemon's recovery took the brand-new dir. Raises ValueError for a bad
        ``relpath``; OSError (the file stays where it was).
        """
        self._check_relpath(relpath)
        locked = self._new_locked_job_dir()
        if locked is None:
            return None
        start = dataclasses.replace(
            JobRecord.start(locked[0].name, folder_name, relpath, self._now()), **fields)
        return self._move_in(start, source, *locked)

    def _move_in(
        self, start: JobRecord, path: Path, job_dir: Path, lock_fd: int,
    ) -> ClaimedJob | None:
        """Journal ``claiming``, rename the input in, fsync both dirs, make it ``claimed``."""
        journal = Journal(job_dir, clock=self._clock)
        try:
            record = journal.write(start)
            path.rename(job_dir / input_name_for(start.original_relpath))
        except BaseException as exc:
            release = _closer(job_dir, lock_fd)
            try:
                if _find_input(job_dir) is None:
                    _remove_job_dir(job_dir, release)
            finally:
                release()
            if isinstance(exc, OSError) and exc.errno in _GONE:
                return None
            raise
        job = ClaimedJob(job_dir, journal, record, lock_fd)
        try:
            fsync_dir(path.parent)
            fsync_dir(job_dir)
            job.keep(_claimed(job.record, job.input_path))
        except BaseException:
            job.release()  # the dir stays in "claiming" with its input: recovery resumes it
            raise
        return job

    def claim_copy(self, folder_name: str, source: Path, relpath: str,
                   variants: tuple[Variant, ...] = (),
                   output_dir: Path | None = None) -> ClaimedJob | None:
        """Copy ``source`` (a regular file anywhere; never moved) into a new job dir and own it.

        The claim of ``process`` for a file outside the inbox (or any file with
        ``--output``): same lock and journal as :meth:`claim`, ``relpath`` standing in for
        its place in the inbox (it picks the output subfolder). The job is *detached*
        (journaled): its copy is deleted when done and a failure's error file goes beside
        the outputs, so it never enters the folder's archive or quarantine; ``output_dir``
        replaces the outbox. The bytes go to a hidden temporary, fsynced, then renamed to
        the input, so a crash never leaves a partial input (recovery removes a ``claiming``
        dir without one). Returns None when another daemon's recovery took the brand-new
        dir. Raises ValueError for a ``relpath`` that is absolute, climbs or enters the work
        area, or a ``source`` that is not a regular file (it is never opened then); OSError
        when the copy fails (the job dir is removed; ``source`` is untouched either way).
        """
        self._check_relpath(relpath)
        if not stat.S_ISREG(os.lstat(source).st_mode):
            raise ValueError(f"{os.fsdecode(source)!r} is not a regular file")
        locked = self._new_locked_job_dir()
        if locked is None:
            return None
        job_dir, lock_fd = locked
        output = None if output_dir is None else os.fsdecode(output_dir)
        start = dataclasses.replace(
            JobRecord.start(job_dir.name, folder_name, relpath, self._now(), variants),
            detached=True, output_dir=output)
        try:
            return self._copy_in(start, source, job_dir, lock_fd)
        except BaseException:
            # Only our copy is lost: the source never moved. The lock is released either way.
            _remove_job_dir(job_dir, _closer(job_dir, lock_fd))
            raise

    def _copy_in(self, start: JobRecord, source: Path, job_dir: Path,
                 lock_fd: int) -> ClaimedJob:
        journal = Journal(job_dir, clock=self._clock)
        record = journal.write(start)
        temp = job_dir / COPY_TEMP_NAME
        copy_file_durably(source, temp)
        temp.rename(job_dir / input_name_for(start.original_relpath))
        fsync_dir(job_dir)
        job = ClaimedJob(job_dir, journal, record, lock_fd)
        job.keep(_claimed(job.record, job.input_path))  # journaled with the next write
        return job

    def recover(self, folder_name: str) -> list[ClaimedJob]:
        """Take every job dir no live process owns; return the unfinished ones to resume.

        Locked dirs are skipped (another daemon owns them). ``claiming`` with the input
        becomes ``claimed``; without it the dir is removed (the input never left the inbox).
        ``claimed`` .. ``published`` are returned. Disposed or quarantined leftovers are
        removed. An unreadable journal with an input present gets a fresh ``claimed`` record
        (warning logged); an input is never deleted. One bad job dir is logged and skipped.
        Raises OSError only when the work area itself cannot be listed.
        """
        if not self.root.is_dir():
            return []
        resumed: list[ClaimedJob] = []
        for job_dir in self._job_dirs():
            try:
                job = self._recover_one(folder_name, job_dir)
            except (OSError, ValueError) as exc:
                log.error("workarea: cannot recover %s: %s", job_dir, exc)
                continue
            if job is not None:
                resumed.append(job)
        resumed.sort(key=lambda job: job.record.first_seen)
        return resumed

    def pending_count(self) -> int:
        """How many job dirs the work area holds (owned, resumable or leftover)."""
        return len(self._job_dirs()) if self.root.is_dir() else 0

    def _job_dirs(self) -> list[Path]:
        with os.scandir(self.root) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))

    def _recover_one(self, folder_name: str, job_dir: Path) -> ClaimedJob | None:
        if job_dir in _OWNED:
            log.debug("workarea: %s is this process's own job, skipped", job_dir.name)
            return None
        lock_fd = _try_lock(job_dir)
        if lock_fd is None:
            log.debug("workarea: %s is owned by a live process, skipped", job_dir.name)
            return None
        journal = Journal(job_dir, clock=self._clock)
        try:
            record = journal.read()
        except (OSError, ValueError) as exc:
            return self._recover_unreadable(folder_name, job_dir, journal, lock_fd, exc)
        job = ClaimedJob(job_dir, journal, record, lock_fd)
        try:
            return self._resume_or_finish(job)
        except BaseException:
            job.release()
            raise

    def _resume_or_finish(self, job: ClaimedJob) -> ClaimedJob | None:
        state = job.record.state
        has_input = _find_input(job.job_dir) is not None
        if state is JobState.CLAIMING and not has_input:
            _remove_job_dir(job.job_dir, job.release)
            return None
        if state is JobState.CLAIMING:  # journaled here: recovery is rare, a write is cheap
            job.save(_claimed(job.record, job.input_path))
        elif state not in TERMINAL_STATES and not has_input:
            self._close_inputless(job)
        if job.record.state in TERMINAL_STATES:
            job.finish()
            return None
        return job

    def _close_inputless(self, job: ClaimedJob) -> None:
        """Only disposal (after publish) or quarantine move an input out: journal which."""
        done = JobState.DISPOSED if job.record.state is JobState.PUBLISHED else JobState.QUARANTINED
        log.warning("workarea: job %s (%s) lost its input in state %s; marking it %s",
                    job.job_id, job.record.original_relpath, job.record.state, done)
        _discard_temp_outputs(job.record)
        job.save(job.record.advance(done))

    def _recover_unreadable(
        self, folder_name: str, job_dir: Path, journal: Journal, lock_fd: int, exc: Exception,
    ) -> ClaimedJob | None:
        release = _closer(job_dir, lock_fd)
        try:  # e.g. ENOENT: the dir went with its owner's removal while we took the lock
            found = _find_input(job_dir)
            if found is not None and journal.path.exists():
                journal.path.replace(job_dir / "job.json.corrupt")
        except BaseException:
            release()
            raise
        if found is None:
            log.warning("workarea: removing %s: no input, journal unreadable (%s)", job_dir, exc)
            _remove_job_dir(job_dir, release)
            return None
        log.warning("workarea: journal of %s unreadable (%s); resuming its input as a new job",
                    job_dir.name, exc)
        relpath = f"recovered-{job_dir.name}{found.name[len(INPUT_STEM):]}"
        record = JobRecord.start(job_dir.name, folder_name, relpath, self._now())
        job = ClaimedJob(job_dir, journal, record, lock_fd)
        try:  # journaled now: the old journal is gone
            job.save(_claimed(job.record, job.input_path))
        except BaseException:
            job.release()
            raise
        return job

    def _relpath(self, path: Path) -> str:
        try:
            relative = path.relative_to(self.inbox)
        except ValueError as exc:
            raise ValueError(f"{path} is not inside the inbox {self.inbox}") from exc
        if not relative.parts or relative.parts[0] == WORK_DIR_NAME:
            raise ValueError(f"{path} is not a file the inbox can hand over")
        return os.fsdecode(relative)

    @staticmethod
    def _check_relpath(relpath: str) -> None:
        parts = Path(relpath).parts
        if not parts or Path(relpath).is_absolute() or ".." in parts or parts[0] == WORK_DIR_NAME:
            raise ValueError(f"not a path inside an inbox: {relpath!r}")

    def _ensure_root(self) -> None:
        if not self.root.is_dir():
            self.root.mkdir(exist_ok=True)
            fsync_dir(self.inbox)

    def _now(self) -> str:
        return iso_utc(self._clock())


def _claimed(record: JobRecord, input_path: Path) -> JobRecord:
    """``record`` made ``claimed`` with the fingerprint of its input, now in the job dir.
    Raises OSError."""
    return record.advance(JobState.CLAIMED, input_fingerprint=fingerprint_of(input_path))


def _discard_temp_outputs(record: JobRecord) -> None:
    """Delete the job's own ``.part``/``.dl`` downloads beside its journaled temporaries."""
    for out_dir in dict.fromkeys(Path(temp).parent for temp in record.temp_outputs):
        discard_temps(out_dir, record.job_id)
