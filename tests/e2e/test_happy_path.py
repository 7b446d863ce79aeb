"""The whole pipeline on real folders, real inotify and the real emulator over loopback."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg, make_valid_png
from tests.support import InProcessDaemon, files_under, visible_files, wait_for, write_config


def _calls(emulator: FakeApiServer, endpoint: str) -> int:
    return sum(1 for r in emulator.requests() if r.endpoint == endpoint and r.status == 200)


def test_images_become_variants_in_the_outbox_and_move_to_the_archive(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    with InProcessDaemon(config):
        make_valid_jpeg(inbox, "shot one.jpg")
        (inbox / "sub").mkdir()
        make_valid_png(inbox / "sub", "two.png")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2,
                 what="both inputs archived")
    outbox = tmp_path / "studio" / "outbox"
    names = sorted(str(p.relative_to(outbox)) for p in files_under(outbox))
    assert names == ["shot one.full.png", "shot one.thumb.webp", "shot one.white.jpg",
                     "sub/two.full.png", "sub/two.thumb.webp", "sub/two.white.jpg"]
    with Image.open(outbox / "shot one.white.jpg") as white:
        assert white.format == "JPEG"
    assert visible_files(inbox) == []
    assert sorted(p.name for p in files_under(tmp_path / "studio" / "archive")) == [
        "shot one.jpg", "two.png"]
    assert (_calls(emulator, "upload"), _calls(emulator, "process"),
            _calls(emulator, "download")) == (2, 2, 6)


def test_files_present_at_startup_are_processed(tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    for n in range(5):
        make_valid_jpeg(inbox, f"early-{n}.jpg")
    with InProcessDaemon(config):
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 5,
                 what="five inputs archived")
    assert len(files_under(tmp_path / "studio" / "outbox")) == 15


def test_a_jobs_downloads_run_side_by_side(tmp_path: Path, emulator: FakeApiServer) -> None:
    """Issue 14: a job's critical path is its slowest download, not the sum of them."""
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    emulator.update(latency_download_s=0.5)
    with InProcessDaemon(config):
        make_valid_jpeg(inbox, "one.jpg")
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"), what="the input archived")
    downloads = [r for r in emulator.requests() if r.endpoint == "download"]
    assert len(downloads) == 3
    starts = [r.timestamp_s for r in downloads]
    first_end = min(r.timestamp_s + r.duration_s for r in downloads)
    assert max(starts) < first_end, "a download began only after another had ended"
    assert len(visible_files(tmp_path / "studio" / "outbox")) == 3
