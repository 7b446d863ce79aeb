"""Torture 2: API chaos. 20 % 5xx, 10 % 429 with Retry-After, 5 % connection resets, 5 %
truncated downloads, 5 % 404 after upload: every input processed, none quarantined, no
truncated output published, and at most 1.8x the API calls of a fault-free run.

The emulator draws each fault per request (first hit wins, in the order reset, 5xx, 429,
truncate, 404; a fault applies only where it can happen: truncation on downloads, 404 on
process and download calls). The request log gives the calls and faults per endpoint.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.fake_api.reqlog import RequestLogEntry
from tests.support import (
    MAKERS,
    VARIANT_SUFFIXES,
    DaemonProcess,
    assert_outbox_complete_and_decodable,
    describe_leftovers,
    files_under,
    job_dirs,
    sha256_of,
    visible_files,
    wait_for,
    write_config,
)
from tests.torture import SIZES, Report

pytestmark = [pytest.mark.torture, pytest.mark.timeout(SIZES.timeout_s)]

CHAOS = {"fail_5xx": 0.20, "fail_429": 0.10, "fail_reset": 0.05, "fail_truncate": 0.05,
         "fail_404_after_upload": 0.05}
RETRY_AFTER_S = 1  # the smallest Retry-After in whole seconds: every 429 holds all workers 1 s
CALLS_PER_INPUT = 1 + 1 + len(VARIANT_SUFFIXES)  # fault-free: upload, process, one download each
MAX_RATIO = 1.8
API_ENDPOINTS = ("upload", "process", "download")
# Up to 38 % of the downloads fail (1 - 0.95 * 0.8 * 0.9 * 0.95 * 0.95): a step failing
# max_attempts times running has probability ~0.38 ** max_attempts per request, or, because a
# download step that fetches some outputs before failing counts no progress, the tail of a
# negative binomial (~4 % of the jobs at the default 6). 15 keeps a whole run's odds of any
# quarantine under 1 %; the README's Reliability section gives the figures for 6.
MAX_ATTEMPTS = 15


def drop_inputs(inbox: Path, count: int) -> dict[str, str]:
    """``count`` distinct valid images of every format; returns {relative path: sha256}."""
    inbox.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    for index in range(count):
        maker, ext = MAKERS[index % len(MAKERS)]
        path = maker(inbox, f"chaos-{index:03d}.{ext}", (48 + index % 200, 40 + index // 200))
        made[path.name] = sha256_of(path)
    return made


def breakdown(entries: list[RequestLogEntry]) -> dict[str, Counter[str]]:
    """Per endpoint: ``calls``, one count per injected fault, ``ok`` for the 200s left and
    ``http <status>`` for the other answers (a 404 to a look for a process call's outputs)."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in entries:
        table[entry.endpoint]["calls"] += 1
        label = entry.fault or ("ok" if entry.status == 200 else f"http {entry.status}")
        table[entry.endpoint][label] += 1
    return table


def describe(table: dict[str, Counter[str]]) -> str:
    parts = []
    for endpoint in sorted(table):
        counts = table[endpoint]
        faults = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "calls")
        parts.append(f"{endpoint} {counts['calls']} ({faults})")
    return "; ".join(parts)


def test_api_chaos_processes_every_input_within_1_8x_the_calls(
    tmp_path: Path, emulator: FakeApiServer, torture_report: Report,
) -> None:
    emulator.update(retry_after_s=RETRY_AFTER_S, latency_process_s=0.02, **CHAOS)
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1},
                          retry={"max_attempts": MAX_ATTEMPTS})
    root = tmp_path / "studio"
    sources = drop_inputs(root / "inbox", SIZES.chaos_files)
    started = time.monotonic()
    with DaemonProcess(config) as daemon:
        wait_for(lambda: len(files_under(root / "archive")) + len(files_under(root / "quarantine"))
                 >= SIZES.chaos_files and not job_dirs(root / "inbox"),
                 timeout_s=SIZES.timeout_s - 30, interval_s=0.2, what="every input disposed",
                 explain=lambda: describe_leftovers(root / "inbox", daemon.log_text()))
        elapsed_s = time.monotonic() - started
        assert daemon.terminate() == 0

    entries = [e for e in emulator.requests() if e.endpoint in API_ENDPOINTS]
    table = breakdown(entries)
    ratio = len(entries) / (CALLS_PER_INPUT * SIZES.chaos_files)
    retries = daemon.log_text().count(", retrying in ")
    quarantined = len(files_under(root / "quarantine")) // 2  # each input and its error file
    torture_report(
        f"{SIZES.chaos_files} inputs, retry.max_attempts {MAX_ATTEMPTS}, {quarantined} "
        f"quarantined, {elapsed_s:.0f}s: {len(entries)} API calls = "
        f"{ratio:.2f}x the fault-free {CALLS_PER_INPUT * SIZES.chaos_files} (target <= "
        f"{MAX_RATIO}x); {retries} job retries; "
        f"{table['process']['ok'] - SIZES.chaos_files} input(s) processed twice (a download "
        f"404 twice: the job redone); per endpoint: {describe(table)}")

    assert files_under(root / "quarantine") == []
    archived = {str(p.relative_to(root / "archive")): sha256_of(p)
                for p in files_under(root / "archive")}
    assert archived == sources  # every input processed, intact, once
    outbox = root / "outbox"
    assert_outbox_complete_and_decodable(outbox, sorted(sources))  # no truncated output
    assert files_under(outbox) == visible_files(outbox)
    assert sum(table[e]["calls"] - table[e]["ok"] for e in API_ENDPOINTS) > 0  # faults happened
    assert ratio <= MAX_RATIO, describe(table)
