"""No more pixels than needed: a 24 MP input whose largest variant is 12 MP is scaled down
before its upload (``downscale_before_upload``), and uploaded byte for byte when it is off."""

from __future__ import annotations

import hashlib
import io
import logging
import random
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bgcut_watchd.config.model import Variant
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.downscale import UploadSource, upload_source
from bgcut_watchd.job.validate import validate_input
from tests.support import InProcessDaemon, files_under, wait_for, write_config

VARIANTS = '[variants.full]\nformat = "jpeg"\nmax_resolution = 12000000\n'
SIZE_24MP = (6000, 4000)
README_BEFORE_BYTES = 3_612_333  # the figures the README quotes ("Cost")
README_AFTER_BYTES = 2_300_418


def _photo(path: Path, size: tuple[int, int], fmt: str = "JPEG", seed: int = 24) -> Path:
    """A photo-like picture: a textured backdrop (seeded grain: the same picture every call)
    with a plain subject."""
    width, height = size
    grain = Image.frombytes("L", size, random.Random(seed).randbytes(width * height))
    image = Image.blend(Image.new("RGB", size, (40, 170, 60)), grain.convert("RGB"), 0.05)
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4),
                                  fill=(200, 40, 40))
    image.save(path, fmt, quality=90)
    return path


def _uploaded_bytes(tmp_path: Path, emulator: FakeApiServer, picture: Path,
                   downscale: bool) -> int:
    """Process a copy of ``picture`` (its bytes, unchanged); return the bytes uploaded."""
    root = tmp_path / ("on" if downscale else "off")
    config = write_config(root, emulator.base_url, variants=VARIANTS, variant_names=("full",),
                          folder={"downscale_before_upload": downscale},
                          api={"upload_timeout_s": 60, "process_timeout_s": 120,
                               "download_timeout_s": 60})
    seen = {r.file_path for r in emulator.requests() if r.endpoint == "upload"}
    with InProcessDaemon(config):
        shutil.copyfile(picture, root / "staging.jpg")
        (root / "staging.jpg").rename(root / "studio" / "inbox" / "big.jpg")
        wait_for(lambda: len(files_under(root / "studio" / "archive")) == 1, timeout_s=120,
                 what="the input archived")
    [stored] = [r.file_path for r in emulator.requests()
                if r.endpoint == "upload" and r.status == 200 and r.file_path not in seen]
    assert stored is not None
    with Image.open(next(iter(files_under(root / "studio" / "outbox")))) as out:
        assert out.width * out.height <= 12_000_000
        assert out.width * out.height > 11_900_000
    return emulator.local_path(stored).stat().st_size


@pytest.mark.slow
def test_a_24mp_input_is_uploaded_at_12mp(tmp_path: Path, emulator: FakeApiServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """One picture, made once, sent by both runs: the figures compare the same image."""
    picture = _photo(tmp_path / "big.jpg", SIZE_24MP)
    digest = hashlib.sha256(picture.read_bytes()).hexdigest()
    before = _uploaded_bytes(tmp_path, emulator, picture, downscale=False)
    after = _uploaded_bytes(tmp_path, emulator, picture, downscale=True)
    with capsys.disabled():
        print(f"\n24 MP JPEG of {picture.stat().st_size} bytes, largest variant 12 MP: "
              f"uploaded {before} bytes without downscaling, {after} with "
              f"({after / before:.0%})")
    assert hashlib.sha256(picture.read_bytes()).hexdigest() == digest
    assert before == picture.stat().st_size  # byte for byte
    # README, "Cost": 24 MP JPEG (quality 90) of BEFORE bytes -> AFTER bytes at 12 MP
    assert before == pytest.approx(README_BEFORE_BYTES, rel=0.02)
    assert after == pytest.approx(README_AFTER_BYTES, rel=0.02)


def test_small_enough_inputs_are_uploaded_byte_for_byte(tmp_path: Path) -> None:
    source = _photo(tmp_path / "in.jpg", (400, 300))
    checked = validate_input(source, max_bytes=10**8, max_pixels=10**8)
    chosen = upload_source(tmp_path, source, checked, [Variant("full")], enabled=True)
    assert chosen.path == source and chosen.saved_bytes == 0


def test_a_scaled_copy_that_is_not_smaller_is_not_sent(tmp_path: Path) -> None:
    """A noisy JPEG saved at quality 30: scaled to 2/3 of its pixels and saved at 95 it would
    more than double; the input is uploaded as it is instead."""
    source = tmp_path / "in.jpg"
    Image.effect_noise((1500, 1000), 90).convert("RGB").save(source, "JPEG", quality=30)
    checked = validate_input(source, max_bytes=10**8, max_pixels=10**8)
    chosen = upload_source(tmp_path, source, checked, [Variant("full", max_resolution=10**6)],
                           enabled=True)
    assert chosen == UploadSource(source)  # saved nothing: 0 bytes, 0 pixels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jpg"]  # the copy removed


def test_a_larger_input_is_scaled_upright_to_the_largest_variant(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    image = Image.new("RGB", (400, 200), (10, 200, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    image.save(source, "PNG", exif=exif)
    checked = validate_input(source, max_bytes=10**8, max_pixels=10**8)
    variants = [Variant("a", max_resolution=20_000), Variant("b", max_resolution=5_000)]
    chosen = upload_source(tmp_path, source, checked, variants, enabled=True)
    with Image.open(chosen.path) as scaled:
        assert scaled.format == "PNG"
        assert scaled.size == (100, 200)  # upright (portrait), 20 000 pixels
    assert chosen.saved_pixels == 80_000 - 20_000
    off = upload_source(tmp_path, source, checked, variants, enabled=False)
    assert off.path == source


def test_the_scaled_copy_is_pillow_s_own_lanczos_resize_pixel_for_pixel(tmp_path: Path) -> None:
    """The two passes run one after the other (to free memory between them) give exactly the
    pixels of Pillow's one-call resize."""
    source = _photo(tmp_path / "in.png", (900, 700), fmt="PNG")
    checked = validate_input(source, max_bytes=10**8, max_pixels=10**8)
    chosen = upload_source(tmp_path, source, checked, [Variant("a", max_resolution=300_000)],
                           enabled=True)
    with Image.open(source) as original, Image.open(chosen.path) as scaled:
        expected = original.resize(scaled.size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        assert scaled.size[0] * scaled.size[1] <= 300_000 < 900 * 700
        assert scaled.tobytes() == expected.tobytes()


def test_the_log_says_how_many_pixels_and_bytes_were_saved(
        tmp_path: Path, emulator: FakeApiServer, caplog: pytest.LogCaptureFixture) -> None:
    variants = '[variants.full]\nformat = "jpeg"\nmax_resolution = 300000\n'
    config = write_config(tmp_path, emulator.base_url, variants=variants,
                          variant_names=("full",))
    inbox = tmp_path / "studio" / "inbox"
    with caplog.at_level(logging.INFO, logger="bgcut_watchd"), InProcessDaemon(config):
        _photo(tmp_path / "staging.jpg", (1200, 1000)).rename(inbox / "big.jpg")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="the input archived")
    [said] = [r.getMessage() for r in caplog.records if "scaled down before" in r.getMessage()]
    match = re.search(r"(\d+) pixels and (\d+) bytes fewer to send", said)
    assert match is not None, said
    pixels, saved = int(match[1]), int(match[2])
    assert 1200 * 1000 - 300_000 <= pixels < 1200 * 1000
    uploaded = [r.file_path for r in emulator.requests()
                if r.endpoint == "upload" and r.status == 200 and r.file_path]
    sent = emulator.local_path(uploaded[-1]).stat().st_size
    assert saved == (tmp_path / "studio" / "archive" / "big.jpg").stat().st_size - sent > 0


def test_a_converted_input_larger_than_needed_is_scaled_down_too(
        tmp_path: Path, emulator: FakeApiServer, caplog: pytest.LogCaptureFixture) -> None:
    """A scanner's TIFF is converted to PNG, then scaled to the largest variant like any
    other input: a TIFF is paid no more pixels than a JPEG."""
    variants = '[variants.full]\nformat = "png"\nmax_resolution = 300000\n'
    config = write_config(tmp_path, emulator.base_url, variants=variants,
                          variant_names=("full",))
    inbox = tmp_path / "studio" / "inbox"
    with caplog.at_level(logging.INFO, logger="bgcut_watchd"), InProcessDaemon(config):
        _photo(tmp_path / "staging.tif", (1200, 1000), fmt="TIFF").rename(inbox / "scan.tif")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="the input archived")
    [stored] = [r.file_path for r in emulator.requests()
                if r.endpoint == "upload" and r.status == 200 and r.file_path]
    assert stored is not None
    with Image.open(emulator.local_path(stored)) as sent:
        assert sent.format == "PNG"
        assert 0.98 * 300_000 < sent.width * sent.height <= 300_000
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "normalised: TIFF → PNG, scaled down to " in said


def test_an_oriented_jpeg_over_the_limit_at_full_size_is_scaled_first_and_sent_as_png(
        tmp_path: Path, emulator: FakeApiServer, caplog: pytest.LogCaptureFixture) -> None:
    """The audit's 35 MP phone photo, small: at full size its upright PNG is over
    ``max_input_bytes``, scaled to the largest variant it fits. The choice of encoding is made
    on the scaled picture (lossless PNG), encoded once, and said in one line."""
    source = _photo(tmp_path / "staging.jpg", (1600, 1200))
    with Image.open(source) as image:
        upright = image.transpose(Image.Transpose.ROTATE_270)
        exif = image.getexif()
        exif[0x0112] = 6
        image.save(source, "JPEG", quality=90, exif=exif)
    full_png = io.BytesIO()
    upright.save(full_png, "PNG", compress_level=3)
    limit = len(full_png.getvalue()) - 1
    variants = '[variants.full]\nformat = "png"\nmax_resolution = 300000\n'
    config = write_config(tmp_path, emulator.base_url, variants=variants,
                          variant_names=("full",), daemon={"max_input_bytes": limit})
    inbox = tmp_path / "studio" / "inbox"
    with caplog.at_level(logging.INFO, logger="bgcut_watchd"), InProcessDaemon(config):
        source.rename(inbox / "phone.jpg")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="the input archived")
    [stored] = [r.file_path for r in emulator.requests()
                if r.endpoint == "upload" and r.status == 200 and r.file_path]
    assert stored is not None
    sent = emulator.local_path(stored)
    assert sent.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(sent) as image:
        assert image.height > image.width  # upright (portrait)
        assert 0.98 * 300_000 < image.width * image.height <= 300_000
    said = [r.getMessage() for r in caplog.records]
    [line] = [m for m in said if "normalised:" in m]
    assert re.search(r"normalised: JPEG → PNG, rotated 90°, scaled down to \d+x\d+; "
                     rf"uploading PNG \(lossless\), {sent.stat().st_size} bytes$", line), line
    assert not [m for m in said if "scaled down before the upload" in m]  # one encode


def test_a_lossless_webp_stays_lossless_when_scaled(tmp_path: Path) -> None:
    source = tmp_path / "in.webp"
    Image.effect_noise((400, 300), 60).convert("RGB").save(source, "WEBP", lossless=True)
    checked = validate_input(source, max_bytes=10**8, max_pixels=10**8)
    chosen = upload_source(tmp_path, source, checked, [Variant("a", max_resolution=30_000)],
                           enabled=True)
    assert chosen.path != source
    assert chosen.path.read_bytes()[12:16] == b"VP8L"  # the lossless bitstream


def test_every_page_of_a_large_multi_page_tiff_is_scaled_before_its_one_encoding(
        tmp_path: Path, emulator: FakeApiServer, caplog: pytest.LogCaptureFixture) -> None:
    """Pages 2..N are written scaled (their jobs then send them as they are): no page is
    encoded at full size and then again scaled."""
    variants = '[variants.full]\nformat = "png"\nmax_resolution = 100000\n'
    config = write_config(tmp_path, emulator.base_url, variants=variants,
                          variant_names=("full",))
    pages = [Image.new("RGB", (800, 600), colour) for colour in ((200, 40, 60), (40, 90, 200),
                                                                 (30, 150, 60))]
    staging = tmp_path / "staging.tif"
    pages[0].save(staging, "TIFF", save_all=True, append_images=pages[1:])
    with caplog.at_level(logging.INFO, logger="bgcut_watchd"), InProcessDaemon(config):
        staging.rename(tmp_path / "studio" / "inbox" / "scan.tif")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "outbox")) == 3,
                 what="every page's output")
    stored = [r.file_path for r in emulator.requests()
              if r.endpoint == "upload" and r.status == 200 and r.file_path]
    assert len(stored) == 3
    for path in stored:
        assert path is not None
        with Image.open(emulator.local_path(path)) as sent:
            assert (sent.format, sent.size) == ("PNG", (365, 273))
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "scaled down before the upload" in m], said
