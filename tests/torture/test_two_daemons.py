"""Torture 6: two daemons on one inbox (two hosts on one share, or two instances by mistake):
every file is processed exactly once, by one of them.

Some files are there when both start (both startup scans race), the rest stream in while both
watch. Each file must be uploaded and processed once, archived once, with one output set.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from tests.support import (
    MAKERS,
    DaemonProcess,
    InboxWriter,
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

SEED = 20261127
PRESENT_AT_START = 20


def two_configs(tmp_path: Path, base_url: str, shared_state: bool) -> tuple[Path, Path]:
    """Two configurations of the same folders; separate state dirs unless ``shared_state``."""
    configs = []
    for name in ("a", "b"):
        state = tmp_path / ("state" if shared_state else f"state-{name}")
        path = write_config(tmp_path, base_url, daemon={"stability_s": 0.1,
                                                        "state_dir": str(state)})
        configs.append(path.rename(tmp_path / f"config-{name}.toml"))
    return configs[0], configs[1]


@pytest.mark.parametrize("shared_state", [False, True], ids=["two-hosts", "one-state-dir"])
def test_two_daemons_on_one_inbox_process_every_file_exactly_once(
    tmp_path: Path, emulator: FakeApiServer, torture_report: Report, shared_state: bool,
) -> None:
    emulator.update(latency_process_s=0.02)
    config_a, config_b = two_configs(tmp_path, emulator.base_url, shared_state)
    root = tmp_path / "studio"
    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    sources: dict[str, str] = {}
    for index in range(PRESENT_AT_START):
        maker, ext = MAKERS[index % len(MAKERS)]
        path = maker(inbox, f"early-{index:02d}.{ext}", (300 + index, 40))
        sources[path.name] = sha256_of(path)
    streamed = SIZES.twin_files - PRESENT_AT_START
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        # Both start at once: with a shared state_dir they create one fresh ledger together
        # (this used to race in its schema migration, and one daemon exited 78).
        daemon_a = stack.enter_context(DaemonProcess(config_a, log_path=tmp_path / "a.log"))
        daemon_b = stack.enter_context(DaemonProcess(config_b, log_path=tmp_path / "b.log"))
        writer = InboxWriter(inbox, tmp_path / "staging", streamed, SEED, pace_s=0.05).start()
        writer.join(timeout_s=120)
        sources.update(writer.hashes)
        wait_for(lambda: len(files_under(root / "archive")) >= SIZES.twin_files
                 and not job_dirs(inbox) and not visible_files(inbox),
                 timeout_s=120, interval_s=0.1, what="every input archived",
                 explain=lambda: describe_leftovers(inbox, daemon_a.log_text(),
                                                    daemon_b.log_text()))
        elapsed_s = time.monotonic() - started
        assert daemon_a.terminate() == 0 and daemon_b.terminate() == 0

    archived = {str(p.relative_to(root / "archive")): sha256_of(p)
                for p in files_under(root / "archive")}
    assert archived == sources  # each input archived once, intact, under its own name
    assert files_under(root / "quarantine") == []
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))  # one set each
    entries = emulator.requests()
    uploaded = Counter(sha256_of(emulator.local_path(e.file_path)) for e in entries
                       if e.endpoint == "upload" and e.status == 200 and e.file_path)
    assert uploaded == Counter(sources.values())  # each input uploaded exactly once
    processed = [e for e in entries if e.endpoint == "process" and e.status == 200]
    assert len(processed) == SIZES.twin_files  # ... and paid for exactly once
    done = [daemon.log_text().count(": done, ") for daemon in (daemon_a, daemon_b)]
    assert sum(done) == SIZES.twin_files and min(done) > 0, done  # both took a share
    torture_report(f"{SIZES.twin_files} files ({PRESENT_AT_START} there at start), "
                   f"{'one shared' if shared_state else 'separate'} state dir: daemon A did "
                   f"{done[0]}, B {done[1]}; {len(processed)} process calls; {elapsed_s:.0f}s")
