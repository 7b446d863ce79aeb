"""product.md's "Failure" table, end to end: the real daemon, the real emulator, real folders.

Faults are flipped on the running emulator with ``emulator.update(...)``; what the daemon did is
read back from the emulator's request log (timestamps are the emulator's monotonic clock at the
arrival of each request) and from the folders.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd.commands.status import collect_status
from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer
from bgcut_watchd.fake_api.faults import FaultDice
from bgcut_watchd.fake_api.reqlog import RequestLogEntry
from tests.hostile import make_valid_jpeg
from tests.support import (
    API_KEY,
    InProcessDaemon,
    files_under,
    poll_until,
    visible_files,
    wait_for,
    write_config,
)

OUTPUTS_PER_INPUT = 3  # the default variants of tests.support: full, thumb, white


# --- helpers ---------------------------------------------------------------------------------

def _entries(emulator: FakeApiServer, endpoint: str | None = None,
             status: int | None = None) -> list[RequestLogEntry]:
    return [r for r in emulator.requests()
            if (endpoint is None or r.endpoint == endpoint)
            and (status is None or r.status == status)]


def _job_of(entry: RequestLogEntry) -> str | None:
    """The job id in a logged stored path (``<upload_prefix>/<job id>/...``)."""
    if entry.file_path is None or entry.file_path.count("/") < 2:
        return None
    return entry.file_path.split("/")[1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _kept_inputs(inbox: Path) -> list[str] | None:
    """sha256 of every input still in the inbox or in its work area; None when a claim moved
    one while we looked (a running daemon claims during a pause too: look again)."""
    try:
        work = [p for p in files_under(inbox / ".bgcut-work") if p.name.startswith("input")]
        return sorted(_sha256(p) for p in [*visible_files(inbox), *work])
    except FileNotFoundError:
        return None


def _status(tmp_path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((tmp_path / "state" / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def _drop(inbox: Path, names: Iterable[str], start: int = 0) -> list[str]:
    """Valid JPEGs, distinct by size; returns their sha256.

    The size, not only the name, keeps them distinct: ``tests.hostile`` tints each image by
    ``crc32(name) % 120``, and names collide (``mixed-1.jpg`` and ``mixed-3.jpg`` do), which
    would make the ledger skip one as a duplicate. Pass ``start`` to keep later drops distinct.
    """
    inbox.mkdir(parents=True, exist_ok=True)
    paths = [make_valid_jpeg(inbox, name, size=(64 + start + n, 48))
             for n, name in enumerate(names)]
    hashes = sorted(_sha256(p) for p in paths)
    assert len(set(hashes)) == len(hashes)
    return hashes


def _seed_for(script: Sequence[tuple[str, str | None]], **shares: float) -> int:
    """A seed under which the emulator's dice give ``script``'s faults to a job's requests
    (endpoint, fault) in that order: one job sends its requests one after the other."""
    options = FakeApiOptions(**shares)  # type: ignore[arg-type]
    for seed in range(10_000):
        dice = FaultDice(seed)
        if all(dice.roll(endpoint, options) == fault for endpoint, fault in script):
            return seed
    raise AssertionError(f"no seed gives {script}")


def _gaps_s(entries: list[RequestLogEntry]) -> list[float]:
    times = sorted(e.timestamp_s for e in entries)
    return [b - a for a, b in itertools.pairwise(times)]


def _after_burst(entries: list[RequestLogEntry], pause_s: float) -> list[RequestLogEntry]:
    """The requests sent after the pause began: the first failure's burst (requests already
    past the gate when it closed) arrives within a fraction of the pause."""
    first = min(e.timestamp_s for e in entries)
    return [e for e in entries if e.timestamp_s > first + pause_s / 2]


# --- 401 / 402: pause everything, quarantine nothing, resume by itself ------------------------

@pytest.mark.parametrize(("fault", "status", "reason", "pause_key"), [
    ("auth_fail", 401, "auth", "auth_pause_s"),
    ("credits_exhausted", 402, "credits", "credits_pause_s"),
])
def test_account_failure_pauses_all_api_work_and_resumes_by_itself(
    tmp_path: Path, emulator: FakeApiServer, fault: str, status: int, reason: str,
    pause_key: str,
) -> None:
    pause_s = 0.6
    config = write_config(tmp_path, emulator.base_url, retry={pause_key: pause_s})
    inbox = tmp_path / "studio" / "inbox"
    # A slow process call widens the window in which a wrongly reopened gate lets others in.
    emulator.update(latency_process_s=0.2, **{fault: True})
    with InProcessDaemon(config):
        sources = _drop(inbox, [f"first-{n}.jpg" for n in range(3)])
        wait_for(lambda: _status(tmp_path).get("pause", {}) and
                 _status(tmp_path)["pause"]["reason"] == reason, what="status shows the pause")
        # Files arriving during the pause wait too (some may be the next probe: an upload).
        sources += _drop(inbox, [f"later-{n}.jpg" for n in range(3)], start=3)
        wait_for(lambda: len(_after_burst(_entries(emulator, status=status), pause_s)) >= 3,
                 timeout_s=15, what="three probes during the pause")
        paused_log = emulator.requests()
        assert files_under(tmp_path / "studio" / "quarantine") == []
        assert files_under(tmp_path / "studio" / "outbox") == []
        # Every input is kept, in the inbox or claimed (a claim between the two looks of one
        # listing misses a file: the next listing finds it).
        wait_for(lambda: _kept_inputs(inbox) == sorted(sources), timeout_s=5,
                 what="every input kept", explain=lambda: str(_kept_inputs(inbox)))
        emulator.update(**{fault: False})
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 6,
                 timeout_s=15, what="every input archived after the fault cleared")
    failed = [e for e in paused_log if e.status == status]
    probes = _after_burst(failed, pause_s)
    # At most one probe per pause interval, whatever the number of waiting jobs.
    assert min(_gaps_s(probes)) >= 0.9 * pause_s, _gaps_s(probes)
    # No other call got through while paused: a 402 probe may be an upload (which cannot
    # tell about credits) followed by that job's process call, never anything more.
    window = [e for e in paused_log if e.timestamp_s > min(p.timestamp_s for p in probes)]
    assert not [e for e in window if e.endpoint != "upload" and e.status != status]
    assert len([e for e in window if e.endpoint == "upload"]) <= len(probes)
    assert len(files_under(tmp_path / "studio" / "outbox")) == 6 * OUTPUTS_PER_INPUT
    assert files_under(tmp_path / "studio" / "quarantine") == []
    # Nothing paid twice: the jobs resumed where they stopped.
    assert len(_entries(emulator, "upload", 200)) == 6
    assert len(_entries(emulator, "process", 200)) == 6


# --- the service unreachable: a pause, not a quarantine, however long it lasts ---------------

def test_an_unreachable_service_pauses_all_api_work_quarantines_nothing_and_resumes(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    retry = {"max_attempts": 3, "base_delay_s": 0.05, "max_delay_s": 0.4}
    config = write_config(tmp_path, emulator.base_url, retry=retry)
    inbox = tmp_path / "studio" / "inbox"
    port, storage = emulator.port, emulator.storage_dir
    with InProcessDaemon(config) as daemon:
        sources = _drop(inbox, ["before.jpg"])
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="the first input archived")
        emulator.stop()  # connection refused from now on
        sources += _drop(inbox, [f"during-{n}.jpg" for n in range(3)], start=1)
        wait_for(lambda: (_status(tmp_path).get("pause") or {}).get("reason") == "unreachable",
                 what="status shows the outage")
        # Three attempts of backoff take well under a second: wait many times that long.
        assert not poll_until(lambda: files_under(tmp_path / "studio" / "quarantine"), 4.0)
        line = daemon.service.reporter.status_line()
        described = collect_status(daemon.config, reappear_s=0.0)["pause"]["description"]
        wait_for(lambda: _kept_inputs(inbox) == sorted(sources[1:]), timeout_s=5,
                 what="every input kept", explain=lambda: str(_kept_inputs(inbox)))
        with FakeApiServer(FakeApiOptions(seed=1), port=port, api_key=API_KEY,
                           storage_dir=storage):
            wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 4,
                     what="every input archived once the service is back")
            wait_for(lambda: _status(tmp_path).get("pause") is None, what="the pause ended")
    assert line.startswith("paused: service unreachable since ")
    assert described.startswith("paused: service unreachable since ")
    assert files_under(tmp_path / "studio" / "quarantine") == []
    assert len(files_under(tmp_path / "studio" / "outbox")) == 4 * OUTPUTS_PER_INPUT


# --- 429: Retry-After honoured --------------------------------------------------------------

def test_429_retry_after_is_honoured(tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"max_delay_s": 5.0})
    inbox = tmp_path / "studio" / "inbox"
    emulator.update(fail_429=1.0, retry_after_s=1)
    with InProcessDaemon(config):
        _drop(inbox, ["limited.jpg"])
        wait_for(lambda: _entries(emulator, status=429), what="a 429")
        emulator.update(fail_429=0.0)
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="the input archived")
    log = emulator.requests()
    limited = [e for e in log if e.status == 429]
    assert len(limited) == 1  # flipped off long before a retry was allowed
    after = [e for e in log if e.timestamp_s > limited[0].timestamp_s]
    assert after, "no request after the 429"
    assert after[0].timestamp_s - limited[0].timestamp_s >= 1.0
    assert len(files_under(tmp_path / "studio" / "outbox")) == OUTPUTS_PER_INPUT


# --- 5xx, resets, truncated downloads: retried until they succeed --------------------------

@pytest.mark.parametrize(("share", "fault", "endpoint"), [
    ("fail_5xx", "5xx", "upload"),
    ("fail_reset", "reset", "upload"),
    ("fail_truncate", "truncate", "download"),
])
def test_transient_faults_are_retried_until_success(
    tmp_path: Path, emulator: FakeApiServer, share: str, fault: str, endpoint: str,
) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"max_attempts": 50})
    inbox = tmp_path / "studio" / "inbox"
    emulator.update(**{share: 1.0})
    with InProcessDaemon(config):
        _drop(inbox, ["flaky-a.jpg", "flaky-b.jpg"])
        wait_for(lambda: len([e for e in emulator.requests() if e.fault == fault]) >= 4,
                 what=f"four {fault} faults")
        emulator.update(**{share: 0.0})
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2,
                 what="both inputs archived")
    assert {e.endpoint for e in emulator.requests() if e.fault == fault} == {endpoint}
    assert files_under(tmp_path / "studio" / "quarantine") == []
    _assert_outputs_are_the_emulators(tmp_path, emulator, expected=2 * OUTPUTS_PER_INPUT)


def test_a_seeded_mix_of_transient_faults_ends_in_success(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"max_attempts": 40})
    inbox = tmp_path / "studio" / "inbox"
    emulator.update(seed=7, fail_5xx=0.15, fail_reset=0.1, fail_truncate=0.1, fail_429=0.05,
                    retry_after_s=0)
    with InProcessDaemon(config):
        _drop(inbox, [f"mixed-{n}.jpg" for n in range(6)])
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 6,
                 timeout_s=30, what="every input archived")
    assert [e for e in emulator.requests() if e.fault is not None], "no fault was injected"
    assert files_under(tmp_path / "studio" / "quarantine") == []
    # The emulator injects these faults before doing any work: one paid call per input.
    assert len(_entries(emulator, "process", 200)) == 6
    _assert_outputs_are_the_emulators(tmp_path, emulator, expected=6 * OUTPUTS_PER_INPUT)


def _assert_outputs_are_the_emulators(tmp_path: Path, emulator: FakeApiServer,
                                      expected: int) -> None:
    """Every published output is byte for byte a file the emulator rendered (none truncated)."""
    rendered = {_sha256(emulator.local_path(e.file_path))
                for e in _entries(emulator, "download", 200) if e.file_path}
    outputs = files_under(tmp_path / "studio" / "outbox")
    assert len(outputs) == expected
    assert {_sha256(p) for p in outputs} <= rendered


# --- 404 after upload: upload again ---------------------------------------------------------

def test_404_after_upload_makes_the_job_upload_again(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    script = [("upload", None), ("process", "404"), ("upload", None), ("process", None),
              ("download", None), ("download", None), ("download", None)]
    emulator.update(fail_404_after_upload=0.5,
                    seed=_seed_for(script, fail_404_after_upload=0.5))
    with InProcessDaemon(config):
        _drop(inbox, ["elsewhere.jpg"])
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="the input archived")
    assert [(e.endpoint, e.fault) for e in emulator.requests()] == script
    uploads = _entries(emulator, "upload", 200)
    assert len(uploads) == 2 and len({_job_of(e) for e in uploads}) == 1  # one job, again
    assert _entries(emulator, "process", 200)[0].file_path == uploads[1].file_path
    assert len(files_under(tmp_path / "studio" / "outbox")) == OUTPUTS_PER_INPUT


# --- retries exhausted ----------------------------------------------------------------------

def test_exhausted_retries_quarantine_with_the_last_error(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"max_attempts": 3})
    inbox = tmp_path / "studio" / "inbox"
    # A reset first (no HTTP status), then 503s: the error file must tell the last one.
    script = [("upload", "reset"), ("upload", "5xx"), ("upload", "5xx")]
    shares = {"fail_reset": 0.5, "fail_5xx": 1.0}
    emulator.update(seed=_seed_for(script, **shares), **shares)
    with InProcessDaemon(config):
        sources = _drop(inbox, ["doomed.jpg"])
        quarantined = tmp_path / "studio" / "quarantine" / "doomed.jpg"
        wait_for(lambda: (quarantined.parent / "doomed.jpg.error.json").exists(),
                 what="the input quarantined")
    assert [(e.endpoint, e.fault) for e in emulator.requests()] == script
    error = json.loads((quarantined.parent / "doomed.jpg.error.json").read_text())
    assert (error["stage"], error["reason"], error["http_status"], error["attempts"]) == (
        "upload", "retries_exhausted", 503, 3)
    assert error["detail"] == "Service temporarily unavailable."
    assert error["file"] == str(inbox / "doomed.jpg")
    assert error["sha256"] == sources[0] == _sha256(quarantined)
    assert visible_files(inbox) == []
    assert files_under(tmp_path / "studio" / "outbox") == []


# --- the API rejects the input: quarantine at once ------------------------------------------

def test_input_rejected_by_the_api_is_quarantined_at_once(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    emulator.update(max_upload_bytes=100)
    with InProcessDaemon(config):
        _drop(inbox, ["too-big-for-them.jpg"])
        error_file = tmp_path / "studio" / "quarantine" / "too-big-for-them.jpg.error.json"
        wait_for(error_file.exists, what="the input quarantined")
        emulator.update(max_upload_bytes=None)
        _drop(inbox, ["fine.jpg"], start=1)  # the daemon carries on
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="the next input archived")
    error = json.loads(error_file.read_text())
    assert (error["stage"], error["reason"], error["http_status"], error["attempts"]) == (
        "upload", "too_large", 413, 1)
    assert "Maximum upload size" in error["detail"]
    # Both times at one precision, UTC, to the second: "2026-12-01T14:40:38+00:00".
    for key in ("first_seen", "quarantined_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", error[key]), error[key]
    assert len(_entries(emulator, "upload", 413)) == 1  # no retry
    assert len(_entries(emulator, "process")) == 1  # only the next input's


# --- the local disk: keep the input, pause the folder, resume when fixed ---------------------

def _block_outbox(outbox: Path, how: str) -> Callable[[], None]:
    """Make ``outbox/shoot`` impossible to create (after the daemon's start-up check, which
    refuses an outbox it cannot write: the disk fails *while* it runs); return the repair."""
    if how == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root ignores directory permissions")
        outbox.chmod(0o500)
        return lambda: outbox.chmod(0o755)
    blocker = outbox / "shoot"
    blocker.write_bytes(b"a file where the outbox subfolder must go")  # works even as root
    return blocker.unlink


@pytest.mark.parametrize("how", ["read_only", "file_in_the_way"])
def test_unwritable_outbox_keeps_the_input_pauses_the_folder_and_resumes(
    tmp_path: Path, emulator: FakeApiServer, how: str,
) -> None:
    config = write_config(tmp_path, emulator.base_url, folders=("studio", "web"),
                          retry={"disk_pause_s": 0.3})
    inbox = tmp_path / "studio" / "inbox"
    outbox = tmp_path / "studio" / "outbox"
    (inbox / "shoot").mkdir(parents=True)
    outbox.mkdir(parents=True)
    with InProcessDaemon(config):
        repair = _block_outbox(outbox, how)
        sources = _drop(inbox / "shoot", ["blocked.jpg"])
        wait_for(lambda: (_status(tmp_path).get("folders", {}).get("studio", {})
                          .get("paused")), what="status shows the folder paused")
        _drop(tmp_path / "web" / "inbox", ["other-folder.jpg"], start=1)
        wait_for(lambda: files_under(tmp_path / "web" / "archive"),
                 what="another folder's input processed meanwhile")
        assert _status(tmp_path)["folders"]["studio"]["paused"]
        assert _kept_inputs(inbox) == sources
        assert files_under(tmp_path / "studio" / "quarantine") == []
        repair()
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"),
                 what="the input archived once the outbox is fixed")
        wait_for(lambda: not _status(tmp_path)["folders"]["studio"]["paused"],
                 what="status shows the folder resumed")
    names = sorted(p.name for p in files_under(outbox / "shoot"))
    assert names == ["blocked.full.png", "blocked.thumb.webp", "blocked.white.jpg"]
    assert [p.relative_to(tmp_path / "studio" / "archive")
            for p in files_under(tmp_path / "studio" / "archive")] == [Path("shoot/blocked.jpg")]
    assert len(_entries(emulator, "upload", 200)) == 2  # the paid work was kept: once each
    assert len(_entries(emulator, "process", 200)) == 2
