"""A corpus of hostile inputs, and small valid images, for every test that needs them.

Each ``make_<case>(folder) -> Path`` creates one input in ``folder`` (an existing directory) and
returns its path; every case has its own name, so the whole corpus fits in one inbox
(``make_corpus``). ``HOSTILE_CASES`` lists ``(name, make, expected)`` where ``expected`` is the
``LocalInputError.reason`` that ``job.validate.validate_input`` must give with
``max_bytes=TEST_MAX_BYTES, max_pixels=TEST_MAX_PIXELS``, or None for a valid image that must be
processed normally (hostile names; a GIF, a TIFF and a BMP named .jpg, converted before the
upload). Camera RAW is not here: the intake leaves it in the inbox (tests/devices). ``IGNORED``
is the marker for a case the intake must leave alone; no case uses it yet, because each of
these reaches the validator.

Intake and end-to-end tests should know: ``make_directory_named_jpg`` is a directory (a recursive
intake walks into it, it is empty), and ``make_symlink_outside`` also creates a target directory
beside ``folder`` (``<folder>-outside``), never inside it.

The valid images show a distinct subject (a red disc and a blue bar) on a plain light background
(``BACKGROUND``), so the emulator's border-colour cut has something to keep and something to drop.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Final, NamedTuple

from PIL import Image, ImageDraw

TEST_MAX_BYTES: Final = 1_000_000
TEST_MAX_PIXELS: Final = 50_000_000
IGNORED: Final = "ignored"
BACKGROUND: Final = (236, 236, 236)
SUBJECT: Final = (200, 30, 40)
ACCENT: Final = (30, 60, 200)
DEFAULT_SIZE: Final = (64, 48)
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def subject_image(size: tuple[int, int] = DEFAULT_SIZE, variant: str = "") -> Image.Image:
    """An RGB image: plain ``BACKGROUND`` border, a red disc and a blue bar in the middle.

    ``variant`` (the file name, for the makers) tints the bar, so two files of one corpus never
    share a sha256: the ledger would otherwise skip the second as an already-processed duplicate.
    """
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    crc = zlib.crc32(os.fsencode(variant)) if variant else 0
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=SUBJECT)
    draw.rectangle((width * 2 // 5, height // 3, width * 3 // 5, height * 2 // 3),
                   fill=(ACCENT[0], ACCENT[1] + crc % 120, ACCENT[2]))
    # The whole 32-bit crc as a row of dark/light pixels inside the subject: two names whose
    # tints collide still give different pixels (a tint alone collided in a 60-file corpus).
    y = height // 2
    for bit in range(32):
        x = width // 4 + 1 + bit * max(1, width // 2 - 2) // 32
        image.putpixel((x, y), (0, 0, 0) if crc >> bit & 1 else (255, 255, 255))
    return image


def encode(image: Image.Image, pillow_format: str) -> bytes:
    out = io.BytesIO()
    image.save(out, pillow_format)
    return out.getvalue()


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def make_valid_jpeg(folder: Path, name: str = "valid.jpg",
                    size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    return _write(folder, name, encode(subject_image(size, name), "JPEG"))


def make_valid_png(folder: Path, name: str = "valid.png",
                   size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    return _write(folder, name, encode(subject_image(size, name), "PNG"))


def make_valid_webp(folder: Path, name: str = "valid.webp",
                    size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    return _write(folder, name, encode(subject_image(size, name), "WEBP"))


def make_valid_avif(folder: Path, name: str = "valid.avif",
                    size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    return _write(folder, name, encode(subject_image(size, name), "AVIF"))


# --- bad content -------------------------------------------------------------------------------

def make_empty(folder: Path) -> Path:
    return _write(folder, "empty.jpg", b"")


def make_text_named_jpg(folder: Path) -> Path:
    return _write(folder, "notes.jpg", b"shopping list:\n- milk\n- a real photo\n")


def make_pdf_named_png(folder: Path) -> Path:
    return _write(folder, "document.png", encode(subject_image(), "PDF"))


def make_truncated_jpeg(folder: Path) -> Path:
    data = encode(subject_image((320, 240)), "JPEG")
    return _write(folder, "truncated.jpg", data[: len(data) // 2])


def _jpeg_of_subject(progressive: bool = False) -> bytes:
    out = io.BytesIO()
    subject_image((321, 243)).save(out, "JPEG", quality=90, progressive=progressive)
    return out.getvalue()


def make_jpeg_cut_at_90_percent(folder: Path) -> Path:
    data = _jpeg_of_subject()
    return _write(folder, "cut-at-90.jpg", data[: len(data) * 9 // 10])


def make_jpeg_without_eoi(folder: Path) -> Path:
    """Every byte of the scan, cut just before its end marker (EOI, ``FF D9``)."""
    data = _jpeg_of_subject()
    return _write(folder, "no-eoi.jpg", data[:-2])


def make_jpeg_with_garbage_in_scan(folder: Path) -> Path:
    """Another image's start (SOI, APP0) spliced into the middle of the entropy-coded data."""
    data = bytearray(_jpeg_of_subject())
    middle = (data.rfind(b"\xff\xda") + len(data)) // 2
    data[middle:middle + 8] = b"\xff\xd8\xff\xe0garb"
    return _write(folder, "garbage-in-scan.jpg", bytes(data))


def make_progressive_jpeg_cut(folder: Path) -> Path:
    """A progressive JPEG cut after its first scans: a blurry whole image, not a whole one."""
    data = _jpeg_of_subject(progressive=True)
    return _write(folder, "progressive-cut.jpg", data[: len(data) * 6 // 10])


def photo_jpeg(progressive: bool, size: tuple[int, int] = (333, 251)) -> bytes:
    """Photo-like (noise over the subject), sides not multiples of 8 or 16: partial MCUs."""
    image = Image.blend(subject_image(size), Image.effect_noise(size, 60).convert("RGB"), 0.3)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, progressive=progressive)
    return out.getvalue()


def damaged_jpegs(data: bytes, count: int, seed: int) -> list[bytes]:
    """``count`` damaged copies of the JPEG ``data``, each beyond its first scan header: cut
    anywhere, one byte changed, or 40 random bytes written over. Deterministic for ``seed``."""
    rng = random.Random(seed)
    scan = data.find(b"\xff\xda") + 2
    damaged = [data[:-1], data[:-2], data[: len(data) // 2], data[: len(data) * 9 // 10]]
    while len(damaged) < count:
        copy, where = bytearray(data), rng.randrange(scan, len(data) - 42)
        kind = len(damaged) % 3
        if kind == 0:
            copy = copy[:where]
        elif kind == 1:
            copy[where] = rng.randrange(256)
        else:
            copy[where:where + 40] = rng.randbytes(40)
        damaged.append(bytes(copy))
    return damaged


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(chunk type, offset of its length field, data length) of every chunk of a PNG."""
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        chunks.append((data[offset + 4:offset + 8], offset, length))
        offset += 12 + length
    return chunks


def corrupt_png_crc(data: bytes, chunk_type: bytes) -> bytes:
    """``data`` with the CRC of its first ``chunk_type`` chunk flipped (the chunk data intact)."""
    _, offset, length = next(c for c in png_chunks(data) if c[0] == chunk_type)
    corrupted = bytearray(data)
    corrupted[offset + 8 + length] ^= 0xFF
    return bytes(corrupted)


def make_png_bad_crc(folder: Path) -> Path:
    """A bad IDAT CRC: Pillow alone would decode it (it skips that CRC); libpng would not."""
    data = corrupt_png_crc(encode(subject_image(), "PNG"), b"IDAT")
    return _write(folder, "bad-crc.png", data)


def make_png_bad_header_crc(folder: Path) -> Path:
    data = corrupt_png_crc(encode(subject_image(), "PNG"), b"IHDR")
    return _write(folder, "bad-header-crc.png", data)


def make_png_without_iend(folder: Path) -> Path:
    data = encode(subject_image(), "PNG")
    return _write(folder, "no-iend.png", data[:-12])


def _png_chunk(chunk_type: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(chunk_type))
    return struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", crc)


def blank_bilevel_png(width: int, height: int) -> bytes:
    """A complete, valid 1-bit grayscale PNG of any size, built in a stream (~50 KB at 20000^2)."""
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then all-black bits
    rows_per_block = max(1, (1 << 20) // len(row))
    compressor = zlib.compressobj(9)
    idat = [compressor.compress(row * min(rows_per_block, height - done))
            for done in range(0, height, rows_per_block)]
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(idat))
            + _png_chunk(b"IEND", b""))


def make_huge_png(folder: Path) -> Path:
    """20000 x 20000 = 400 MP: over ``TEST_MAX_PIXELS`` and over Pillow's own bomb limit."""
    return _write(folder, "huge.png", blank_bilevel_png(20_000, 20_000))


def make_over_max_bytes(folder: Path) -> Path:
    """A valid JPEG padded (sparse zeros after EOI) to 2 x ``TEST_MAX_BYTES``: only too big."""
    path = make_valid_jpeg(folder, "oversized.jpg")
    os.truncate(path, 2 * TEST_MAX_BYTES)
    return path


def make_gif(folder: Path) -> Path:
    return _write(folder, "animation.gif", encode(subject_image(), "GIF"))


def make_tiff(folder: Path) -> Path:
    return _write(folder, "scan.tif", encode(subject_image(), "TIFF"))


def make_truncated_tiff(folder: Path) -> Path:
    data = encode(subject_image((320, 240)), "TIFF")
    return _write(folder, "torn-scan.tif", data[: len(data) // 2])


def make_bmp_named_jpg(folder: Path) -> Path:
    return _write(folder, "bitmap.jpg", encode(subject_image(), "BMP"))


# --- not regular files -------------------------------------------------------------------------

def make_symlink_outside(folder: Path) -> Path:
    """A symlink to a valid JPEG in ``<folder>-outside``, a sibling directory of ``folder``."""
    outside = folder.parent / f"{folder.name}-outside"
    outside.mkdir(exist_ok=True)
    link = folder / "link.jpg"
    link.symlink_to(make_valid_jpeg(outside, "target.jpg"))
    return link


def make_fifo(folder: Path) -> Path:
    path = folder / "pipe.jpg"
    os.mkfifo(path)
    return path


def make_directory_named_jpg(folder: Path) -> Path:
    path = folder / "folder.jpg"
    path.mkdir()
    return path


# --- valid images with hostile names -------------------------------------------------------------

def make_name_with_spaces(folder: Path) -> Path:
    return make_valid_jpeg(folder, "  my holiday  photo .jpg")


def make_name_with_newline(folder: Path) -> Path:
    return make_valid_jpeg(folder, "line\nbreak.jpg")


def make_name_invalid_utf8(folder: Path) -> Path:
    return make_valid_jpeg(folder, os.fsdecode(b"bad\xff\xfename.jpg"))


def make_name_255_bytes(folder: Path) -> Path:
    name = "n" * (255 - len(".jpg")) + ".jpg"
    return make_valid_jpeg(folder, name)


def make_name_leading_dash(folder: Path) -> Path:
    return make_valid_jpeg(folder, "-rf --help.jpg")


def make_name_unicode(folder: Path) -> Path:
    return make_valid_jpeg(folder, "caf\u00e9 \u2615 \u5199\u771f.jpg")


class HostileCase(NamedTuple):
    """One corpus entry: a test id, its maker, and the validator's expected reason (or None)."""

    name: str
    make: Callable[[Path], Path]
    expected: str | None


HOSTILE_CASES: Final[list[HostileCase]] = [
    HostileCase("zero_bytes", make_empty, "empty_file"),
    HostileCase("text_named_jpg", make_text_named_jpg, "invalid_image"),
    HostileCase("pdf_named_png", make_pdf_named_png, "unsupported_format"),
    HostileCase("truncated_jpeg", make_truncated_jpeg, "invalid_image"),
    HostileCase("jpeg_cut_at_90_percent", make_jpeg_cut_at_90_percent, "invalid_image"),
    HostileCase("jpeg_without_eoi", make_jpeg_without_eoi, "invalid_image"),
    HostileCase("jpeg_garbage_in_scan", make_jpeg_with_garbage_in_scan, "invalid_image"),
    HostileCase("progressive_jpeg_cut", make_progressive_jpeg_cut, "invalid_image"),
    HostileCase("png_bad_idat_crc", make_png_bad_crc, "invalid_image"),
    HostileCase("png_bad_ihdr_crc", make_png_bad_header_crc, "invalid_image"),
    HostileCase("png_without_iend", make_png_without_iend, "invalid_image"),
    HostileCase("png_20000x20000", make_huge_png, "too_many_pixels"),
    HostileCase("over_max_bytes", make_over_max_bytes, "too_large"),
    HostileCase("truncated_tiff", make_truncated_tiff, "invalid_image"),
    HostileCase("gif", make_gif, None),  # converted before the upload since issue 10
    HostileCase("tiff", make_tiff, None),
    HostileCase("bmp_named_jpg", make_bmp_named_jpg, None),
    HostileCase("symlink_outside", make_symlink_outside, "not_regular_file"),
    HostileCase("fifo_named_jpg", make_fifo, "not_regular_file"),
    HostileCase("directory_named_jpg", make_directory_named_jpg, "not_regular_file"),
    HostileCase("name_with_spaces", make_name_with_spaces, None),
    HostileCase("name_with_newline", make_name_with_newline, None),
    HostileCase("name_invalid_utf8", make_name_invalid_utf8, None),
    HostileCase("name_255_bytes", make_name_255_bytes, None),
    HostileCase("name_leading_dash", make_name_leading_dash, None),
    HostileCase("name_unicode", make_name_unicode, None),
]


def make_corpus(folder: Path) -> dict[str, Path]:
    """Every case of ``HOSTILE_CASES`` in ``folder``, by case name."""
    return {case.name: case.make(folder) for case in HOSTILE_CASES}
