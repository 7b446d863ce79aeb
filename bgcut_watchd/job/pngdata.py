"""A PNG's pixel data checked byte for byte without decoding a pixel (verify, issue 14).

Pillow's full decode of a 4 MP RGBA cut-out inflates, unfilters every row and builds pixels
that are thrown away. What it proves about the bytes is proved here more strictly, for the cost
of the inflate alone (CPU, best of 5: 196 -> 73 ms for a 4 MP cut-out, 120 -> 99 ms for a
noise-heavy 7.7 MB one):

* every IDAT byte goes through ``zlib`` (each Huffman code and back-reference is decoded), the
  stream ends exactly (``eof``: its Adler-32 matched) and not one byte follows it;
* the inflated length is exactly the raw size the IHDR declares:
  ``height * (1 + ceil(width * bits_per_pixel / 8))`` (a stream that inflates short is a cut
  image, one that inflates long is not the declared image);
* every row's filter byte is 0..4 (what Pillow's unfiltering refuses);
* the IDAT chunks are one run (PNG 5.6; Pillow reads the first run only).

It also checks every IDAT chunk's CRC as the data goes by (ISA-L's crc32: 0.3 ms for 5.7 MB;
a separate pass read the file again); with the other chunks' CRCs checked up to IEND
(``validate.verify_png_chunks(idat_crcs=False)``), every byte of the file is checked.

Memory stays at a few MiB whatever the image: the data is read and inflated in
pieces of ``PIECE_BYTES`` (``decompress(data, max_length)``).

The inflate is Intel's ISA-L through ``isal`` (python-isal, a well-kept binding with wheels for
the usual platforms; it releases the GIL like ``zlib``) where it is installed, else ``zlib``:
same streams, same checks, about half the CPU (a 3 MP photo's 5.7 MB cut-out, best of 5:
67 -> 32 ms).

Left to Pillow's full decode (``check_pixel_data`` returns False): an interlaced (Adam7) PNG,
an animated one (APNG: its frames are fdAT chunks), and an IHDR Pillow would judge itself (not
13 bytes, zero width or height, a colour type and bit depth PNG does not define).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from types import ModuleType
from typing import BinaryIO, Final

_inflate: ModuleType
try:
    from isal import isal_zlib as _inflate
except ImportError:  # no wheel for this platform: the standard library's zlib does the same
    _inflate = zlib
_INFLATE_ERRORS: Final = (zlib.error, _inflate.error)

PIECE_BYTES: Final = 1 << 16  # 64 KiB: in and out pieces stay in the L2 cache (1 MiB: +25% CPU)
PNG_SIGNATURE_BYTES: Final = 8
_CHUNK_HEAD: Final = struct.Struct(">I4s")
_IHDR: Final = struct.Struct(">IIBBBBB")
_CRC_BYTES: Final = 4
_MAX_FILTER: Final = 4  # None, Sub, Up, Average, Paeth
# Samples per pixel, and the bit depths PNG allows, by colour type (PNG 11.2.2).
_CHANNELS: Final = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS: Final = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


class BrokenPixelData(ValueError):
    """The IDAT data is not exactly the image the IHDR declares; the message says how."""


@dataclass(frozen=True)
class _Layout:
    """Where the filter bytes are: one at the start of every row of ``row_bytes``."""

    row_bytes: int
    raw_bytes: int


def check_pixel_data(fp: BinaryIO) -> bool:
    """Inflate every IDAT byte of the PNG ``fp`` and check it is exactly the declared image.

    Run it after ``verify_png_chunks`` (``idat_crcs=False`` will do: the structure and the other
    chunks' CRCs up to IEND); it checks the IDAT chunks' CRCs itself.
    Returns True when checked, False for a PNG left to a full decode (see the module docstring).

    Raises:
        BrokenPixelData: the data does not inflate, ends early, is too long or too short,
            has a bad filter byte, or its IDAT chunks are not one run.
        OSError: the file cannot be read.
    """
    fp.seek(PNG_SIGNATURE_BYTES)
    layout = _layout(_read_ihdr(fp))
    if layout is None:
        return False
    inflater = _Inflater(layout)
    idat_runs = 0
    previous = b""
    while (chunk := _next_chunk(fp)) is not None:
        chunk_type, length = chunk
        if chunk_type == b"acTL" and not idat_runs:
            return False  # APNG: the frames after the default image are fdAT chunks
        if chunk_type == b"IDAT":
            idat_runs += previous != b"IDAT"
            if idat_runs > 1:
                raise BrokenPixelData("has IDAT chunks that are not one run (PNG 5.6)")
            _feed(fp, length, inflater)
        else:
            fp.seek(length + _CRC_BYTES, 1)
        previous = chunk_type
    inflater.finish()
    return True


def _read_ihdr(fp: BinaryIO) -> tuple[int, ...] | None:
    chunk = _next_chunk(fp)
    if chunk != (b"IHDR", _IHDR.size):
        return None
    fields = _IHDR.unpack(fp.read(_IHDR.size))
    fp.seek(_CRC_BYTES, 1)
    return fields


def _layout(ihdr: tuple[int, ...] | None) -> _Layout | None:
    """The raw layout of a non-interlaced image, or None for one left to Pillow."""
    if ihdr is None:
        return None
    width, height, bit_depth, colour_type, _, _, interlace = ihdr
    if interlace != 0 or not width or not height or bit_depth not in _DEPTHS.get(colour_type, ()):
        return None
    row_bytes = 1 + (width * _CHANNELS[colour_type] * bit_depth + 7) // 8
    return _Layout(row_bytes=row_bytes, raw_bytes=height * row_bytes)


def _next_chunk(fp: BinaryIO) -> tuple[bytes, int] | None:
    """The next chunk's (type, data length), or None at IEND (``verify_png_chunks`` saw it)."""
    head = fp.read(_CHUNK_HEAD.size)
    if len(head) < _CHUNK_HEAD.size:
        raise BrokenPixelData("ends before its IEND chunk")
    length, chunk_type = _CHUNK_HEAD.unpack(head)
    return None if chunk_type == b"IEND" else (chunk_type, length)


def _feed(fp: BinaryIO, length: int, inflater: _Inflater) -> None:
    """Inflate one IDAT chunk's ``length`` bytes of data, then check its CRC."""
    crc: int = _inflate.crc32(b"IDAT")
    while length > 0:
        data = fp.read(min(length, PIECE_BYTES))
        if not data:
            raise BrokenPixelData("ends inside an IDAT chunk")
        length -= len(data)
        crc = _inflate.crc32(data, crc)
        inflater.feed(data)
    stored = fp.read(_CRC_BYTES)
    if len(stored) < _CRC_BYTES:
        raise BrokenPixelData("ends inside an IDAT chunk")
    if int.from_bytes(stored, "big") != crc:
        raise BrokenPixelData("has an IDAT chunk whose CRC does not match its data "
                              "(damaged in transit?)")


class _Inflater:
    """Inflates in bounded pieces, counting the bytes and checking each row's filter byte."""

    def __init__(self, layout: _Layout) -> None:
        self._layout = layout
        self._zlib = _inflate.decompressobj()
        self._inflated = 0

    def feed(self, data: bytes) -> None:
        while True:
            if self._zlib.eof:
                if data:
                    raise BrokenPixelData(f"has {len(data)} bytes after its compressed image data")
                return
            try:
                piece = self._zlib.decompress(data, PIECE_BYTES)
            except _INFLATE_ERRORS as exc:
                raise BrokenPixelData(f"has damaged compressed image data ({exc})") from exc
            self._check(piece)
            data = self._zlib.unconsumed_tail or self._zlib.unused_data
            if not data and len(piece) < PIECE_BYTES:
                return  # all input taken, no output held back (ISA-L takes the input eagerly
                # and may hold inflated bytes back when a piece is full: asked for with b"")

    def finish(self) -> None:
        expected = self._layout.raw_bytes
        if not self._zlib.eof:
            raise BrokenPixelData(f"has compressed image data that stops after {self._inflated} "
                                  f"of its {expected} bytes (cut short?)")
        if self._inflated != expected:
            raise BrokenPixelData(f"has image data of {self._inflated} bytes; its header "
                                  f"declares {expected}")

    def _check(self, piece: bytes) -> None:
        start = self._inflated
        self._inflated += len(piece)
        if self._inflated > self._layout.raw_bytes:
            raise BrokenPixelData(f"has more image data than the {self._layout.raw_bytes} bytes "
                                  "its header declares")
        row_bytes = self._layout.row_bytes
        filters = piece[-start % row_bytes::row_bytes]
        if filters and max(filters) > _MAX_FILTER:
            bad = next(i for i, value in enumerate(filters) if value > _MAX_FILTER)
            row = (start + -start % row_bytes) // row_bytes + bad
            raise BrokenPixelData(f"has an unknown filter type {filters[bad]} on row {row}")
