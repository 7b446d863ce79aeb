"""``job.timeline``: a job's spans from the daemon's clock, and the one DEBUG line a finished
job leaves, read back by ``bench.timeline`` (a real run: the daemon in-process, the emulator)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bench.timeline import parse_timelines, summarise
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.timeline import Timeline
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, files_under, wait_for, write_config


class Ticks:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def test_spans_are_the_time_between_marks_named_after_what_ended_them() -> None:
    timeline = Timeline(Ticks(10.0, 10.5, 10.5, 12.0))
    timeline.mark("check")
    timeline.mark("claim")
    timeline.mark("upload")
    assert timeline.spans() == [("check", 0.5), ("claim", 0.0), ("upload", 1.5)]


def test_a_finished_job_logs_its_timeline_and_the_bench_sums_it(
    tmp_path: Path, emulator: FakeApiServer, caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.update(latency_process_s=0.3)
    config = write_config(tmp_path, emulator.base_url)
    with caplog.at_level(logging.DEBUG, logger="bgcut_watchd.timeline"), InProcessDaemon(config):
        make_valid_jpeg(tmp_path / "studio" / "inbox", "a.jpg")
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"), what="the input archived")
        wait_for(lambda: "timeline ms" in caplog.text, what="the job's timeline line")
    [spans] = parse_timelines(caplog.text)
    names = [name for name, _ in spans]
    # The process call's answer is kept, journaled with the next write: no journal span
    # between it and the downloads (the "sent" mark before it stays).
    assert names == ["claim", "wait", "check", "slot", "upload", "journal", "process",
                     "download", "publish", "dispose", "ledger", "finish"]
    assert dict(spans)["process"] >= 300
    summary = summarise(caplog.text)
    assert summary.jobs == 1 and 0 < summary.api_share < 1
    assert summary.api_ms >= 300 and summary.wall_ms == pytest.approx(sum(ms for _, ms in spans))
    in_slot = [ms for _, ms in spans[4:8]]  # upload, journal, process, download
    assert summary.slot_ms == pytest.approx(sum(in_slot))
    assert summary.api_ms <= summary.slot_ms <= summary.wall_ms
