"""Hostile inputs end to end (tests/hostile.py): quarantined with their reason and no API call,
ignored when the rules say so, and valid images with hostile names processed normally.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import (
    HOSTILE_CASES,
    TEST_MAX_BYTES,
    TEST_MAX_PIXELS,
    make_valid_jpeg,
    make_valid_png,
)
from tests.support import InProcessDaemon, files_under, visible_files, wait_for, write_config

VARIANT_SUFFIXES = (".full.png", ".thumb.webp", ".white.jpg")
LIMITS = {"max_input_bytes": TEST_MAX_BYTES, "max_input_pixels": TEST_MAX_PIXELS}
NOT_A_FILE = "directory_named_jpg"  # a folder is walked into, never taken: nothing happens
CONVERTED = {"gif", "tiff", "bmp_named_jpg"}  # uploaded as the PNG they become (issue 10)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _uploaded_hashes(emulator: FakeApiServer) -> list[str]:
    """sha256 of every input the emulator stored from a successful upload."""
    return sorted(_sha256(emulator.local_path(r.file_path)) for r in emulator.requests()
                  if r.endpoint == "upload" and r.status == 200 and r.file_path)


def _expected_outputs(name: str) -> set[str]:
    """The output names of one input; a long (ASCII) stem is cut so that every name of the set
    fits NAME_MAX, the longest suffix deciding."""
    stem = name[: name.rfind(".")]
    room = 255 - max(len(s) for s in VARIANT_SUFFIXES)
    if len(os.fsencode(stem)) > room:
        stem = stem[:room]
    return {stem + s for s in VARIANT_SUFFIXES}


def _reason(quarantine: Path, name: str) -> str | None:
    error_file = quarantine / f"{name}.error.json"
    if not os.path.lexists(quarantine / name) or not error_file.exists():
        return None
    reason: str = json.loads(error_file.read_text())["reason"]
    return reason


def test_every_hostile_case_ends_where_it_should(tmp_path: Path,
                                                 emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon=LIMITS)
    studio = tmp_path / "studio"
    inbox, quarantine, outbox = studio / "inbox", studio / "quarantine", studio / "outbox"
    inbox.mkdir(parents=True, exist_ok=True)
    bad = [c for c in HOSTILE_CASES if c.expected is not None and c.name != NOT_A_FILE]
    good = [c for c in HOSTILE_CASES if c.expected is None]
    with InProcessDaemon(config):
        made = {case.name: case.make(inbox) for case in HOSTILE_CASES}
        target = made["symlink_outside"].resolve()
        target_sha = _sha256(target)
        good_hashes = [_sha256(made[c.name]) for c in good if c.name not in CONVERTED]
        wait_for(lambda: all(_reason(quarantine, made[c.name].name) for c in bad)
                 and len(files_under(studio / "archive")) == len(good),
                 timeout_s=20, what="every bad input quarantined, every good one archived")
        after = make_valid_png(inbox, "after.png")  # still running: the next file is processed
        good_hashes.append(_sha256(after))
        wait_for(lambda: len(files_under(studio / "archive")) == len(good) + 1,
                 what="a valid file dropped afterwards archived")

    reasons = {c.name: _reason(quarantine, made[c.name].name) for c in bad}
    assert reasons == {c.name: c.expected for c in bad}
    for case in bad:  # refused by the local check, at once
        error = json.loads((quarantine / f"{made[case.name].name}.error.json").read_text())
        assert (error["stage"], error["http_status"], error["attempts"]) == (
            "validate", None, 1), case.name
    # Not one byte of a bad input left for the API; the symlink's target was never read. The
    # good ones went byte for byte, but for those converted first (their PNG went instead).
    uploaded = _uploaded_hashes(emulator)
    assert len(uploaded) == len(good) + 1 and set(good_hashes) <= set(uploaded)
    bad_files = [quarantine / made[c.name].name for c in bad]
    assert not {_sha256(p) for p in bad_files if p.is_file() and not p.is_symlink()} & set(
        uploaded)
    assert target_sha not in uploaded
    assert (quarantine / "link.jpg").is_symlink()
    assert os.readlink(quarantine / "link.jpg") == str(target)
    assert _sha256(target) == target_sha and files_under(target.parent) == [target]
    # The directory named like an image is left alone, as a directory.
    assert made[NOT_A_FILE].is_dir() and not os.path.lexists(quarantine / "folder.jpg")
    assert [p.name for p in visible_files(inbox)] == []

    expected_outputs = _expected_outputs("after.png")
    for case in good:
        expected_outputs |= _expected_outputs(made[case.name].name)
    assert set(os.listdir(outbox)) == expected_outputs
    assert sorted(os.listdir(studio / "archive")) == sorted(
        [made[c.name].name for c in good] + ["after.png"])


def test_the_255_byte_name_gets_outputs_truncated_to_name_max(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    name = "n" * (255 - len(".jpg")) + ".jpg"
    with InProcessDaemon(config):
        make_valid_jpeg(inbox, name)
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"), what="input archived")
    outputs = os.listdir(tmp_path / "studio" / "outbox")
    # The whole set keeps one stem, cut so that the longest name (.thumb.webp) fits.
    stem = "n" * (255 - len(".thumb.webp"))
    assert sorted(outputs) == sorted(stem + s for s in VARIANT_SUFFIXES)
    assert _expected_outputs(name) == set(outputs)
    assert max(len(os.fsencode(n)) for n in outputs) == 255
    assert os.listdir(tmp_path / "studio" / "archive") == [name]


IGNORED_NAMES = (
    ".hidden.jpg", "x.jpg.part", "x.jpg.tmp", "x.jpg.crdownload", "x.jpg.download", "~$x.jpg",
    "x.jpg~", "x.jpg.swp", ".syncthing.x.jpg.tmp", "~syncthing~x.jpg.tmp", "._x.jpg",
    "Thumbs.db", "desktop.ini", ".DS_Store", "@eaDir/x.jpg", ".stfolder/x.jpg",
    ".stversions/x.jpg", "#recycle/x.jpg", "raw/x.keep.jpg",
)


def _make_ignored(root: Path, size_offset: int) -> dict[str, tuple[str, int]]:
    """Every ignored name under ``root``, each a valid and distinct image: (sha256, mtime)."""
    made: dict[str, tuple[str, int]] = {}
    for index, relpath in enumerate(IGNORED_NAMES):
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        make_valid_jpeg(path.parent, path.name, size=(64 + size_offset + index, 48))
        made[str(path)] = (_sha256(path), path.stat().st_mtime_ns)
    return made


def test_ignored_files_are_left_alone(tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url,
                          folder={"ignore": ["*.keep.jpg"], "recursive": True})
    inbox = tmp_path / "studio" / "inbox"
    before = _make_ignored(inbox, 0)  # seen by the startup scan
    with InProcessDaemon(config):
        before |= _make_ignored(inbox / "live", len(IGNORED_NAMES))  # seen by inotify
        # A file dropped last and archived proves the daemon has looked at the others.
        make_valid_jpeg(inbox, "taken.jpg", size=(40, 40))
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"), what="taken.jpg done")
    after = {p: (_sha256(Path(p)), Path(p).stat().st_mtime_ns) for p in before}
    assert after == before
    assert len([r for r in emulator.requests() if r.endpoint == "upload"]) == 1
    assert files_under(tmp_path / "studio" / "quarantine") == []


def _cut(folder: Path, name: str, data: bytes) -> Path:
    """The first half of an image's bytes, as a copy interrupted halfway leaves it."""
    path = folder / name
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_device_file_cut_short_is_quarantined_with_the_decoders_verdict_in_plain_words(
        tmp_path: Path, emulator: FakeApiServer) -> None:
    """HEIC, WebP, AVIF, GIF, BMP: each cut in half; the error file says so in words an
    administrator can act on, not in libheif's or libwebp's own terms."""
    import io

    import pillow_heif  # test-only: the encoder the daemon does not have
    from PIL import Image

    picture = Image.effect_noise((300, 200), 60).convert("RGB")
    encoded = {}
    for fmt, ext in (("WEBP", "webp"), ("AVIF", "avif"), ("GIF", "gif"), ("BMP", "bmp")):
        buffer = io.BytesIO()
        picture.save(buffer, fmt)
        encoded[f"cut.{ext}"] = buffer.getvalue()
    buffer = io.BytesIO()
    pillow_heif.from_pillow(picture).save(buffer, quality=90)
    encoded["cut.heic"] = buffer.getvalue()
    config = write_config(tmp_path, emulator.base_url)
    quarantine = tmp_path / "studio" / "quarantine"
    with InProcessDaemon(config):
        for name, data in encoded.items():
            _cut(tmp_path / "studio" / "inbox", name, data)
        wait_for(lambda: all(_reason(quarantine, n) for n in encoded), 20,
                 what="every cut file quarantined")
    details = {n: json.loads((quarantine / f"{n}.error.json").read_text()) for n in encoded}
    assert {n: d["reason"] for n, d in details.items()} == dict.fromkeys(encoded,
                                                                       "invalid_image")
    plain = ("ends before the image does", "cut short or damaged", "header cannot be parsed")
    for name, error in details.items():
        assert any(words in error["detail"] for words in plain), (name, error["detail"])
        assert "decoder says" not in error["detail"] and "\n" not in error["detail"], name
    assert [r for r in emulator.requests() if r.endpoint == "upload"] == []
