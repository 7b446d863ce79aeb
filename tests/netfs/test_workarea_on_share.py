"""The work area on a network share (finding 16): a file unlinked while open survives as a
placeholder (``.fuse_hidden*`` on FUSE, ``.nfs*`` on NFS) until it is closed, so a job dir
whose lock was unlinked before it was released could never be removed."""

from __future__ import annotations

import os
from pathlib import Path

from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.workarea import WORK_DIR_NAME, WorkArea
from tests.hostile import make_valid_jpeg
from tests.netfs.sshfs import Share
from tests.support import wait_for


def _leftovers(share: Share) -> list[str]:
    """Everything under the server side's work area, and any placeholder anywhere."""
    work = share.server / "inbox" / WORK_DIR_NAME
    found = [str(p.relative_to(work)) for p in work.rglob("*")] if work.exists() else []
    return found + [str(p) for p in share.server.rglob(".fuse_hidden*")]


def _inbox(share: Share) -> Path:
    (share.server / "inbox").mkdir()
    return share.client / "inbox"


def test_a_finished_job_leaves_no_job_dir_on_a_share(share: Share) -> None:
    inbox = _inbox(share)
    source = make_valid_jpeg(inbox, "a.jpg")
    job = WorkArea(inbox).claim("studio", source)
    assert job is not None
    job.input_path.unlink()  # what disposal with on_success = "delete" does
    job.save(job.record.advance(JobState.DISPOSED))
    job.finish()
    wait_for(lambda: not _leftovers(share), timeout_s=5, what="the job dir to go")


def test_recovery_removes_a_leftover_job_dir_on_a_share(share: Share) -> None:
    inbox = _inbox(share)
    work = share.server / "inbox" / WORK_DIR_NAME
    (work / "empty-job").mkdir(parents=True)  # what finding 16 left behind, job after job
    (work / "lock-only").mkdir()
    (work / "lock-only" / "lock").write_bytes(b"")
    (work / "stale-placeholder").mkdir()  # a client that died before it closed the file
    (work / "stale-placeholder" / ".fuse_hidden0000000400000001").write_bytes(b"")
    assert WorkArea(inbox).recover("studio") == []
    wait_for(lambda: not _leftovers(share), timeout_s=5, what="the leftovers to go")
    assert os.listdir(inbox / WORK_DIR_NAME) == []
