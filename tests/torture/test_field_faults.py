"""Torture 7 (issue 9): the faults met in the field, on a real daemon subprocess.

* an internet outage (the API refuses connections) longer than every file's retries: nothing is
  quarantined, every file is processed once the service is back;
* corrupt downloads (200 with an HTML page, bodies cut with a matching Content-Length): nothing
  bad is ever published, nothing is quarantined, every input ends processed;
* inputs rewritten in place after their claim, through the handle their writer kept (the
  writer invisible to the daemon, as from another host): what is archived is what the outputs
  were made from.

Quick mode (CI) uses a few files and short outages; ``BGCUT_TORTURE=long`` many files and an
outage of minutes (``tests/torture/__init__.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer
from tests.e2e.test_input_frozen import _invisible_writer_daemon, _jpeg
from tests.support import (
    API_KEY,
    DaemonProcess,
    drop_images,
    files_under,
    job_dirs,
    poll_until,
    sha256_of,
    states,
    visible_files,
    wait_for,
    wait_for_log,
    write_config,
)
from tests.torture import SIZES, Report

pytestmark = [pytest.mark.torture, pytest.mark.timeout(SIZES.timeout_s)]

OUTPUTS = 3
PIL_FORMATS = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG"}


def _assert_outputs_whole(outbox: Path, inputs: int) -> None:
    """Every published output decodes in full, in the format its name says."""
    outputs = visible_files(outbox)
    assert len(outputs) == inputs * OUTPUTS, len(outputs)
    for path in outputs:
        with Image.open(path) as image:
            assert image.format == PIL_FORMATS[path.suffix], path
            image.load()


def test_an_outage_longer_than_every_retry_quarantines_nothing(
    tmp_path: Path, emulator: FakeApiServer, torture_report: Report,
) -> None:
    files = 8 if SIZES.mode == "quick" else 40
    outage_s = 3 * SIZES.outage_s
    retry = {"max_attempts": 3, "base_delay_s": 0.05, "max_delay_s": 0.5}
    config = write_config(tmp_path, emulator.base_url, retry=retry)
    root = tmp_path / "studio"
    port, storage = emulator.port, emulator.storage_dir
    with DaemonProcess(config) as daemon:
        wait_for_log(daemon, "watching 1 folder(s)")
        emulator.stop()  # connection refused: the internet is down
        drop_images(root / "inbox", files, prefix="outage")
        quarantined = poll_until(lambda: files_under(root / "quarantine"), outage_s)
        assert not quarantined, "an input was quarantined during the outage"
        with FakeApiServer(FakeApiOptions(seed=7), port=port, api_key=API_KEY,
                           storage_dir=storage):
            wait_for(lambda: len(files_under(root / "archive")) == files, timeout_s=60,
                     what="every input archived once the service is back")
        assert daemon.terminate() == 0
    assert files_under(root / "quarantine") == []
    _assert_outputs_whole(root / "outbox", files)
    torture_report(f"{files} files, the API unreachable for {outage_s:g}s (retries of a file "
                   "last under 2 s): none quarantined, all processed after")


def test_corrupt_downloads_are_never_published(
    tmp_path: Path, emulator: FakeApiServer, torture_report: Report,
) -> None:
    files = max(8, SIZES.chaos_files // 4)
    config = write_config(tmp_path, emulator.base_url, retry={"max_attempts": 15})
    root = tmp_path / "studio"
    emulator.update(fail_html_200=0.2, fail_cut_body=0.2)
    with DaemonProcess(config) as daemon:
        drop_images(root / "inbox", files, prefix="corrupt")
        wait_for(lambda: len(files_under(root / "archive")) == files, timeout_s=120,
                 what="every input archived")
        assert daemon.terminate() == 0
    faults = [r for r in emulator.requests() if r.fault in ("html_200", "cut_body")]
    assert faults, "no corrupt download was served"
    assert files_under(root / "quarantine") == []
    _assert_outputs_whole(root / "outbox", files)
    torture_report(f"{files} files, {len(faults)} corrupt downloads served: none published")


def test_inputs_rewritten_in_place_after_their_claim_are_processed_as_rewritten(
    tmp_path: Path, emulator: FakeApiServer, torture_report: Report,
) -> None:
    rounds = 3 if SIZES.mode == "quick" else 15
    wrapper = _invisible_writer_daemon()
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.5},
                          folder={"watch": "polling", "poll_interval_s": 0.1})
    root = tmp_path / "studio"
    inbox = root / "inbox"
    emulator.update(latency_process_s=0.8)
    archived: list[str] = []
    with DaemonProcess(config, wrapper=wrapper) as daemon:
        wait_for_log(daemon, "watching 1 folder(s)")
        for n in range(rounds):
            first, second = _jpeg((320, 240), f"v1-{n}"), _jpeg((200, 150), f"v2-{n}")
            with (inbox / f"shot{n}.jpg").open("wb") as stream:
                stream.write(first)
                stream.flush()
                wait_for(lambda: states(inbox) == ["uploaded"], timeout_s=20,
                         what="its process call in flight")
                stream.seek(0)  # a tool rewriting the file through the handle it kept
                stream.truncate()
                stream.write(second)
            wait_for(lambda n=n: len(files_under(root / "archive")) == n + 1
                     and not job_dirs(inbox), timeout_s=30, what="the input archived")
            archived.append(hashlib.sha256(second).hexdigest())
        assert daemon.terminate() == 0
    assert sorted(sha256_of(p) for p in files_under(root / "archive")) == sorted(archived)
    full = [p for p in visible_files(root / "outbox") if p.name.endswith(".full.png")]
    sizes = set()
    for path in full:
        with Image.open(path) as image:
            sizes.add(image.size)
    assert (200, 150) in sizes  # outputs made from the rewritten content
    torture_report(f"{rounds} inputs rewritten in place mid-job: each archived as rewritten, "
                   "processed again")
