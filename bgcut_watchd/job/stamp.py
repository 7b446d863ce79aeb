"""Writing the studio's metadata into a downloaded output without re-encoding its pixels.

The container is rewritten around the untouched compressed data, streamed in 1 MiB pieces (an
output may be tens of megabytes; eight workers must not hold them in memory):

* JPEG: an APP1 ``Exif`` and an APP1 XMP segment right after SOI (and a JFIF APP0); any such
  segments the output had are dropped; every other segment and the entropy-coded data follow
  unchanged.
* PNG: an ``eXIf`` and an ``iTXt`` ``XML:com.adobe.xmp`` chunk before the first ``IDAT``
  (replacing any); every other chunk unchanged.
* WebP: ``EXIF`` and ``XMP `` chunks at the end, announced in a ``VP8X`` header (added, with the
  canvas size read from the bitstream's header, when the output is a simple WebP).
* AVIF: left as it is. Its metadata are items of the ``meta`` box whose ``iloc`` offsets point
  into the file: adding one means rewriting every offset, which is a re-mux, not a stamp.

``stamp_file`` rewrites into a temporary beside the file and renames it over; a crash leaves the
old file or the new one. It raises ValueError for a container it cannot parse (the caller keeps
the output as it is) and OSError for the disk.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Final

from bgcut_watchd.intake.sniff import format_of
from bgcut_watchd.job.metadata import StudioMetadata, exif_block, xmp_packet
from bgcut_watchd.job.naming import stamping_path_for

_CHUNK_BYTES: Final = 1 << 20
_EXIF_ID: Final = b"Exif\x00\x00"
_XMP_ID: Final = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_KEYWORD: Final = b"XML:com.adobe.xmp"
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_VP8X_EXIF, _VP8X_XMP, _VP8X_ALPHA = 0x08, 0x04, 0x10
STAMPED_FORMATS: Final = ("jpeg", "png", "webp")


def stamp_file(path: Path, meta: StudioMetadata) -> bool:
    """Write ``meta`` into the image at ``path``; False (untouched) for a format that cannot
    carry it this way (AVIF). Raises ValueError for a malformed container, OSError."""
    with path.open("rb") as source:
        kind = format_of(source.read(32))
        if kind not in STAMPED_FORMATS:
            return False
        temp = stamping_path_for(path)
        try:
            with temp.open("wb") as target:
                source.seek(0)
                _WRITERS[kind](source, target, meta)
            temp.replace(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    return True


def _copy(source: BinaryIO, target: BinaryIO, length: int | None = None) -> None:
    """Copy ``length`` bytes (or to the end) in pieces. Raises ValueError when they run out."""
    left = length
    while left is None or left > 0:
        piece = source.read(_CHUNK_BYTES if left is None else min(left, _CHUNK_BYTES))
        if not piece:
            if left is not None:
                raise ValueError("the file ends inside a chunk")
            return
        target.write(piece)
        if left is not None:
            left -= len(piece)


def _exact(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise ValueError("the file ends early")
    return data


# -- JPEG ----------------------------------------------------------------------------------------

def _jpeg(source: BinaryIO, target: BinaryIO, meta: StudioMetadata) -> None:
    if _exact(source, 2) != b"\xff\xd8":
        raise ValueError("not a JPEG")
    segments: list[bytes] = []
    while True:
        marker = _exact(source, 2)
        if marker[0] != 0xFF or marker[1] == 0xDA or not 0xE0 <= marker[1] <= 0xFE:
            break  # the first segment that is not APPn/COM: tables, frame, scan
        (length,) = struct.unpack(">H", _exact(source, 2))
        body = _exact(source, length - 2)
        if marker[1] == 0xE1 and body.startswith((_EXIF_ID, _XMP_ID)):
            continue  # replaced by ours
        segments.append(marker + struct.pack(">H", length) + body)
    leading = [s for s in segments if s[:2] == b"\xff\xe0"][:1]  # JFIF stays first
    ours = [_app1(_EXIF_ID + exif_block(meta)), _app1(_XMP_ID + xmp_packet(meta))]
    target.write(b"\xff\xd8" + b"".join(leading + ours + [s for s in segments
                                                        if s not in leading]) + marker)
    _copy(source, target)


def _app1(payload: bytes) -> bytes:
    if len(payload) > 0xFFFF - 2:
        raise ValueError("metadata too large for one JPEG segment")
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


# -- PNG -----------------------------------------------------------------------------------------

def _png(source: BinaryIO, target: BinaryIO, meta: StudioMetadata) -> None:
    if _exact(source, 8) != _PNG_SIGNATURE:
        raise ValueError("not a PNG")
    target.write(_PNG_SIGNATURE)
    written = False
    while True:
        length, kind = struct.unpack(">I4s", _exact(source, 8))
        if kind == b"IDAT" and not written:
            xmp = _XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp_packet(meta)
            target.write(_png_chunk(b"eXIf", exif_block(meta)) + _png_chunk(b"iTXt", xmp))
            written = True
        if kind == b"eXIf" or (kind == b"iTXt" and _starts_with_keyword(source, length)):
            source.seek(length + 4, os.SEEK_CUR)
            continue
        target.write(struct.pack(">I4s", length, kind))
        _copy(source, target, length + 4)  # data and CRC, unchanged
        if kind == b"IEND":
            return


def _starts_with_keyword(source: BinaryIO, length: int) -> bool:
    here = source.tell()
    head = source.read(min(length, len(_XMP_KEYWORD) + 1))
    source.seek(here)
    return head == _XMP_KEYWORD + b"\x00"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


# -- WebP ----------------------------------------------------------------------------------------

def _webp(source: BinaryIO, target: BinaryIO, meta: StudioMetadata) -> None:
    header = _exact(source, 12)
    if header[:4] != b"RIFF" or header[8:] != b"WEBP":
        raise ValueError("not a WebP")
    chunks = _riff_chunks(source, struct.unpack("<I", header[4:8])[0] + 8)
    kept = [c for c in chunks if c[0] not in (b"EXIF", b"XMP ", b"VP8X")]
    ours = [_riff_chunk(b"EXIF", exif_block(meta)), _riff_chunk(b"XMP ", xmp_packet(meta))]
    vp8x = _riff_chunk(b"VP8X", _vp8x_payload(source, chunks))
    body_bytes = 4 + len(vp8x) + sum(8 + size + size % 2 for _, _, size in kept) \
        + sum(len(c) for c in ours)
    target.write(b"RIFF" + struct.pack("<I", body_bytes) + b"WEBP" + vp8x)
    for kind, offset, size in kept:
        source.seek(offset)
        target.write(kind + struct.pack("<I", size))
        _copy(source, target, size + size % 2)
    target.write(b"".join(ours))


def _riff_chunks(source: BinaryIO, end: int) -> list[tuple[bytes, int, int]]:
    """(fourcc, offset of its data, data size) of every chunk up to ``end``."""
    chunks: list[tuple[bytes, int, int]] = []
    offset = 12
    while offset + 8 <= end:
        source.seek(offset)
        kind, size = struct.unpack("<4sI", _exact(source, 8))
        chunks.append((kind, offset + 8, size))
        offset += 8 + size + size % 2
    if not chunks:
        raise ValueError("a WebP without chunks")
    return chunks


def _vp8x_payload(source: BinaryIO, chunks: list[tuple[bytes, int, int]]) -> bytes:
    """The VP8X chunk announcing EXIF and XMP: the output's own one with the two flags set, or
    a new one with the canvas size of its only bitstream."""
    kind, offset, _ = chunks[0]
    source.seek(offset)
    if kind == b"VP8X":
        payload = bytearray(_exact(source, 10))
        payload[0] |= _VP8X_EXIF | _VP8X_XMP
        return bytes(payload)
    head = _exact(source, 10)
    if kind == b"VP8L":
        bits = int.from_bytes(head[1:5], "little")
        width, height = (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
        flags = _VP8X_ALPHA if bits >> 28 & 1 else 0
    elif kind == b"VP8 ":
        width, height = (struct.unpack("<H", head[6:8])[0] & 0x3FFF,
                         struct.unpack("<H", head[8:10])[0] & 0x3FFF)
        flags = 0
    else:
        raise ValueError(f"a WebP starting with an unknown chunk {kind!r}")
    flags |= _VP8X_EXIF | _VP8X_XMP
    return bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


_WRITERS = {"jpeg": _jpeg, "png": _png, "webp": _webp}
