"""The second look at a network folder's input that the local check found unfinished
(granted by ``job.settle.InputFreeze.before_blaming``, the one place for any folder)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bgcut_watchd.config import FolderConfig, Variant
from bgcut_watchd.errors import InputUnsettledError, LocalInputError
from bgcut_watchd.job.journal import Journal
from bgcut_watchd.job.settle import InputFreeze
from bgcut_watchd.job.unsettled import second_look_s
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


def _freeze(network_wait_s: float | None) -> InputFreeze:
    """The input checks, with a wall clock a day ahead: no write counts as recent, so only the
    network folder's rule can grant a second look."""
    return InputFreeze("studio", 2.0, writers=lambda path: False,
                       wall_ns=lambda: time.time_ns() + 86_400 * 10**9,
                       network_wait_s=network_wait_s)


@pytest.mark.parametrize("reason", ["invalid_image", "empty_file"])
def test_a_first_unfinished_verdict_on_a_share_waits_and_is_journaled(
        job: ClaimedJob, tmp_path: Path, reason: str) -> None:
    exc = LocalInputError("a JPEG signature, but it does not decode fully", reason)
    with pytest.raises(InputUnsettledError) as raised:
        _freeze(32.0).before_blaming(job, tmp_path / "out", exc)
    assert raised.value.retry_in_s == 32.0 and reason in raised.value.detail
    assert Journal(job.job_dir).read().extra_settle_used
    _freeze(32.0).before_blaming(job, tmp_path / "out", exc)  # the second verdict counts


@pytest.mark.parametrize("reason", ["unsupported_format", "too_large", "not_regular_file"])
def test_verdicts_a_writer_cannot_explain_count_at_once(job: ClaimedJob, tmp_path: Path,
                                                        reason: str) -> None:
    _freeze(32.0).before_blaming(job, tmp_path / "out", LocalInputError("refused", reason))
    assert not Journal(job.job_dir).read().extra_settle_used


def test_a_local_folder_counts_an_old_files_first_verdict(job: ClaimedJob,
                                                         tmp_path: Path) -> None:
    exc = LocalInputError("truncated", "invalid_image")
    _freeze(None).before_blaming(job, tmp_path / "out", exc)
    assert not Journal(job.job_dir).read().extra_settle_used
