"""A PNG output's pixel data checked byte for byte without a decode: every valid PNG passes, and
every damage that keeps the chunk CRCs right (recomputed, so only this check can see it) is
refused as a bad output. Pillow's full decode, the check before, passed the short, long and
trailing-data cases."""

from __future__ import annotations

import io
import random
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.config.model import Variant
from bgcut_watchd.errors import BadOutputError
from bgcut_watchd.job import pngdata
from bgcut_watchd.job.verify import verify_output
from tests.hostile import PNG_SIGNATURE, blank_bilevel_png, png_chunks, subject_image
from tests.job.test_verify import RecordingBudget

SIZE = (121, 83)  # rows whose bits do not fill whole bytes at 1 and 2 bits a pixel
VARIANT = Variant("cut", format="png", max_resolution=200_000_000)


def chunk(chunk_type: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(chunk_type))
    return struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", crc)


def parts(data: bytes) -> tuple[bytes, bytes]:
    """A PNG's IHDR body and its whole zlib stream (every IDAT joined)."""
    bodies = {t: data[o + 8:o + 8 + n] for t, o, n in png_chunks(data) if t != b"IDAT"}
    idat = b"".join(data[o + 8:o + 8 + n] for t, o, n in png_chunks(data) if t == b"IDAT")
    return bodies[b"IHDR"], idat


def rebuilt(ihdr: bytes, *idat_runs: list[bytes]) -> bytes:
    """A PNG of ``ihdr`` and the given IDAT runs (a tEXt between two), every CRC right."""
    runs = [b"".join(chunk(b"IDAT", body) for body in run) for run in idat_runs]
    return (PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"tEXt", b"k\0v").join(runs)
            + chunk(b"IEND", b""))


def saved(mode: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    subject_image(SIZE).convert(mode).save(buffer, "PNG", **params)
    return buffer.getvalue()


def raw_of(data: bytes) -> tuple[bytes, bytes, int]:
    """(IHDR body, inflated image data, bytes per row with its filter byte) of an RGBA PNG."""
    ihdr, idat = parts(data)
    return ihdr, zlib.decompress(idat), 1 + SIZE[0] * 4


@pytest.fixture(autouse=True, params=["isal", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check holds with ISA-L's inflate (the dependency) and with zlib (its fallback)."""
    if request.param == "isal":
        assert pngdata._inflate.__name__ == "isal.isal_zlib"
    else:
        monkeypatch.setattr(pngdata, "_inflate", zlib)
        monkeypatch.setattr(pngdata, "_INFLATE_ERRORS", (zlib.error,))


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "out.dl"
    path.write_bytes(data)
    return path


def refused(tmp_path: Path, data: bytes) -> str:
    with pytest.raises(BadOutputError) as caught:
        verify_output(write(tmp_path, data), VARIANT, None)
    return caught.value.detail


def sixteen_bit_rgba() -> bytes:
    """16 bits a sample, colour type 6 (Pillow cannot write it): random rows, filter 0..4."""
    rng = random.Random(16)
    width, height = SIZE
    rows = b"".join(bytes([y % 5]) + rng.randbytes(width * 8) for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return rebuilt(ihdr, [zlib.compress(rows)])


@pytest.mark.parametrize("make", [
    lambda: saved("RGB"), lambda: saved("RGBA"), lambda: saved("P"), lambda: saved("L"),
    lambda: saved("LA"), lambda: saved("1"), lambda: saved("I;16"), lambda: saved("RGB", bits=2),
    lambda: saved("RGBA", compress_level=0), sixteen_bit_rgba,
], ids=["rgb", "rgba", "palette", "grey", "grey_alpha", "bilevel", "grey16", "palette_2bit",
        "stored", "rgba16"])
def test_a_valid_png_passes_with_no_pixel_decoded(tmp_path: Path, make: object) -> None:
    assert callable(make)
    budget = RecordingBudget()
    with Image.open(io.BytesIO(make())) as image:
        image.load()  # Pillow agrees it is whole
    assert verify_output(write(tmp_path, make()), VARIANT, None, budget) == SIZE
    assert budget.reserved == []  # inflated in pieces, not decoded into pixels


def test_idat_split_into_many_chunks_some_empty_passes(tmp_path: Path) -> None:
    ihdr, idat = parts(saved("RGBA"))
    pieces = [idat[i:i + 100] for i in range(0, len(idat), 100)]
    assert verify_output(write(tmp_path, rebuilt(ihdr, [b"", *pieces, b""])), VARIANT, None)


def adam7_rgba() -> bytes:
    """An interlaced (Adam7) RGBA PNG (Pillow reads them, never writes them)."""
    image = subject_image(SIZE).convert("RGBA")
    width, height = SIZE
    rows = []
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                           (1, 0, 2, 2), (0, 1, 1, 2)):
        for y in range(y0, height, dy):
            pixels = [image.getpixel((x, y)) for x in range(x0, width, dx)]
            rows.append(b"\0" + b"".join(bytes(p) for p in pixels if isinstance(p, tuple)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 1)
    return rebuilt(ihdr, [zlib.compress(b"".join(rows))])


def apng_rgba() -> bytes:
    second = subject_image(SIZE, "second frame").convert("RGBA")
    return saved("RGBA", save_all=True, append_images=[second], duration=100)


@pytest.mark.parametrize("make", [adam7_rgba, apng_rgba], ids=["interlaced", "apng"])
def test_interlaced_and_animated_pngs_are_left_to_a_full_decode(
        tmp_path: Path, make: object) -> None:
    assert callable(make)
    data = make()
    with open(write(tmp_path, data), "rb") as fp:
        assert pngdata.check_pixel_data(fp) is False
    budget = RecordingBudget()
    assert verify_output(write(tmp_path, data), VARIANT, None, budget) == SIZE
    assert budget.reserved == [SIZE[0] * SIZE[1]]
    ihdr_and_more, idat = data[:data.index(b"IDAT") - 4], parts(data)[1]
    cut = ihdr_and_more + chunk(b"IDAT", idat[:len(idat) // 2]) + chunk(b"IEND", b"")
    assert "does not decode fully" in refused(tmp_path, cut)


def test_a_flipped_byte_in_idat_with_its_crc_recomputed_is_refused(tmp_path: Path) -> None:
    ihdr, idat = parts(saved("RGBA"))
    for where in (2, len(idat) // 3, len(idat) // 2, len(idat) - 1):  # data and Adler-32
        damaged = bytearray(idat)
        damaged[where] ^= 0x10
        detail = refused(tmp_path, rebuilt(ihdr, [bytes(damaged)]))
        assert "'cut' (PNG)" in detail and "not published" in detail


def test_an_idat_chunk_whose_crc_does_not_match_is_refused(tmp_path: Path) -> None:
    """The IDAT CRCs are checked with the data (the chunk pass skips them): data that inflates
    to the declared image still fails when its chunk's CRC says the bytes are not as sent."""
    data = bytearray(saved("RGBA"))
    _, offset, length = next(c for c in png_chunks(bytes(data)) if c[0] == b"IDAT")
    data[offset + 8 + length] ^= 0x01  # the stored CRC, the data untouched
    assert "IDAT chunk whose CRC does not match" in refused(tmp_path, bytes(data))


@pytest.mark.parametrize(("change", "words"), [
    (lambda raw, row: raw[:-row], "image data of"),  # a whole row short
    (lambda raw, row: raw[:-1], "image data of"),
    (lambda raw, row: raw + bytes(row), "more image data than"),  # a row too many
    (lambda raw, row: raw + b"\0", "more image data than"),
    (lambda raw, row: raw[:3 * row] + b"\x05" + raw[3 * row + 1:], "filter type 5 on row 3"),
    (lambda raw, row: raw[:-row] + b"\xff" + raw[-row + 1:], "filter type 255 on row 82"),
], ids=["short_row", "short_byte", "long_row", "long_byte", "filter_5", "filter_255_last"])
def test_data_that_is_not_the_declared_image_is_refused(
        tmp_path: Path, change: object, words: str) -> None:
    assert callable(change)
    ihdr, raw, row_bytes = raw_of(saved("RGBA"))
    assert words in refused(tmp_path, rebuilt(ihdr, [zlib.compress(change(raw, row_bytes))]))


def test_a_zlib_stream_cut_short_or_followed_by_bytes_is_refused(tmp_path: Path) -> None:
    ihdr, idat = parts(saved("RGBA"))
    assert "stops after" in refused(tmp_path, rebuilt(ihdr, [idat[:-5]]))
    assert "2 bytes after" in refused(tmp_path, rebuilt(ihdr, [idat + b"\0\0"]))
    assert "bytes after" in refused(tmp_path, rebuilt(ihdr, [idat, b"\x78"]))
    assert "damaged compressed" in refused(tmp_path, rebuilt(ihdr, [b"\x78\x9c\xff" + idat[3:]]))


def test_idat_chunks_in_two_runs_are_refused(tmp_path: Path) -> None:
    ihdr, idat = parts(saved("RGBA"))
    middle = len(idat) // 2
    assert "not one run" in refused(tmp_path, rebuilt(ihdr, [idat[:middle]], [idat[middle:]]))


@pytest.mark.parametrize("level", [0, 1, 9])
def test_image_data_of_many_pieces_in_one_idat_chunk_passes(tmp_path: Path, level: int) -> None:
    """ISA-L takes a chunk's input at once and may hold inflated bytes back when a piece is
    full: those are asked for, not taken for a stream cut short (a valid 480 KB cut-out was
    refused as "stops after 458752 of its 480300 bytes" before)."""
    rng = random.Random(level)
    width, height = 401, 300  # 1 + 401 * 4 bytes a row: rows straddle the pieces
    rows = b"".join(bytes([y % 5]) + rng.randbytes(width // 4) + bytes(width * 4 - width // 4)
                    for y in range(height))  # mostly blank: inflates ~15 times its size
    assert len(rows) > 7 * pngdata.PIECE_BYTES
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path = write(tmp_path, rebuilt(ihdr, [zlib.compress(rows, level)]))
    with path.open("rb") as fp:
        assert pngdata.check_pixel_data(fp)


def test_memory_stays_small_whatever_the_image_size(tmp_path: Path) -> None:
    path = write(tmp_path, blank_bilevel_png(9_000, 9_000))  # 10 MB of image data, inflated
    tracemalloc.start()
    try:
        assert verify_output(path, VARIANT, None) == (9_000, 9_000)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1 << 20  # the image data is 10 MB; pieces of 64 KiB
