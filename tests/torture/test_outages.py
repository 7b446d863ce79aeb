"""Torture 3: the account fails. A 401, then a 402, each for a while, then fixed: nothing is
quarantined, at most one probe goes out per pause interval, and processing resumes by itself,
in the same daemon process.

Quick mode scales the issue's 30 s outages down to ``SIZES.outage_s`` (3 s) with pauses of
``SIZES.pause_s`` (1 s); long mode runs 30 s outages with 5 s pauses. Either way each outage
lasts several pause intervals, so several probes are checked.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.fake_api.reqlog import RequestLogEntry
from tests.support import (
    DaemonProcess,
    describe_leftovers,
    drop_images,
    files_under,
    job_dirs,
    poll_until,
    wait_for,
    write_config,
)
from tests.torture import SIZES, Report

pytestmark = [pytest.mark.torture, pytest.mark.timeout(SIZES.timeout_s)]

FILES_PER_PHASE = 4
SPACING_SLACK = 0.9  # probes at least 0.9 pause intervals apart (clock reads, scheduling)
WORKERS = 4  # write_config's daemon.workers: at most this many requests were in flight


def pause_reason(state_dir: Path) -> str | None:
    try:
        status = json.loads((state_dir / "status.json").read_text("utf-8"))
    except (OSError, ValueError):  # being replaced right now
        return None
    pause = status.get("pause")
    return None if pause is None else str(pause["reason"])


def probes_after_first(refused: list[RequestLogEntry],
                       pause_s: float) -> tuple[int, list[float]]:
    """(requests in flight when the pause began, arrival times of the later ones: the probes).

    No probe can come before a pause interval has passed since the first refusal: whatever
    arrived before that had passed the gate before the daemon knew of the pause.
    """
    first = refused[0]
    answered_s = first.timestamp_s + first.duration_s
    in_flight = [e for e in refused if e.timestamp_s < answered_s + SPACING_SLACK * pause_s]
    return len(in_flight), [e.timestamp_s for e in refused[len(in_flight):]]


def check_probes(refused: list[RequestLogEntry], until_s: float, pause_s: float) -> str:
    """At most one probe per pause interval from the first refusal until ``until_s`` (the fix);
    returns a description of what was seen."""
    assert refused, "the outage was never noticed"
    refused = sorted(refused, key=lambda e: e.timestamp_s)
    in_flight, probes = probes_after_first(refused, pause_s)
    assert in_flight <= WORKERS, f"{in_flight} requests refused right after the first one"
    first_answered_s = refused[0].timestamp_s + refused[0].duration_s
    times = [first_answered_s, *probes]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= SPACING_SLACK * pause_s for gap in gaps), gaps
    assert len(probes) <= int((until_s - first_answered_s) / pause_s) + 1, probes
    assert len(probes) >= 1, "no probe during the outage"  # it kept trying
    return (f"{in_flight} in flight, then {len(probes)} probe(s), "
            f"gaps {min(gaps, default=0):.2f}-{max(gaps, default=0):.2f}s")


def calls_between_probes(entries: list[RequestLogEntry], refused: list[RequestLogEntry],
                         until_s: float, pause_s: float) -> int:
    """API requests of any kind after the in-flight ones of an outage, until ``until_s``."""
    in_flight, _ = probes_after_first(sorted(refused, key=lambda e: e.timestamp_s), pause_s)
    after_s = sorted(e.timestamp_s for e in refused)[in_flight - 1]
    return sum(1 for e in entries if after_s < e.timestamp_s < until_s
               and e.endpoint in ("upload", "process", "download"))


def watch_outage(daemon: DaemonProcess, root: Path, outage_s: float) -> None:
    """Let the outage last ``outage_s``, failing at once if anything is quarantined or the
    daemon dies meanwhile."""
    bad = poll_until(lambda: files_under(root / "quarantine") or daemon.proc is None
                     or daemon.proc.poll() is not None, timeout_s=outage_s)
    assert not bad, "an input was quarantined or the daemon died during the outage"


def test_401_then_402_then_fixed_quarantines_nothing_probes_once_per_pause_and_resumes(
    tmp_path: Path, emulator: FakeApiServer, torture_report: Report,
) -> None:
    pause_s, outage_s = SIZES.pause_s, SIZES.outage_s
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1},
                          retry={"auth_pause_s": pause_s, "credits_pause_s": pause_s})
    root, state_dir = tmp_path / "studio", tmp_path / "state"
    inbox = root / "inbox"
    with DaemonProcess(config) as daemon:
        drop_images(inbox, FILES_PER_PHASE, prefix="before")
        wait_for(lambda: len(files_under(root / "archive")) == FILES_PER_PHASE,
                 what="the first files archived")

        emulator.update(auth_fail=True)
        broken = time.monotonic()
        drop_images(inbox, FILES_PER_PHASE, prefix="during-401")
        wait_for(lambda: pause_reason(state_dir) == "auth", what="the 401 pause reported")
        watch_outage(daemon, root, outage_s)

        emulator.update(auth_fail=False, credits_exhausted=True)
        switched = time.monotonic()  # the emulator's clock too
        drop_images(inbox, FILES_PER_PHASE, prefix="during-402")
        wait_for(lambda: pause_reason(state_dir) == "credits", timeout_s=pause_s + 10,
                 what="the 402 pause reported")
        watch_outage(daemon, root, outage_s)

        emulator.update(credits_exhausted=False)
        fixed = time.monotonic()
        wait_for(lambda: len(files_under(root / "archive")) == 3 * FILES_PER_PHASE
                 and not job_dirs(inbox), timeout_s=pause_s + 20, what="every input archived",
                 explain=lambda: describe_leftovers(inbox, daemon.log_text()))
        resumed_s = time.monotonic() - fixed
        assert daemon.proc is not None and daemon.proc.poll() is None  # no restart needed
        # status.json is rewritten once a second: the lifted pause shows within one report.
        wait_for(lambda: pause_reason(state_dir) is None, timeout_s=5.0,
                 what="the lifted pause reported")
        assert daemon.terminate() == 0

    entries = emulator.requests()
    auth = check_probes([e for e in entries if e.fault == "auth_fail"], switched, pause_s)
    refused_402 = [e for e in entries if e.fault == "credits_exhausted"]
    credits = check_probes(refused_402, fixed, pause_s)
    # A 402 probe may be an upload (which cannot tell) then the process call (which can).
    probes_402 = len(probes_after_first(sorted(refused_402, key=lambda e: e.timestamp_s),
                                        pause_s)[1])
    assert calls_between_probes(entries, refused_402, fixed, pause_s) <= 2 * probes_402
    torture_report(f"401 for {switched - broken:.1f}s then 402 for {fixed - switched:.1f}s, "
                   f"pauses of {pause_s:g}s: "
                   f"401: {auth}; 402: {credits}; all {3 * FILES_PER_PHASE} inputs archived "
                   f"{resumed_s:.1f}s after the fix, none quarantined, same process")
    assert files_under(root / "quarantine") == []
    assert resumed_s <= pause_s + 5.0  # the next probe after the fix succeeds
