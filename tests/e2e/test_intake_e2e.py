"""From the inbox to the outbox, end to end: slow writers, rename-into-place, polling, folders
moved in, and the dispose and conflict settings.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import encode, make_valid_jpeg, subject_image
from tests.support import InProcessDaemon, files_under, visible_files, wait_for, write_config

VARIANT_SUFFIXES = (".full.png", ".thumb.webp", ".white.jpg")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _uploaded(emulator: FakeApiServer) -> list[str]:
    """sha256 of what the emulator stored for each successful upload, in order."""
    return [_sha256(emulator.local_path(r.file_path)) for r in emulator.requests()
            if r.endpoint == "upload" and r.status == 200 and r.file_path]


def _names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in visible_files(folder))


def _outputs(stem: str) -> list[str]:
    return sorted(stem + s for s in VARIANT_SUFFIXES)


def _wait_started(root: Path) -> None:
    """The first status file is written after the startup scan: from now on only the watcher
    (or a periodic rescan) can notice a new file."""
    wait_for((root / "state" / "status.json").exists, what="the daemon started")


def test_a_file_written_slowly_is_taken_once_complete(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    stability_s = 0.4
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": stability_s})
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    data = encode(subject_image((320, 240), "slow"), "JPEG")
    size = len(data) // 12 + 1
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    with InProcessDaemon(config):
        with (inbox / "slow.jpg").open("wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
                stream.flush()
                # The slow writer is the scenario: each pause is shorter than stability_s,
                # the whole write much longer.
                time.sleep(stability_s / 4)
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"), what="input archived")
    assert len(chunks) * stability_s / 4 >= 2.5 * stability_s
    assert _uploaded(emulator) == [hashlib.sha256(data).hexdigest()]
    assert files_under(tmp_path / "studio" / "quarantine") == []
    assert _sha256(tmp_path / "studio" / "archive" / "slow.jpg") == hashlib.sha256(data).hexdigest()


def test_rename_into_place_ignores_the_part_file(tmp_path: Path,
                                                 emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    with InProcessDaemon(config):
        part = make_valid_jpeg(inbox, "x.jpg.part", size=(80, 60))
        # Another file settling and done proves the .part file had time to be taken (it was not).
        make_valid_jpeg(inbox, "witness.jpg")
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"), what="witness archived")
        assert part.exists() and len(_uploaded(emulator)) == 1
        part_sha = _sha256(part)
        part.rename(inbox / "x.jpg")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2,
                 what="x.jpg archived")
    assert _uploaded(emulator).count(part_sha) == 1
    assert _names(tmp_path / "studio" / "archive") == ["witness.jpg", "x.jpg"]
    assert _names(inbox) == []


def test_polling_mode_processes_a_file(tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url,
                          folder={"watch": "polling", "poll_interval_s": 0.2},
                          daemon={"rescan_interval_s": 3600})
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    with InProcessDaemon(config) as daemon:
        _wait_started(tmp_path)
        assert daemon.service.intake.watch_modes() == {"studio": "polling"}
        make_valid_jpeg(inbox, "polled.jpg")
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"), what="input archived")
    assert _names(tmp_path / "studio" / "outbox") == _outputs("polled")


def test_a_folder_moved_in_is_processed_with_its_subfolders_mirrored(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url, folder={"recursive": True},
                          daemon={"rescan_interval_s": 3600})
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    staging = tmp_path / "staging" / "wedding"
    (staging / "church").mkdir(parents=True)
    make_valid_jpeg(staging, "cake.jpg", size=(70, 50))
    make_valid_jpeg(staging / "church", "rings.jpg", size=(72, 50))
    with InProcessDaemon(config):
        _wait_started(tmp_path)
        staging.rename(inbox / "wedding")  # one rename: a single "moved in" event
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2,
                 what="both inputs archived")
    assert _names(tmp_path / "studio" / "outbox") == sorted(
        [f"wedding/{n}" for n in _outputs("cake")]
        + [f"wedding/church/{n}" for n in _outputs("rings")])
    assert _names(tmp_path / "studio" / "archive") == ["wedding/cake.jpg",
                                                       "wedding/church/rings.jpg"]


def test_on_success_delete_removes_the_input(tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, folder={"on_success": "delete"})
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    with InProcessDaemon(config):
        make_valid_jpeg(inbox, "gone.jpg")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "outbox")) == 3,
                 what="outputs published")
        wait_for(lambda: not visible_files(inbox), what="input deleted")
    assert files_under(tmp_path / "studio" / "archive") == []
    assert files_under(inbox / ".bgcut-work") == []
    assert _names(tmp_path / "studio" / "outbox") == _outputs("gone")


def test_on_conflict_rename_moves_the_whole_set_to_the_next_suffix(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url)  # on_conflict = "rename" by default
    inbox = tmp_path / "studio" / "inbox"
    outbox = tmp_path / "studio" / "outbox"
    inbox.mkdir(parents=True, exist_ok=True)
    outbox.mkdir(parents=True)
    archive = tmp_path / "studio" / "archive"
    with InProcessDaemon(config):
        make_valid_jpeg(inbox, "pose.jpg", size=(64, 48))
        wait_for(lambda: len(files_under(archive)) == 1, what="first input archived")
        first = {p.name: _sha256(p) for p in files_under(outbox)}
        make_valid_jpeg(inbox, "pose.jpg", size=(66, 48))  # same name, new content
        wait_for(lambda: len(files_under(archive)) == 2, what="second input archived")
        assert _names(outbox) == sorted([*_outputs("pose"), *_outputs("pose-1")])
        # One name of the -2 set is taken by someone else: the set moves on to -3 as a whole.
        (outbox / "pose-2.thumb.webp").write_bytes(b"somebody else's file")
        make_valid_jpeg(inbox, "pose.jpg", size=(68, 48))
        wait_for(lambda: len(files_under(archive)) == 3, what="third input archived")
    assert _names(outbox) == sorted(
        [*_outputs("pose"), *_outputs("pose-1"), "pose-2.thumb.webp", *_outputs("pose-3")])
    assert {n: _sha256(outbox / n) for n in first} == first  # the first set untouched
    assert (outbox / "pose-2.thumb.webp").read_bytes() == b"somebody else's file"
    assert _names(archive) == ["pose-1.jpg", "pose-2.jpg", "pose.jpg"]


def test_on_conflict_overwrite_replaces_the_outputs(tmp_path: Path,
                                                    emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, folder={"on_conflict": "overwrite"})
    inbox = tmp_path / "studio" / "inbox"
    outbox = tmp_path / "studio" / "outbox"
    inbox.mkdir(parents=True, exist_ok=True)
    with InProcessDaemon(config):
        make_valid_jpeg(inbox, "pose.jpg", size=(64, 48))
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="first input archived")
        first = {p.name: _sha256(p) for p in files_under(outbox)}
        make_valid_jpeg(inbox, "pose.jpg", size=(96, 72))
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2,
                 what="second input archived")
    assert _names(outbox) == _outputs("pose")
    assert all(_sha256(outbox / n) != first[n] for n in first)
    with Image.open(outbox / "pose.full.png") as full:
        assert full.size == (96, 72)


def test_the_same_name_dropped_while_its_first_job_runs_is_taken_at_once(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    """A camera after a card reset writes IMG_0001.JPG again while the first IMG_0001.JPG is
    still being processed: the new file must not wait for the next rescan (300 s)."""
    stability_s = 0.4
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": stability_s})
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    first = encode(subject_image((320, 240), "first"), "JPEG")
    second = encode(subject_image((320, 240), "second"), "JPEG")
    emulator.update(latency_process_s=4.0)  # the first job is busy in its process call
    with InProcessDaemon(config):
        _wait_started(tmp_path)
        (inbox / "IMG_0001.JPG").write_bytes(first)
        # The request log lists a request once answered: after the upload, the first job
        # has claimed its file and waits 4 s for its process call.
        wait_for(lambda: _uploaded(emulator), what="the first job's upload")
        dropped_s = time.monotonic()
        (inbox / "IMG_0001.JPG").write_bytes(second)
        wait_for(lambda: len(_uploaded(emulator)) == 2, timeout_s=stability_s + 3.0,
                 what="the second file uploaded while the first job still runs")
        second_upload_s = time.monotonic() - dropped_s
        assert not files_under(tmp_path / "studio" / "archive")  # the first is not done yet
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2,
                 timeout_s=15.0, what="both inputs archived")
    assert second_upload_s < stability_s + 3.0
    assert _uploaded(emulator) == [hashlib.sha256(first).hexdigest(),
                                   hashlib.sha256(second).hexdigest()]
    archived = {_sha256(p) for p in files_under(tmp_path / "studio" / "archive")}
    assert archived == {hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()}
    both_sets = sorted(_outputs("IMG_0001") + _outputs("IMG_0001-1"))
    assert _names(tmp_path / "studio" / "outbox") == both_sets
