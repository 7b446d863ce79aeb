"""The one claim path (``engine.claim``) when a peer daemon's recovery takes our new job dir.

Two daemons on one inbox that start together: the start-up recovery of one can find the other's
brand-new job dir between its ``mkdir`` and its lock (no journal, no input: it removes
it). The file has not moved, so the claim tries a fresh dir instead of leaving the file in the
inbox until the next rescan (``rescan_interval_s``, 300 s by default).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bgcut_watchd.engine.claim import CLAIM_TRIES, Claims, FolderParts
from bgcut_watchd.job.workarea import WorkArea, lock_exclusive


class _Runner:
    """The three things a claim asks of a folder's runner: its variants, a ledger record and
    a variant key. The ledger records what it was told."""

    def __init__(self) -> None:
        self.folder = SimpleNamespace(variants=())
        self.claims: list[str] = []
        self.ledger = SimpleNamespace(record_claim=lambda job_id, *_: self.claims.append(job_id))

    def variant_key_of(self, job: Any) -> str:
        return "key"


def _peer_takes(ids: set[str], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each new job dir named in ``ids`` is locked, right after its mkdir, by what a peer's
    recovery does: its own open of the lock file and an exclusive lock."""
    peer_fds: list[int] = []
    real_mkdir = Path.mkdir

    def mkdir_then_peer_locks(self: Path, *args: Any, **kwargs: Any) -> None:
        real_mkdir(self, *args, **kwargs)
        if self.name in ids:
            fd = os.open(self / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            assert lock_exclusive(fd)
            peer_fds.append(fd)

    monkeypatch.setattr(Path, "mkdir", mkdir_then_peer_locks)
    return peer_fds


@pytest.mark.parametrize("taken", [1, CLAIM_TRIES])
def test_a_claim_whose_new_dir_a_peer_recovery_took_tries_a_fresh_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: int) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = inbox / "a.png"
    source.write_bytes(b"pixels")
    ids = iter(f"job{n}" for n in range(CLAIM_TRIES + 1))
    area = WorkArea(inbox, new_job_id=lambda: next(ids))
    runner = _Runner()
    peer_fds = _peer_takes({f"job{n}" for n in range(taken)}, monkeypatch)
    try:
        job = Claims().claim("studio", FolderParts(cast(Any, runner), area), source)
        if taken < CLAIM_TRIES:  # a fresh dir: the file is claimed, recorded once
            assert job is not None and job.job_id == f"job{taken}"
            assert job.input_path.read_bytes() == b"pixels" and not source.exists()
            assert runner.claims == [job.job_id]
            job.release()
        else:  # every try taken: the file stays where it was for the next look
            assert job is None
            assert source.read_bytes() == b"pixels" and runner.claims == []
        assert len(peer_fds) == taken  # the peer's dirs are the peer's to remove
    finally:
        for fd in peer_fds:
            os.close(fd)
