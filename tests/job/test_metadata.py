"""The studio's metadata (job.metadata) and its stamping into outputs (job.stamp): read from
EXIF, XMP or IPTC, written as EXIF and XMP into JPEG, PNG and WebP without touching the
compressed pixels; AVIF left as it is."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.job.metadata import StudioMetadata, metadata_of, read_metadata, xmp_packet
from bgcut_watchd.job.stamp import stamp_file
from tests.devices.corpus import STUDIO_META, exif_bytes, scene

META = StudioMetadata(copyright="© 2026 Studio Nord", artist="Jane Doe",
                      captured="2026:03:14 09:26:53", offset="+01:00",
                      description="Red shoe & <laces>")


def _iptc(records: dict[int, bytes]) -> bytes:
    """A Photoshop APP13 segment holding an IPTC block (resource 0x0404)."""
    iptc = b"".join(b"\x1c\x02" + bytes([n]) + struct.pack(">H", len(v)) + v
                    for n, v in records.items())
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    resource += b"\x00" * (len(iptc) % 2)
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def test_exif_is_read_first(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    scene((1, 2, 3)).save(path, "JPEG", exif=exif_bytes(6, STUDIO_META))
    assert read_metadata(path) == StudioMetadata(**STUDIO_META)


def test_xmp_fills_what_exif_lacks(tmp_path: Path) -> None:
    path = tmp_path / "b.jpg"
    scene((1, 2, 3)).save(path, "JPEG", exif=exif_bytes(1, {"artist": "From EXIF"}),
                          xmp=xmp_packet(META))
    found = read_metadata(path)
    assert (found.artist, found.copyright, found.captured, found.offset) == (
        "From EXIF", META.copyright, META.captured, "+01:00")


def test_iptc_is_read_last(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    scene((1, 2, 3)).save(buffer, "JPEG")
    data = buffer.getvalue()
    iptc = _iptc({116: "© Agentur".encode(), 80: b"Max", 55: b"20260314", 60: b"092653+0100",
                  120: b"Caption"})
    (tmp_path / "c.jpg").write_bytes(data[:2] + iptc + data[2:])
    assert read_metadata(tmp_path / "c.jpg") == StudioMetadata(
        copyright="© Agentur", artist="Max", captured="2026:03:14 09:26:53",
        description="Caption")


def test_nothing_to_read_is_empty_and_false(tmp_path: Path) -> None:
    path = tmp_path / "d.png"
    scene((1, 2, 3)).save(path, "PNG")
    assert not read_metadata(path)
    assert not read_metadata(tmp_path / "missing.png")


@pytest.mark.parametrize(("fmt", "options"), [
    ("JPEG", {"quality": 90}), ("PNG", {}), ("WEBP", {"quality": 80}),
    ("WEBP", {"lossless": True}),
], ids=["jpeg", "png", "webp-lossy", "webp-lossless"])
def test_stamping_keeps_the_compressed_pixels_and_adds_exif_and_xmp(
    tmp_path: Path, fmt: str, options: dict[str, object],
) -> None:
    path = tmp_path / f"out.{fmt.lower()}"
    image = scene((200, 40, 60), "RGBA" if fmt == "PNG" else "RGB")
    image.save(path, fmt, **options)
    before = path.read_bytes()
    with Image.open(path) as decoded:
        pixels = decoded.convert("RGBA").tobytes()

    assert stamp_file(path, META)

    after = path.read_bytes()
    with Image.open(path) as stamped:
        assert stamped.convert("RGBA").tobytes() == pixels
        assert metadata_of(stamped) == META
    assert _payload(before, fmt) in after  # the compressed data itself, untouched


def _payload(data: bytes, fmt: str) -> bytes:
    """The compressed image data of a file: JPEG from SOS on, PNG's IDAT, WebP's bitstream."""
    if fmt == "JPEG":
        return data[data.index(b"\xff\xda"):]
    if fmt == "PNG":
        start = data.index(b"IDAT") - 4
        return data[start:data.index(b"IEND") - 4]
    start = max(data.find(b"VP8 "), data.find(b"VP8L"))
    return data[start:]


def test_avif_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "out.avif"
    scene((200, 40, 60)).save(path, "AVIF")
    before = path.read_bytes()
    assert not stamp_file(path, META)
    assert path.read_bytes() == before


def test_stamping_twice_keeps_one_copy(tmp_path: Path) -> None:
    path = tmp_path / "out.jpg"
    scene((200, 40, 60)).save(path, "JPEG")
    stamp_file(path, META)
    once = path.read_bytes()
    stamp_file(path, META)
    assert path.read_bytes() == once


def test_a_truncated_output_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    scene((200, 40, 60)).save(path, "PNG")
    path.write_bytes(path.read_bytes()[:-30])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="ends"):
        stamp_file(path, META)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
