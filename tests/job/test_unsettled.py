"""The second look at a network folder's input that the local check found unfinished."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgcut_watchd.config import FolderConfig, Variant
from bgcut_watchd.errors import LocalInputError, UnsettledInputError
from bgcut_watchd.job.journal import Journal
from bgcut_watchd.job.unsettled import SECOND_LOOK, check_again_later, second_look_s
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea


@pytest.fixture
def job(tmp_path: Path) -> ClaimedJob:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jpg").write_bytes(b"\xff\xd8\xff half a JPEG")
    claimed = WorkArea(inbox).claim("studio", inbox / "a.jpg")
    assert claimed is not None
    return claimed


def _folder(tmp_path: Path, network_settle_s: float) -> FolderConfig:
    return FolderConfig("studio", tmp_path / "inbox", tmp_path / "out", tmp_path / "q",
                        (Variant("full"),), network_settle_s=network_settle_s)


def _mountinfo(tmp_path: Path, fstype: str) -> Path:
    path = tmp_path / "mountinfo"
    path.write_bytes(b"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                     + f"40 22 0:50 / {tmp_path / 'inbox'} rw - {fstype} h:/x rw\n".encode())
    return path


@pytest.mark.parametrize(("fstype", "network_settle_s", "expected"), [
    ("nfs4", 30.0, 32.0), ("fuse.sshfs", 5.0, 7.0), ("cifs", 0.0, None), ("ext4", 30.0, None),
])
def test_a_second_look_on_network_folders_only(tmp_path: Path, fstype: str,
                                              network_settle_s: float,
                                              expected: float | None) -> None:
    folder = _folder(tmp_path, network_settle_s)
    assert second_look_s(folder, 2.0, _mountinfo(tmp_path, fstype)) == expected


@pytest.mark.parametrize("reason", ["invalid_image", "empty_file"])
def test_a_first_unfinished_verdict_on_a_share_waits_and_is_journaled(
        job: ClaimedJob, reason: str) -> None:
    exc = LocalInputError("a JPEG signature, but it does not decode fully", reason)
    with pytest.raises(UnsettledInputError) as raised:
        check_again_later(job, exc, 32.0)
    again = raised.value
    assert (again.reason, again.detail, again.retry_after_s) == (reason, exc.detail, 32.0)
    assert again.__cause__ is exc
    assert Journal(job.job_dir).read().last_stage == SECOND_LOOK
    check_again_later(job, exc, 32.0)  # the second verdict counts: the caller raises it


@pytest.mark.parametrize("reason", ["unsupported_format", "too_large", "not_regular_file"])
def test_verdicts_a_writer_cannot_explain_count_at_once(job: ClaimedJob, reason: str) -> None:
    check_again_later(job, LocalInputError("refused", reason), 32.0)
    assert Journal(job.job_dir).read().last_stage is None


def test_a_local_folder_counts_the_first_verdict(job: ClaimedJob) -> None:
    check_again_later(job, LocalInputError("truncated", "invalid_image"), None)
    assert Journal(job.job_dir).read().last_stage is None
