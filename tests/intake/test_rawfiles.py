"""Camera RAW: recognised by content, never uploaded; left untouched in the inbox (the default,
one log line, not offered again by rescans) or quarantined with ``raw_files = "quarantine"``."""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.intake.sniff import camera_raw
from tests.devices.corpus import make_cr2_shaped, make_cr3_shaped, make_dng_shaped, scene
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, files_under, wait_for, write_config


def _tiff_with_cfa_sub_ifd(make: bytes) -> bytes:
    """A NEF/ARW-shaped TIFF: a thumbnail IFD0 naming the camera, and a SubIFD whose pixels are
    a colour filter array (Photometric 32803), as no scanner writes."""
    def entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
        return struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")

    make_at, sub_at = 8 + 2 + 3 * 12 + 4, 200
    ifd0 = struct.pack("<H", 3) + entry(254, 4, 1, struct.pack("<I", 1)) \
        + entry(271, 2, len(make) + 1, struct.pack("<I", make_at)) \
        + entry(330, 4, 1, struct.pack("<I", sub_at)) + b"\x00" * 4
    sub = struct.pack("<H", 1) + entry(262, 3, 1, struct.pack("<H", 32803)) + b"\x00" * 4
    head = b"II*\x00" + struct.pack("<I", 8) + ifd0 + make + b"\x00"
    return head.ljust(sub_at, b"\x00") + sub + bytes(64)


@pytest.mark.parametrize(("data", "kind"), [
    (_tiff_with_cfa_sub_ifd(b"NIKON CORPORATION"), "Nikon NEF"),
    (_tiff_with_cfa_sub_ifd(b"SONY"), "Sony ARW"),
    (b"FUJIFILMCCD-RAW 0201FF383501" + bytes(64), "Fujifilm RAF"),
    (b"IIRO\x08\x00\x00\x00" + bytes(64), "Olympus ORF"),
    (b"IIU\x00\x08\x00\x00\x00" + bytes(64), "Panasonic RW2"),
])
def test_raw_formats_are_recognised_by_content(data: bytes, kind: str) -> None:
    assert camera_raw(data) == kind


@pytest.mark.parametrize(("make", "kind"), [
    (make_dng_shaped, "Adobe DNG"), (make_cr2_shaped, "Canon CR2"),
    (make_cr3_shaped, "Canon CR3"),
])
def test_raw_shaped_files_are_recognised(tmp_path: Path, make: Callable[[Path], Path],
                                         kind: str) -> None:
    assert camera_raw(make(tmp_path).read_bytes()[:4096]) == kind


def test_scans_and_photos_are_not_raw(tmp_path: Path) -> None:
    scan = tmp_path / "scan.tif"
    scene((200, 40, 60)).save(scan, "TIFF", tiffinfo={271: "NIKON"})  # a Nikon film scanner
    photo = make_valid_jpeg(tmp_path, "photo.jpg")
    assert camera_raw(scan.read_bytes()) is None
    assert camera_raw(photo.read_bytes()) is None


def test_raw_beside_its_jpeg_is_left_untouched_and_logged_once(
    tmp_path: Path, emulator: FakeApiServer, caplog: pytest.LogCaptureFixture,
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon={"rescan_interval_s": 0.2})
    studio = tmp_path / "studio"
    raw = make_cr2_shaped(studio / "inbox", "IMG_0007.CR2")
    before = (raw.read_bytes(), raw.stat().st_mtime_ns)
    make_valid_jpeg(studio / "inbox", "IMG_0007.JPG")
    caplog.set_level(logging.INFO, logger="bgcut_watchd")
    with InProcessDaemon(config) as daemon:
        wait_for(lambda: len(files_under(studio / "archive")) == 1, what="the JPEG archived")
        scans = _count_rescans(daemon)
        wait_for(lambda: scans[0] >= 3, what="three more rescans")
    assert (raw.read_bytes(), raw.stat().st_mtime_ns) == before
    assert [p.name for p in files_under(studio / "archive")] == ["IMG_0007.JPG"]
    assert files_under(studio / "quarantine") == []
    lines = [r.getMessage() for r in caplog.records if "IMG_0007.CR2" in r.getMessage()]
    assert len(lines) == 1 and "camera RAW (Canon CR2): left in the inbox" in lines[0], lines
    uploads = [r for r in emulator.requests() if r.endpoint == "upload"]
    assert len(uploads) == 1  # the JPEG only


def _count_rescans(daemon: InProcessDaemon) -> list[int]:
    """Count the daemon's finished rescans from now on (the intake's scan_some, wrapped)."""
    count = [0]
    intake = daemon.service.intake
    original = intake.scan_some

    def counting(budget_s: float) -> int | None:
        noticed = original(budget_s)
        count[0] += noticed is not None
        return noticed

    intake.scan_some = counting  # type: ignore[method-assign]
    return count


def test_raw_files_quarantine_moves_raw_to_quarantine_without_an_api_call(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url, folder={"raw_files": "quarantine"})
    studio = tmp_path / "studio"
    make_dng_shaped(studio / "inbox", "IMG_0009.DNG")
    with InProcessDaemon(config):
        wait_for(lambda: (studio / "quarantine" / "IMG_0009.DNG.error.json").exists(),
                 what="the DNG quarantined")
    error = json.loads((studio / "quarantine" / "IMG_0009.DNG.error.json").read_text())
    assert (error["reason"], error["stage"]) == ("camera_raw", "validate")
    assert "Adobe DNG" in error["detail"]
    assert emulator.requests() == []
