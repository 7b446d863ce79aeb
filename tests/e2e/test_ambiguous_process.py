"""No blind re-send of a paid call: after a process call with no usable answer (a timeout, a
connection lost after the request was sent, a restart while it was in flight) the daemon looks
for the call's outputs, with backoff, for ``process_timeout_s`` before sending it again.

What was paid is read from the emulator's request log: every process request it received.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bgcut_watchd.fake_api import FakeApiServer
from tests.support import (
    DaemonProcess,
    InProcessDaemon,
    all_requests,
    assert_outbox_complete_and_decodable,
    drop_images,
    files_under,
    job_of,
    states,
    wait_for,
    write_config,
)


def _process_calls_per_job(emulator: FakeApiServer) -> Counter[str]:
    """Process requests the emulator received (answered or not) per job."""
    return Counter(job_of(r) or "?" for r in all_requests(emulator) if r.endpoint == "process")


def test_a_process_call_slower_than_its_timeout_is_paid_once(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    # Over the timeout below; the look-out then has until 2.0 s after the call to find the
    # outputs, which the emulator stores after its latency and two renders (0.7 s to spare).
    emulator.update(latency_process_s=1.3)
    config = write_config(tmp_path, emulator.base_url, api={"process_timeout_s": 1.0})
    root = tmp_path / "studio"
    with InProcessDaemon(config):
        sources = drop_images(root / "inbox", 2)
        wait_for(lambda: len(files_under(root / "archive")) == 2, timeout_s=20,
                 what="both inputs archived")
    calls = _process_calls_per_job(emulator)
    assert sorted(calls.values()) == [1, 1], calls
    assert files_under(root / "quarantine") == []
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))


def test_a_restart_with_process_calls_in_flight_pays_each_call_once(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    emulator.update(latency_process_s=3.0)
    config = write_config(tmp_path, emulator.base_url, daemon={
        "workers": 4, "stability_s": 0.1, "shutdown_timeout_s": 0.5})
    root = tmp_path / "studio"
    sources = drop_images(root / "inbox", 8)
    with DaemonProcess(config) as first:
        wait_for(lambda: states(root / "inbox").count("uploaded") == 4,
                 what="four process calls in flight")
        assert first.terminate() == 0  # what systemctl restart does first
    with DaemonProcess(config) as second:
        wait_for(lambda: len(files_under(root / "archive")) == 8, timeout_s=40,
                 what="every input archived")
        assert second.terminate() == 0
    calls = _process_calls_per_job(emulator)
    assert len(calls) == 8 and set(calls.values()) == {1}, calls
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))
