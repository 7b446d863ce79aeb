"""Every HTTP call has a total deadline (issue 9, finding 10): an answer dribbled one byte every
half second, whose every read comes well within the per-read timeout, is cut when the call's
whole budget (``connect_timeout_s`` + the endpoint's timeout) is spent, and the job is retried.
The real daemon in-process, the real emulator dribbling its answers, real folders."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.fake_api.reqlog import RequestLogEntry
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, files_under, visible_files, wait_for, write_config

CONNECT_S = 1.0
ENDPOINT_S = 2.0
DEADLINE_S = CONNECT_S + ENDPOINT_S
MAX_BACKOFF_S = 0.5  # write_config's retry.max_delay_s
DRIBBLE_BYTES_PER_S = 2.0  # one byte every 0.5 s: each read is far within ENDPOINT_S


def _dribbled(emulator: FakeApiServer, endpoint: str) -> list[RequestLogEntry]:
    return [e for e in emulator.requests() if e.endpoint == endpoint and e.fault == "dribble"]


def _rounds(downloads: list[RequestLogEntry]) -> list[float]:
    """When each round of a job's downloads began: they run side by side (``job.fetch``), so
    the downloads of one round begin together, far less than the deadline apart."""
    starts: list[float] = []
    for entry in sorted(downloads, key=lambda e: e.timestamp_s):
        if not starts or entry.timestamp_s - starts[-1] > DEADLINE_S / 2:
            starts.append(entry.timestamp_s)
    return starts


def _next_request_after(emulator: FakeApiServer, entry: RequestLogEntry) -> RequestLogEntry:
    later = [e for e in emulator.requests() if e.timestamp_s > entry.timestamp_s]
    return min(later, key=lambda e: e.timestamp_s)


def _assert_cut_near_the_deadline(gap_s: float) -> None:
    """The job's next request came once the deadline had passed, within a second of it (plus
    the retry's backoff): the dribbled call was aborted at its deadline, not before or after."""
    assert DEADLINE_S - 0.1 <= gap_s <= DEADLINE_S + 1.0 + MAX_BACKOFF_S, gap_s


def _config(tmp_path: Path, emulator: FakeApiServer, endpoint: str) -> Path:
    return write_config(tmp_path, emulator.base_url, retry={"max_attempts": 50},
                        api={"connect_timeout_s": CONNECT_S, f"{endpoint}_timeout_s": ENDPOINT_S})


def _retry_warnings(caplog: pytest.LogCaptureFixture, endpoint: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "retrying" in r.getMessage()
            and f"{endpoint}: no complete answer within {DEADLINE_S:g} s" in r.getMessage()]


def test_a_dribbled_download_is_cut_at_its_deadline_and_retried(
    tmp_path: Path, emulator: FakeApiServer, caplog: pytest.LogCaptureFixture,
) -> None:
    config = _config(tmp_path, emulator, "download")
    root = tmp_path / "studio"
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    emulator.update(dribble_download_bytes_per_s=DRIBBLE_BYTES_PER_S)
    with caplog.at_level(logging.WARNING, logger="bgcut_watchd"), InProcessDaemon(config):
        make_valid_jpeg(root / "inbox", "slow.jpg", size=(96, 64))
        wait_for(lambda: len(_rounds(_dribbled(emulator, "download"))) >= 3, timeout_s=20,
                 what="three rounds of dribbled downloads (two of them retries)")
        emulator.update(dribble_download_bytes_per_s=0)
        wait_for(lambda: files_under(root / "archive"), timeout_s=20, what="the input archived")
    first, second, third = _rounds(_dribbled(emulator, "download"))[:3]
    gaps = (second - first, third - second)
    print(f"rounds of dribbled downloads began {gaps[0]:.2f} s and {gaps[1]:.2f} s apart "
          f"(deadline {DEADLINE_S:g} s, backoff <= {MAX_BACKOFF_S:g} s)")
    for gap_s in gaps:
        _assert_cut_near_the_deadline(gap_s)
    assert len(_retry_warnings(caplog, "download")) >= 2
    assert len(visible_files(root / "outbox")) == 3
    assert files_under(root / "quarantine") == []


def test_a_dribbled_process_answer_is_cut_at_its_deadline_and_not_paid_again(
    tmp_path: Path, emulator: FakeApiServer, caplog: pytest.LogCaptureFixture,
) -> None:
    config = _config(tmp_path, emulator, "process")
    root = tmp_path / "studio"
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    emulator.update(dribble_process_bytes_per_s=DRIBBLE_BYTES_PER_S)
    with caplog.at_level(logging.WARNING, logger="bgcut_watchd"), InProcessDaemon(config):
        make_valid_jpeg(root / "inbox", "slow.jpg", size=(96, 64))
        wait_for(lambda: _dribbled(emulator, "process"), timeout_s=10, what="a dribbled process")
        # The dribble stays on: a process call that timed out may have run (it did), so the
        # retry looks for its outputs before paying again, finds them and downloads them.
        wait_for(lambda: files_under(root / "archive"), timeout_s=20, what="the input archived")
    (process,) = [e for e in emulator.requests() if e.endpoint == "process"]
    after = _next_request_after(emulator, process)
    assert after.endpoint == "download"
    print(f"the job's next request came {after.timestamp_s - process.timestamp_s:.2f} s after "
          f"the dribbled process call began (deadline {DEADLINE_S:g} s)")
    _assert_cut_near_the_deadline(after.timestamp_s - process.timestamp_s)
    assert len(_retry_warnings(caplog, "process")) == 1
    assert len(visible_files(root / "outbox")) == 3
    assert files_under(root / "quarantine") == []


def test_the_deadline_covers_dribbled_headers_too(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = _config(tmp_path, emulator, "download")
    root = tmp_path / "studio"
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    emulator.update(dribble_download_bytes_per_s=DRIBBLE_BYTES_PER_S, dribble_headers=True)
    with InProcessDaemon(config):
        make_valid_jpeg(root / "inbox", "slow.jpg", size=(96, 64))
        wait_for(lambda: len(_rounds(_dribbled(emulator, "download"))) >= 2, timeout_s=20,
                 what="two rounds of dribbled downloads")
        emulator.update(dribble_download_bytes_per_s=0, dribble_headers=False)
        wait_for(lambda: files_under(root / "archive"), timeout_s=20, what="the input archived")
    gaps = [b - a for a, b in itertools.pairwise(_rounds(_dribbled(emulator, "download")))]
    print(f"dribbled-header downloads began {gaps[0]:.2f} s apart (deadline {DEADLINE_S:g} s)")
    _assert_cut_near_the_deadline(gaps[0])
