"""An input is frozen before it is paid for (product.md's fault model: writers that pause,
rewrite in place, or are still writing).

The real daemon as a subprocess, real folders, the archive and the quarantine on another
filesystem (a cross-filesystem move is a copy then an unlink: whatever a writer adds after the
unlink goes nowhere). The writer is this test. Where it must be invisible to the daemon (a
writer on another host of a shared folder), the daemon runs in its own PID namespace and polls.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import encode, subject_image
from tests.support import (
    DaemonProcess,
    all_requests,
    files_under,
    job_dirs,
    pid_namespace_wrapper,
    sha256_of,
    states,
    visible_files,
    wait_for,
    wait_for_log,
    write_config,
)

STABILITY_S = 0.5


def _setup(tmp_path: Path, emulator: FakeApiServer, other_fs: Path,
           **folder: object) -> tuple[Path, Path]:
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": STABILITY_S},
                          folder={"archive": str(other_fs / "archive"),
                                  "quarantine": str(other_fs / "quarantine"), **folder})
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    return config, inbox


def _jpeg(size: tuple[int, int], tag: str) -> bytes:
    return encode(subject_image(size, tag), "JPEG")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _uploaded(emulator: FakeApiServer) -> list[str]:
    """sha256 of what the emulator stored for each successful upload, in order."""
    return [sha256_of(emulator.local_path(r.file_path)) for r in emulator.requests()
            if r.endpoint == "upload" and r.status == 200 and r.file_path]


def _process_calls(emulator: FakeApiServer) -> int:
    return len([r for r in all_requests(emulator) if r.endpoint == "process"])


def _invisible_writer_daemon() -> list[str]:
    wrapper = pid_namespace_wrapper()
    if wrapper is None:
        pytest.skip("cannot run the daemon in its own PID namespace (unshare): the writer "
                    "would be visible to it")
    return wrapper


def test_a_writer_pausing_with_the_file_open_is_waited_for(
    tmp_path: Path, emulator: FakeApiServer, other_fs: Path,
) -> None:
    config, inbox = _setup(tmp_path, emulator, other_fs)
    data = _jpeg((320, 240), "scan")
    with DaemonProcess(config) as daemon:
        wait_for_log(daemon, "watching 1 folder(s)")
        with (inbox / "scan.jpg").open("wb") as stream:
            stream.write(data[:len(data) // 2])
            stream.flush()
            time.sleep(3 * STABILITY_S)  # the scenario: a scanner pausing, the file open
            stream.write(data[len(data) // 2:])
        wait_for(lambda: files_under(other_fs / "archive"), what="the scan archived")
        assert daemon.terminate() == 0
    assert files_under(other_fs / "quarantine") == []
    assert [sha256_of(p) for p in files_under(other_fs / "archive")] == [_sha(data)]
    assert _uploaded(emulator) == [_sha(data)]
    assert _process_calls(emulator) == 1


def test_a_half_file_from_a_writer_it_cannot_see_gets_one_more_settling_period(
    tmp_path: Path, emulator: FakeApiServer, other_fs: Path,
) -> None:
    wrapper = _invisible_writer_daemon()
    config, inbox = _setup(tmp_path, emulator, other_fs, watch="polling", poll_interval_s=0.1)
    data = _jpeg((320, 240), "share")
    with DaemonProcess(config, wrapper=wrapper) as daemon:
        wait_for_log(daemon, "watching 1 folder(s)")
        with (inbox / "share.jpg").open("wb") as stream:
            stream.write(data[:len(data) // 2])
            stream.flush()
            # The scenario: a writer on another host pausing longer than stability_s. The
            # half file is claimed and fails the local check meanwhile.
            time.sleep(2 * STABILITY_S)
            stream.write(data[len(data) // 2:])
        wait_for(lambda: files_under(other_fs / "archive") and not job_dirs(inbox),
                 what="the whole file archived")
        assert daemon.terminate() == 0
    assert files_under(other_fs / "quarantine") == []
    assert [sha256_of(p) for p in files_under(other_fs / "archive")] == [_sha(data)]
    assert _uploaded(emulator) == [_sha(data)]
    assert _process_calls(emulator) == 1


def test_an_input_rewritten_in_place_after_the_claim_is_processed_again(
    tmp_path: Path, emulator: FakeApiServer, other_fs: Path,
) -> None:
    wrapper = _invisible_writer_daemon()
    config, inbox = _setup(tmp_path, emulator, other_fs, watch="polling", poll_interval_s=0.1)
    emulator.update(latency_process_s=1.0)
    first, second = _jpeg((320, 240), "v1"), _jpeg((200, 150), "v2")
    with DaemonProcess(config, wrapper=wrapper) as daemon:
        wait_for_log(daemon, "watching 1 folder(s)")
        stream = (inbox / "shot.jpg").open("wb")
        with stream:
            stream.write(first)
            stream.flush()
            wait_for(lambda: states(inbox) == ["uploaded"], what="its process call in flight")
            # The scenario: a tool rewriting the file through the handle it kept open.
            stream.seek(0)
            stream.truncate()
            stream.write(second)
        wait_for(lambda: files_under(other_fs / "archive") and not job_dirs(inbox),
                 timeout_s=20, what="the input archived")
        assert daemon.terminate() == 0
    assert [sha256_of(p) for p in files_under(other_fs / "archive")] == [_sha(second)]
    assert _uploaded(emulator) == [_sha(first), _sha(second)]
    assert "changed since it was claimed" in daemon.log_text()
    sizes = {}
    for path in visible_files(tmp_path / "studio" / "outbox"):
        if path.name.endswith(".full.png"):
            with Image.open(path) as image:
                sizes[path.name] = image.size
    assert (200, 150) in sizes.values(), sizes  # the outputs of what was archived
