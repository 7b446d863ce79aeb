"""What a file really is, from its first bytes: the one place that knows file signatures.

Used by the local check (``job.validate``: which decoder to trust) and by the intake (camera
RAW is left in the inbox without being claimed, so it must be recognised cheaply, before a job
exists). Names never matter: ``IMG_0001.JPG`` holding a Canon CR2 is a CR2.

:func:`format_of` names the format from the first bytes: a lower-case name for one the daemon
decodes (the API's own four, ``ACCEPTED``, and those it converts first, ``CONVERTED``), a
display name for any other it recognises, None for no known signature.

:func:`camera_raw` names a camera RAW file (``Canon CR2``, ``Nikon NEF``...) or answers None.
Most RAW formats are TIFF inside (CR2, NEF, ARW, DNG, PEF...), so a TIFF signature alone says
nothing: a TIFF is RAW when Canon's ``CR`` marker follows its header, when its first IFD holds
a ``DNGVersion`` tag, or when one of its first IFDs (the chain and the ``SubIFDs``) describes
colour-filter-array or linear-raw pixels (Photometric 32803 or 34892), which no scanner writes.
The others have their own signatures (CR3, RAF, ORF, RW2, X3F, MRW). At most a few small reads
beyond the first bytes, bounded by ``_MAX_IFDS``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Final

ReadAt = Callable[[int, int], bytes]
"""``read_at(offset, size)``: up to ``size`` bytes of the file from ``offset``."""

SNIFF_BYTES: Final = 4096
ACCEPTED: Final = ("jpeg", "png", "webp", "avif")
"""What the API takes (api-v3.md): uploaded as they are when upright and sRGB."""
CONVERTED: Final = ("tiff", "bmp", "gif", "heif")
"""What scanners and phones write and the daemon converts before the upload."""
DISPLAY_NAMES: Final = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP", "avif": "AVIF",
                        "tiff": "TIFF", "bmp": "BMP", "gif": "GIF", "heif": "HEIC/HEIF"}

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# Leading bytes -> format: lower case = one we decode, otherwise a name for the refusal.
_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\xff\xd8\xff", "jpeg"), (_PNG_SIGNATURE, "png"),
    (b"GIF87a", "gif"), (b"GIF89a", "gif"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"),
    (b"II+\x00", "BigTIFF"), (b"MM\x00+", "BigTIFF"), (b"%PDF-", "PDF"), (b"%!PS", "PostScript"),
    (b"8BPS", "PSD"), (b"\x00\x00\x01\x00", "ICO"), (b"qoif", "QOI"), (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"PK\x03\x04", "ZIP"), (b"<?xml", "XML/SVG"),
    (b"<svg", "SVG"),
)
_HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1",
                                 b"msf1"})
# Camera RAW formats with a signature of their own (not TIFF inside, or TIFF with a new magic).
_RAW_SIGNATURES: Final[tuple[tuple[int, bytes, str], ...]] = (
    (0, b"FUJIFILMCCD-RAW", "Fujifilm RAF"), (0, b"IIRO", "Olympus ORF"),
    (0, b"IIRS", "Olympus ORF"), (0, b"MMOR", "Olympus ORF"), (0, b"IIU\x00", "Panasonic RW2"),
    (0, b"FOVb", "Sigma X3F"), (0, b"\x00MRM", "Minolta MRW"),
)
_TIFF_MAKES: Final = (("NIKON", "Nikon NEF"), ("SONY", "Sony ARW"), ("PENTAX", "Pentax PEF"),
                      ("SAMSUNG", "Samsung SRW"), ("CANON", "Canon RAW"),
                      ("HASSELBLAD", "Hasselblad 3FR"), ("LEICA", "Leica RAW"))
_TAG_MAKE, _TAG_PHOTOMETRIC, _TAG_SUBIFDS, _TAG_DNG_VERSION = 271, 262, 330, 50706
_RAW_PHOTOMETRICS: Final = frozenset({32803, 34892})  # colour filter array, linear raw
_MAX_IFDS: Final = 8
_MAX_IFD_ENTRIES: Final = 512


def format_of(head: bytes) -> str | None:
    """The format named by the first bytes; None when no known signature matches."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF":
        return "webp" if head[8:12] == b"WEBP" else f"RIFF {_ascii(head[8:12])}"
    if head[4:8] == b"ftyp":
        return _iso_media(head)
    if head[:2] == b"BM" and head[6:10] == b"\x00\x00\x00\x00":  # BMP's reserved bytes are 0
        return "bmp"
    return None


def _iso_media(head: bytes) -> str:
    """An ISO base media file: AVIF, HEIF/HEIC, Canon CR3 or some video, from its ftyp brands."""
    brands = _brands(head)
    if brands & {b"avif", b"avis"}:
        return "avif"
    if b"crx " in brands:
        return "Canon CR3"
    if brands & _HEIF_BRANDS:
        return "heif"
    return f"ISO media (brand {_ascii(head[8:12])})"


def _brands(head: bytes) -> set[bytes]:
    (box_bytes,) = struct.unpack(">I", head[:4])
    return {head[8:12]} | {head[i:i + 4] for i in range(16, min(box_bytes, len(head)) - 3, 4)}


def _ascii(raw: bytes) -> str:
    return raw.decode("ascii", errors="replace").strip()


def camera_raw(head: bytes, read_at: ReadAt | None = None) -> str | None:
    """The camera RAW format of a file starting with ``head`` (``"Canon CR2"``...), or None.

    ``read_at`` reads further when a TIFF's IFDs lie beyond ``head``; without it only ``head``
    is looked at. Raises nothing (an unreadable or malformed structure is "not RAW").
    """
    for offset, signature, name in _RAW_SIGNATURES:
        if head[offset:offset + len(signature)] == signature:
            return name
    if head[4:8] == b"ftyp" and b"crx " in _brands(head):
        return "Canon CR3"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        if head[8:10] == b"CR":
            return "Canon CR2"
        try:
            return _tiff_raw(head, read_at or _reader_of(head))
        except (struct.error, ValueError, OSError):
            return None
    return None


def sniff_camera_raw(path: Path) -> str | None:
    """:func:`camera_raw` of the file at ``path`` (never following a symlink, never blocking).

    Raises OSError when it cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        head = stream.read(SNIFF_BYTES)

        def read_at(offset: int, size: int) -> bytes:
            stream.seek(offset)
            return stream.read(size)

        return camera_raw(head, read_at)


def _reader_of(data: bytes) -> ReadAt:
    return lambda offset, size: data[offset:offset + size]


def _tiff_raw(head: bytes, read_at: ReadAt) -> str | None:
    """Walk the first IFDs of a TIFF for the marks of a camera RAW file."""
    order = "<" if head[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", head[4:8])
    pending, seen, make = [first], set[int](), ""
    while pending and len(seen) < _MAX_IFDS:
        offset = pending.pop(0)
        if offset == 0 or offset in seen:
            continue
        seen.add(offset)
        tags, next_ifd = _read_ifd(order, offset, read_at)
        if _TAG_DNG_VERSION in tags:
            return "Adobe DNG"
        make = make or _make(order, tags, read_at)
        if _photometric(order, tags) in _RAW_PHOTOMETRICS:
            return next((name for brand, name in _TIFF_MAKES if make.startswith(brand)),
                        "camera RAW (TIFF-based)")
        pending.extend(_sub_ifds(order, tags, read_at))
        pending.append(next_ifd)
    return None


_Entry = tuple[int, int, bytes]  # type, count, the 4 value bytes (or an offset to them)


def _read_ifd(order: str, offset: int, read_at: ReadAt) -> tuple[dict[int, _Entry], int]:
    (count,) = struct.unpack(order + "H", read_at(offset, 2))
    if count > _MAX_IFD_ENTRIES:
        raise ValueError("not a plausible IFD")
    raw = read_at(offset + 2, count * 12 + 4)
    tags: dict[int, _Entry] = {}
    for index in range(count):
        tag, kind, number = struct.unpack(order + "HHI", raw[index * 12:index * 12 + 8])
        tags[tag] = (kind, number, raw[index * 12 + 8:index * 12 + 12])
    (next_ifd,) = struct.unpack(order + "I", raw[count * 12:count * 12 + 4])
    return tags, next_ifd


def _photometric(order: str, tags: dict[int, _Entry]) -> int | None:
    entry = tags.get(_TAG_PHOTOMETRIC)
    if entry is None:
        return None
    kind, _, value = entry
    return int(struct.unpack(order + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0])


def _make(order: str, tags: dict[int, _Entry], read_at: ReadAt) -> str:
    entry = tags.get(_TAG_MAKE)
    if entry is None:
        return ""
    _, number, value = entry
    raw = value[:number] if number <= 4 else read_at(struct.unpack(order + "I", value)[0],
                                                     min(number, 64))
    return raw.split(b"\x00")[0].decode("ascii", "replace").strip().upper()


def _sub_ifds(order: str, tags: dict[int, _Entry], read_at: ReadAt) -> list[int]:
    entry = tags.get(_TAG_SUBIFDS)
    if entry is None:
        return []
    _, number, value = entry
    number = min(number, _MAX_IFDS)
    raw = value if number == 1 else read_at(struct.unpack(order + "I", value)[0], 4 * number)
    return list(struct.unpack(order + "I" * number, raw[:4 * number]))
