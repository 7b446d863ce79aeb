"""The device corpus (tests/devices) end to end: the real daemon (a subprocess) against the real
emulator, which takes only JPEG, PNG, WebP and AVIF and applies no EXIF orientation.

Every file a scanner, camera or phone drops is processed, none quarantined; its outputs are
upright (dimensions, and the marker in the top-left corner), the colour patch within ΔE 3 of its
expected sRGB value, the studio's metadata in every output where promised; each page costs
exactly one upload and one process call; a file the API already accepts is uploaded byte for
byte, any other as a converted, upright PNG without an orientation.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer
from tests.devices.colour import delta_e, srgb8_to_lab
from tests.devices.corpus import (
    PATCH_BOX,
    SIZE,
    DeviceFile,
    make_device_corpus,
    phone_jpeg_with_metadata,
)
from tests.support import (
    API_KEY,
    DaemonProcess,
    InProcessDaemon,
    api_calls_per_job,
    disposed_inputs,
    files_under,
    visible_files,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow
VARIANT_SUFFIXES = (".full.png", ".thumb.webp", ".white.jpg")
MAX_DELTA_E = 3.0


def _lightness(image: Image.Image, xy: tuple[int, int]) -> float:
    rgb = image.convert("RGB").getpixel(xy)
    assert isinstance(rgb, tuple)
    return srgb8_to_lab(rgb)[0]


def assert_upright_and_true(path: Path, expected_lab: tuple[float, float, float]) -> None:
    """The full-size output: the upright size, the marker in the top-left corner only, the
    patch colour within ΔE 3."""
    with Image.open(path) as image:
        image.load()
        assert image.size == SIZE, f"{path.name}: {image.size}, not upright {SIZE}"
        width, height = image.size
        marker = _lightness(image, (5, 5))
        others = [_lightness(image, xy) for xy in ((width - 6, 5), (5, height - 6),
                                                   (width - 6, height - 6))]
        assert marker < 50 < min(others), f"{path.name}: marker not top-left {marker} {others}"
        centre = ((PATCH_BOX[0] + PATCH_BOX[2]) // 2, (PATCH_BOX[1] + PATCH_BOX[3]) // 2)
        rgb = image.convert("RGB").getpixel(centre)
        assert isinstance(rgb, tuple)
        error = delta_e(srgb8_to_lab(rgb), expected_lab)
        assert error <= MAX_DELTA_E, f"{path.name}: patch {rgb} is ΔE {error:.1f} off"


def _exif_text(value: object) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode("latin-1")
    return raw.decode("utf-8").strip("\x00 ")


def assert_metadata(path: Path, meta: dict[str, str]) -> None:
    """The studio's fields in the output's EXIF, and in its XMP."""
    with Image.open(path) as image:
        exif = image.getexif()
        found = {"copyright": exif.get(0x8298), "artist": exif.get(0x013B),
                 "description": exif.get(0x010E),
                 "captured": exif.get_ifd(0x8769).get(0x9003)}
        xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    xmp_text = xmp.decode("utf-8") if isinstance(xmp, bytes) else xmp
    for key, value in meta.items():
        assert found[key] is not None and _exif_text(found[key]) == value, (path.name, key)
    for key in ("copyright", "artist", "description"):
        if key in meta:
            assert meta[key].replace("&", "&amp;") in xmp_text, (path.name, key)


@dataclass(frozen=True)
class Run:
    """One daemon run over the whole corpus: where, what, the bytes dropped, what was said."""

    studio: Path
    corpus: list[DeviceFile]
    originals: dict[str, bytes]
    log: str
    emulator: FakeApiServer


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The corpus in an inbox at start-up, processed once by a daemon subprocess."""
    root = tmp_path_factory.mktemp("devices")
    with FakeApiServer(FakeApiOptions(seed=1), api_key=API_KEY,
                       storage_dir=root / "emulator-storage") as emulator:
        config = write_config(root, emulator.base_url, daemon={"workers": 2})
        studio = root / "studio"
        corpus = make_device_corpus(studio / "inbox")
        originals = {f.name: (studio / "inbox" / f.name).read_bytes() for f in corpus}
        pages = sum(len(f.output_stems()) for f in corpus)
        with DaemonProcess(config) as daemon:
            wait_for(lambda: len(disposed_inputs(studio)) == len(corpus), timeout_s=90,
                     interval_s=0.2, what="every device file archived or quarantined")
            if not files_under(studio / "quarantine"):
                wait_for(lambda: len(visible_files(studio / "outbox")) == 3 * pages,
                         timeout_s=30, interval_s=0.2, what="every page's outputs")
            assert daemon.terminate() == 0
            log = daemon.log_text()
        yield Run(studio, corpus, originals, log, emulator)


def test_every_device_file_is_processed_upright_and_colour_true(run: Run) -> None:
    studio, corpus, log = run.studio, run.corpus, run.log
    assert files_under(studio / "quarantine") == []
    assert visible_files(studio / "inbox") == []
    assert sorted(p.name for p in files_under(studio / "archive")) == sorted(
        f.name for f in corpus)
    outbox = studio / "outbox"
    for device_file in corpus:
        labs = device_file.page_labs or (device_file.patch_lab,)
        for stem, lab in zip(device_file.output_stems(), labs, strict=True):
            for suffix in VARIANT_SUFFIXES:
                assert (outbox / f"{stem}{suffix}").is_file(), f"{stem}{suffix} missing"
            assert_upright_and_true(outbox / f"{stem}.full.png", lab)
    assert "animated.gif': normalised: GIF → PNG, first frame of an animated GIF" in log


def test_metadata_survives_in_every_output_format(run: Run) -> None:
    studio, corpus = run.studio, run.corpus
    with_meta = [f for f in corpus if f.meta]
    assert {f.name for f in with_meta} == {"IMG_0042.jpg", "IMG_1234.heic", "letters.tif"}
    for device_file in with_meta:  # every page of the TIFF too
        for stem in device_file.output_stems():
            for suffix in VARIANT_SUFFIXES:
                assert_metadata(studio / "outbox" / f"{stem}{suffix}", device_file.meta)


def test_one_upload_and_one_process_call_per_page_and_accepted_files_byte_for_byte(
    run: Run,
) -> None:
    corpus, originals, emulator = run.corpus, run.originals, run.emulator
    calls = api_calls_per_job(emulator.requests())
    assert len(calls) == sum(len(f.output_stems()) for f in corpus)
    assert all(c == {"upload": 1, "process": 1} for c in calls.values()), calls
    uploads = {Path(r.file_path).name: emulator.local_path(r.file_path).read_bytes()
               for r in emulator.requests()
               if r.endpoint == "upload" and r.status == 200 and r.file_path}
    for device_file in corpus:
        stem = device_file.name.rsplit(".", 1)[0]
        if device_file.byte_for_byte:
            assert uploads[device_file.name] == originals[device_file.name]
            continue
        sent = uploads[f"{stem}.png"]
        assert sent.startswith(b"\x89PNG"), device_file.name
        with Image.open(io.BytesIO(sent)) as image:
            assert image.getexif().get(0x0112, 1) == 1
            assert image.size == SIZE


def test_keep_metadata_false_leaves_the_outputs_bare(tmp_path: Path,
                                                     emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, folder={"keep_metadata": False})
    studio = tmp_path / "studio"
    phone_jpeg_with_metadata(studio / "inbox")
    with InProcessDaemon(config):
        wait_for(lambda: len(visible_files(studio / "outbox")) == 3, what="the outputs")
    for suffix in VARIANT_SUFFIXES:
        with Image.open(studio / "outbox" / f"IMG_0042{suffix}") as image:
            assert image.getexif().get(0x8298) is None
            assert not (image.info.get("xmp") or image.info.get("XML:com.adobe.xmp"))


def test_local_render_keeps_the_metadata_and_verifies_every_rendered_file(
        tmp_path: Path, emulator: FakeApiServer) -> None:
    """``render = "local"``: the variants made here carry the studio's fields like downloaded
    ones, and are upright and colour-true (each rendered file passed ``job.verify``)."""
    config = write_config(tmp_path, emulator.base_url, folder={"render": "local"})
    studio = tmp_path / "studio"
    device_file = phone_jpeg_with_metadata(studio / "inbox")
    with InProcessDaemon(config):
        wait_for(lambda: len(visible_files(studio / "outbox")) == 3, what="the outputs")
    for suffix in VARIANT_SUFFIXES:
        assert_metadata(studio / "outbox" / f"IMG_0042{suffix}", device_file.meta)
    assert_upright_and_true(studio / "outbox" / "IMG_0042.full.png", device_file.patch_lab)
    processes = [r for r in emulator.requests() if r.endpoint == "process" and r.status == 200]
    assert len(processes) == 1
