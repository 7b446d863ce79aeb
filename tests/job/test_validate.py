"""The local check: every hostile input gets its exact reason, every valid one its true facts."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from bgcut_watchd.errors import LocalInputError
from bgcut_watchd.job import validate as validate_mod
from bgcut_watchd.job.validate import REASONS, ValidatedInput, validate_input
from tests.hostile import (
    HOSTILE_CASES,
    TEST_MAX_BYTES,
    TEST_MAX_PIXELS,
    blank_bilevel_png,
    damaged_jpegs,
    make_corpus,
    make_fifo,
    make_name_invalid_utf8,
    make_valid_avif,
    make_valid_jpeg,
    make_valid_png,
    make_valid_webp,
    photo_jpeg,
)
from tests.support import REPO

DEADLINE_S = 10.0
LIMITS = {"max_bytes": TEST_MAX_BYTES, "max_pixels": TEST_MAX_PIXELS}


def run_with_deadline(path: Path, deadline_s: float = DEADLINE_S,
                      **limits: int) -> ValidatedInput | LocalInputError:
    """Validate in a daemon thread: a hang (say, a FIFO opened blocking) fails, never blocks."""
    outcome: list[ValidatedInput | BaseException] = []

    def work() -> None:
        try:
            outcome.append(validate_input(path, **(limits or LIMITS)))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=deadline_s)
    assert not worker.is_alive(), f"validate_input still running after {deadline_s} s"
    result = outcome[0]
    if isinstance(result, LocalInputError | ValidatedInput):
        return result
    raise result


def reason_of(path: Path, **limits: int) -> str:
    result = run_with_deadline(path, **limits)
    assert isinstance(result, LocalInputError), f"accepted: {result}"
    assert result.detail, "a refusal must say why"
    return result.reason


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(("make", "expected"), [(c.make, c.expected) for c in HOSTILE_CASES],
                         ids=[c.name for c in HOSTILE_CASES])
def test_every_hostile_case_gets_its_exact_outcome(
    inbox: Path, make: Callable[[Path], Path], expected: str | None,
) -> None:
    path = make(inbox)
    result = run_with_deadline(path)
    if expected is None:
        assert isinstance(result, ValidatedInput), f"refused: {result!r}"
        real_format = {"animation.gif": "gif", "scan.tif": "tiff", "bitmap.jpg": "bmp"}.get(
            path.name, "jpeg")
        assert (result.format, result.width, result.height) == (real_format, 64, 48)
    else:
        assert isinstance(result, LocalInputError), f"accepted: {result}"
        assert expected in REASONS
        assert (result.reason, type(result)) == (expected, LocalInputError), result.detail


@pytest.mark.parametrize(("make", "image_format"), [
    (make_valid_jpeg, "jpeg"), (make_valid_png, "png"),
    (make_valid_webp, "webp"), (make_valid_avif, "avif"),
])
def test_valid_formats_pass_with_their_true_facts(
    inbox: Path, make: Callable[..., Path], image_format: str,
) -> None:
    path = make(inbox, f"picture-named-wrong.{'png' if image_format == 'jpeg' else 'jpg'}",
                size=(73, 41))
    result = validate_input(path, **LIMITS)
    st = path.stat()
    assert result == ValidatedInput(
        format=image_format, width=73, height=41,  # type: ignore[arg-type]
        size_bytes=st.st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        st_dev=st.st_dev, st_ino=st.st_ino, mode="RGB", orientation=1, pages=1,
        animated=False, bits=8, icc_profile=None,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.width = 1  # type: ignore[misc]


def test_refusals_name_what_was_found(inbox: Path) -> None:
    corpus = make_corpus(inbox)
    details = {name: run_with_deadline(path) for name, path in corpus.items()}
    assert "PDF" in str(details["pdf_named_png"])
    assert "a TIFF file that does not decode: " in str(details["truncated_tiff"])
    assert "FIFO" in str(details["fifo_named_jpg"])
    assert "directory" in str(details["directory_named_jpg"])
    assert "symbolic link" in str(details["symlink_outside"])
    assert "400000000 pixels" in str(details["png_20000x20000"])
    for outcome in details.values():  # no name (newlines, invalid UTF-8...) leaks into a detail
        assert "\n" not in str(outcome)
        assert not [path.name for path in corpus.values() if path.name in str(outcome)]


CUT = "the file ends before the image does (cut short in a copy?)"


@pytest.mark.parametrize(("case", "words"), [
    ("truncated_jpeg", CUT),
    ("jpeg_cut_at_90_percent", CUT),
    ("jpeg_without_eoi", CUT),
    ("progressive_jpeg_cut", CUT),
    ("jpeg_garbage_in_scan", "the compressed picture data is damaged"),
])
def test_a_broken_jpeg_decoded_at_an_eighth_gets_the_full_decodes_verdict(
        inbox: Path, case: str, words: str) -> None:
    make = next(c.make for c in HOSTILE_CASES if c.name == case)
    result = run_with_deadline(make(inbox))
    assert isinstance(result, LocalInputError) and result.reason == "invalid_image"
    assert result.detail == f"a JPEG file that does not decode: {words}"


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_damaged_jpeg_input_is_refused_exactly_when_a_full_decode_refuses_it(
        tmp_path: Path, progressive: bool) -> None:
    verdicts = set()
    for index, data in enumerate(damaged_jpegs(photo_jpeg(progressive), 90, seed=5)):
        path = tmp_path / f"{index}.jpg"
        path.write_bytes(data)
        try:
            with Image.open(path, formats=["JPEG"]) as image:
                image.load()  # the check before issue 14: a full-size decode
            full_decode_refuses = False
        except Exception:
            full_decode_refuses = True
        verdicts.add(full_decode_refuses)
        result = run_with_deadline(path)
        if full_decode_refuses:
            assert isinstance(result, LocalInputError) and result.reason == "invalid_image"
        else:  # the true size, not the 1/8 one the check decoded
            assert isinstance(result, ValidatedInput) and (result.width, result.height) == (
                333, 251)
    assert verdicts == {True, False}


def test_a_fifo_never_blocks_even_when_the_lstat_precheck_is_bypassed(
    inbox: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The race the O_NONBLOCK open defends: a FIFO swapped in after lstat looked at a file.
    monkeypatch.setattr(validate_mod, "_refuse_non_regular_by_lstat", lambda path: None)
    started = time.monotonic()
    assert reason_of(make_fifo(inbox)) == "not_regular_file"
    assert time.monotonic() - started < DEADLINE_S


def test_a_symlink_is_never_followed(inbox: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    fifo_link = inbox / "to-fifo.jpg"
    fifo_link.symlink_to(make_fifo(outside))  # following it would hang on the FIFO
    good_link = inbox / "to-good.jpg"
    good_link.symlink_to(make_valid_jpeg(outside))  # following it would accept it
    assert reason_of(fifo_link) == "not_regular_file"
    assert reason_of(good_link) == "not_regular_file"
    monkeypatch.setattr(validate_mod, "_refuse_non_regular_by_lstat", lambda path: None)
    assert reason_of(fifo_link) == "not_regular_file"  # O_NOFOLLOW: ELOOP
    assert reason_of(good_link) == "not_regular_file"


def test_a_socket_is_not_a_regular_file(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.jpg"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(os.fspath(path))
        assert reason_of(path) == "not_regular_file"
        monkeypatch.setattr(validate_mod, "_refuse_non_regular_by_lstat", lambda path: None)
        assert reason_of(path) == "not_regular_file"  # open gives ENXIO


def test_valid_corpus_files_are_all_distinct(inbox: Path) -> None:
    corpus = make_corpus(inbox)
    valid = [corpus[c.name] for c in HOSTILE_CASES if c.expected is None]
    digests = {validate_input(path, **LIMITS).sha256 for path in valid}
    assert len(digests) == len(valid)  # else the ledger would skip some as duplicates


def test_a_name_with_invalid_utf8_is_validated_like_any_other(inbox: Path) -> None:
    path = make_name_invalid_utf8(inbox)
    assert os.fsencode(path.name) == b"bad\xff\xfename.jpg"
    result = validate_input(path, **LIMITS)
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_size_is_refused_from_fstat_before_reading(tmp_path: Path) -> None:
    path = make_valid_jpeg(tmp_path)
    try:
        os.truncate(path, 1 << 40)  # 1 TiB, sparse: reading it would take minutes
    except OSError:
        pytest.skip("this filesystem cannot hold a sparse 1 TiB file")
    started = time.monotonic()
    result = run_with_deadline(path)
    assert isinstance(result, LocalInputError)
    assert result.reason == "too_large"
    assert f"{1 << 40} bytes" in result.detail  # the size fstat saw, not a count of bytes read
    assert time.monotonic() - started < 2.0


def test_byte_limit_boundary(tmp_path: Path) -> None:
    path = make_valid_jpeg(tmp_path)
    size = path.stat().st_size
    assert validate_input(path, max_bytes=size, max_pixels=TEST_MAX_PIXELS).size_bytes == size
    assert reason_of(path, max_bytes=size - 1, max_pixels=TEST_MAX_PIXELS) == "too_large"


def test_pixel_limit_boundary_from_the_header(tmp_path: Path) -> None:
    path = make_valid_png(tmp_path, size=(64, 48))
    assert validate_input(path, max_bytes=TEST_MAX_BYTES, max_pixels=64 * 48).width == 64
    result = run_with_deadline(path, max_bytes=TEST_MAX_BYTES, max_pixels=64 * 48 - 1)
    assert isinstance(result, LocalInputError)
    assert result.reason == "too_many_pixels"
    assert "64x48" in result.detail


def test_pixels_between_our_limit_and_pillows_are_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 96 MP: over Pillow's warning threshold (89.5 MP) but under its error threshold (179 MP).
    path = tmp_path / "wide.png"
    path.write_bytes(blank_bilevel_png(12_000, 8_000))
    loads: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self))
    with pytest.warns(Image.DecompressionBombWarning):
        assert reason_of(path) == "too_many_pixels"
    assert loads == [], "decoded although the header was over the limit"


def test_pillows_own_bomb_limit_still_applies_above_ours(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(blank_bilevel_png(20_000, 20_000))
    result = run_with_deadline(path, max_bytes=TEST_MAX_BYTES, max_pixels=10**12)
    assert isinstance(result, LocalInputError)
    assert result.reason == "too_many_pixels"
    # The daemon's own words, not Pillow's ("could be decompression bomb DOS attack").
    assert "over 178,956,970 pixels" in result.detail and "scale it down" in result.detail
    assert "decompression bomb" not in result.detail.lower()


@pytest.mark.parametrize(("head", "found"), [
    (b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00", "PSD"),
    (b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom", "ISO media"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "RIFF WAVE"),
    (b"PK\x03\x04\x14\x00\x00\x00", "ZIP"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
])
def test_other_formats_are_named(tmp_path: Path, head: bytes, found: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(head + bytes(64))
    result = run_with_deadline(path)
    assert isinstance(result, LocalInputError)
    assert (result.reason, found in result.detail) == ("unsupported_format", True), result.detail


@pytest.mark.parametrize("data", [
    b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", b"BMW service notes",
    bytes(range(256)) * 4,
], ids=["jpeg_sig_only", "png_sig_only", "webp_header_only", "avif_ftyp_only", "text_bm",
        "garbage"])
def test_signature_without_a_decodable_image_is_invalid(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    result = run_with_deadline(path)
    assert isinstance(result, LocalInputError)
    assert result.reason == "invalid_image"
    assert "BufferedReader" not in result.detail  # says what is wrong, not Pillow's repr


def test_permission_denied_is_unreadable(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        path = make_valid_jpeg(tmp_path)
        path.chmod(0)
    else:  # root reads any mode bits; a write-only sysfs attribute still refuses reading
        path = Path("/sys/bus/pci/rescan")
        try:
            os.close(os.open(path, os.O_RDONLY))
            pytest.skip("no file refuses root here")
        except PermissionError:
            pass
        except OSError:
            pytest.skip("no /sys/bus/pci/rescan here")
    result = run_with_deadline(path, max_bytes=TEST_MAX_BYTES, max_pixels=TEST_MAX_PIXELS)
    assert isinstance(result, LocalInputError)
    assert (result.reason, result.detail) == ("unreadable", "cannot read the file: "
                                              "Permission denied")


@pytest.mark.parametrize("failing_pass", [1, 2], ids=["while_hashing", "while_decoding"])
def test_an_io_error_while_reading_is_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_pass: int,
) -> None:
    path = make_valid_jpeg(tmp_path)
    real_fdopen = os.fdopen

    class FailingReader:
        """The real file; reads fail with EIO from pass ``failing_pass`` (seek(0) starts one)."""

        def __init__(self, fd: int) -> None:
            self.file = real_fdopen(fd, "rb")
            self.current_pass = 1

        def read(self, size: int = -1) -> bytes:
            if self.current_pass >= failing_pass:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return self.file.read(size)

        def seek(self, offset: int, whence: int = 0) -> int:
            self.current_pass += offset == 0 and whence == 0
            return self.file.seek(offset, whence)

        def __getattr__(self, name: str) -> object:
            return getattr(self.file, name)

        def __enter__(self) -> FailingReader:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FailingReader(fd))
    result = run_with_deadline(path)
    assert isinstance(result, LocalInputError)
    assert (result.reason, result.detail) == ("unreadable", "cannot read the file: "
                                              "Input/output error")


def test_a_vanished_file_is_unreadable(tmp_path: Path) -> None:
    assert reason_of(tmp_path / "gone.jpg") == "unreadable"


def test_refuses_to_run_when_truncated_images_are_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        validate_input(make_valid_jpeg(tmp_path), **LIMITS)


@pytest.mark.parametrize("limits", [{"max_bytes": 0, "max_pixels": 1},
                                    {"max_bytes": 1, "max_pixels": 0}])
def test_limits_must_be_positive(tmp_path: Path, limits: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        validate_input(make_valid_jpeg(tmp_path), **limits)


def test_no_global_state_is_changed_and_no_descriptor_leaks(inbox: Path) -> None:
    corpus = make_corpus(inbox)
    fds_before = len(os.listdir("/proc/self/fd"))
    pixels_before = Image.MAX_IMAGE_PIXELS
    for path in corpus.values():
        run_with_deadline(path)
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert (pixels_before, False) == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


def test_many_threads_at_once_give_the_serial_answers(inbox: Path) -> None:
    corpus = make_corpus(inbox)
    expected = {case.name: case.expected for case in HOSTILE_CASES}

    def outcome(name: str) -> str | None:
        result = run_with_deadline(corpus[name])
        return result.reason if isinstance(result, LocalInputError) else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        names = list(expected) * 3
        assert list(pool.map(outcome, names)) == [expected[name] for name in names]


def test_every_reason_is_documented_in_the_module_docstring() -> None:
    assert validate_mod.__doc__ is not None
    covered = {c.expected for c in HOSTILE_CASES if c.expected} | {"unreadable", "camera_raw"}
    assert covered == REASONS  # the corpus covers every reason (unreadable, camera_raw: below)
    for reason in REASONS:
        assert f"\n    {reason} " in validate_mod.__doc__, reason


def test_a_two_megapixel_photo_validates_in_tens_of_milliseconds(tmp_path: Path) -> None:
    grain = [Image.effect_noise((1920, 1080), 60) for _ in "RGB"]  # photo-like: ~1.8 MB
    path = tmp_path / "photo.jpg"
    Image.merge("RGB", grain).save(path, "JPEG", quality=92)
    timings_s = []
    for _ in range(5):
        started = time.perf_counter()
        validate_input(path, max_bytes=50_000_000, max_pixels=50_000_000)
        timings_s.append(time.perf_counter() - started)
    assert statistics.median(timings_s) < 0.25  # loose bound; measured ~19 ms


def test_a_broken_heic_gets_the_decoders_verdict_in_plain_words(tmp_path: Path) -> None:
    from tests.devices.corpus import heic_phone

    made = tmp_path / heic_phone(tmp_path).name
    data = made.read_bytes()
    made.write_bytes(data[: len(data) * 2 // 3])
    result = run_with_deadline(made)
    assert isinstance(result, LocalInputError)
    assert result.reason == "invalid_image"
    assert result.detail.startswith("a HEIC/HEIF file that does not decode: "), result.detail
    assert made.name not in result.detail


_NO_INIT_SCRIPT = """
import sys
from pathlib import Path
from PIL import Image
from bgcut_watchd.config.model import Variant
from bgcut_watchd.job.validate import validate_input
from bgcut_watchd.job.verify import verify_output
for name in sys.argv[1:]:
    path = Path(name)
    validate_input(path, max_bytes=10**8, max_pixels=10**8)
    fmt = {"webp": "webp", "png": "png", "jpg": "jpeg"}.get(path.suffix[1:])
    if fmt:
        verify_output(path, Variant("v", format=fmt), None)
print("PIL.PdfImagePlugin" in sys.modules, flush=True)
"""


def test_checking_every_format_never_loads_all_of_pillow_s_plugins(tmp_path: Path) -> None:
    """``Image.init()`` (all ~45 plugins, under the import lock) used to run in the first job
    that opened a WebP, TIFF or AVIF; the daemon registers the plugins it needs at import."""
    paths = []
    for fmt, ext in (("WEBP", "webp"), ("TIFF", "tif"), ("AVIF", "avif"), ("BMP", "bmp"),
                     ("GIF", "gif"), ("PNG", "png"), ("JPEG", "jpg")):
        path = tmp_path / f"sample.{ext}"
        Image.new("RGB", (40, 30), (200, 30, 30)).save(path, fmt)
        paths.append(str(path))
    result = subprocess.run([sys.executable, "-c", _NO_INIT_SCRIPT, *paths], check=True,
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.stdout.strip() == "False"
