"""The device corpus: what scanners, cameras and phones drop, generated at test time.

Every picture is the same upright scene, ``SIZE`` wide (landscape, so a quarter turn shows in
the dimensions): a light background, a black ``MARKER`` square in the top-left corner and a flat
colour ``PATCH`` in the middle whose sRGB value is known. Each file stores that scene as its
device would: turned and flagged with an EXIF orientation, in Adobe RGB or Display P3 with the
profile embedded, as CMYK (plain, with a press profile, or YCCK), 16 bits per sample, several
pages, HEIC... ``DeviceFile`` says what the daemon's outputs must show: the patch's expected
colour as Lab (the tests allow ΔE 3), the metadata promised, the output stems (pages), and
whether the upload must be the file itself, byte for byte.

The HEIC files are encoded with ``pillow-heif`` (a test-only dependency: the daemon's pi-heif
only decodes), without registering it as a Pillow plugin, so the test process decodes with
the same pi-heif as the daemon. ICC profiles come from ``tests.devices.icc``; the 16-bit TIFF
and PNG and the YCCK JPEG are written byte by byte here (Pillow writes none of them).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from PIL import Image, ImageDraw

from tests.devices.colour import (
    ADOBE_RGB_GAMMA,
    ADOBE_RGB_PRIMARIES,
    DISPLAY_P3_PRIMARIES,
    SRGB_PRIMARIES,
    Vector,
    gamma_decode,
    naive_cmyk_to_srgb8,
    rgb8_to_xyz50,
    srgb_decode,
    xyz_to_lab,
)
from tests.devices.icc import adobe_rgb_profile, cmyk_profile, display_p3_profile, press_lab

SIZE: Final = (96, 64)
BACKGROUND: Final = (236, 236, 236)
MARKER_BOX: Final = (0, 0, 14, 14)  # the top-left corner, black
PATCH_BOX: Final = (34, 18, 62, 46)
SRGB_PATCH: Final = (200, 40, 60)
ADOBE_PATCH: Final = (140, 240, 100)  # in Adobe RGB: (44, 240, 87) in sRGB, ΔE 21 if misread
P3_PATCH: Final = (220, 60, 50)  # in Display P3: (239, 35, 36) in sRGB, ΔE 15 if misread
CMYK_PATCH: Final = (51, 153, 128, 0)
GREY_PATCH: Final = 90
PAGE_PATCHES: Final = ((200, 40, 60), (40, 90, 200), (30, 150, 60))
STUDIO_META: Final = {"copyright": "© 2026 Studio Nord", "artist": "Jane Doe",
                      "captured": "2026:03:14 09:26:53", "description": "Red shoe, side view"}
SCANNER_META: Final = {"copyright": "(c) 2026 Archive Nord", "artist": "Scan desk 2",
                       "description": "Box 12, letters"}

# orientation -> what turns the upright scene into the stored one (the inverse of the
# transform a viewer applies for that orientation)
_STORED: Final[dict[int, Image.Transpose | None]] = {
    1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class DeviceFile:
    """One file of the corpus and what its outputs must show."""

    name: str
    patch_lab: Vector
    stems: tuple[str, ...] = ()
    byte_for_byte: bool = False
    meta: dict[str, str] = field(default_factory=dict)
    page_labs: tuple[Vector, ...] = ()

    def output_stems(self) -> tuple[str, ...]:
        return self.stems or (self.name.rsplit(".", 1)[0],)


def srgb_lab(rgb: tuple[int, int, int]) -> Vector:
    return xyz_to_lab(rgb8_to_xyz50(rgb, SRGB_PRIMARIES, srgb_decode))


def scene(patch: Any, mode: str = "RGB", background: Any = BACKGROUND,
          marker: Any = (0, 0, 0)) -> Image.Image:
    """The upright scene in ``mode`` with the patch in ``patch``'s values."""
    image = Image.new(mode, SIZE, background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((MARKER_BOX[0], MARKER_BOX[1], MARKER_BOX[2] - 1, MARKER_BOX[3] - 1),
                   fill=marker)
    draw.rectangle((PATCH_BOX[0], PATCH_BOX[1], PATCH_BOX[2] - 1, PATCH_BOX[3] - 1), fill=patch)
    return image


def stored(image: Image.Image, orientation: int) -> Image.Image:
    method = _STORED[orientation]
    return image if method is None else image.transpose(method)


def exif_bytes(orientation: int = 1, meta: dict[str, str] | None = None) -> bytes:
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    meta = meta or {}
    for tag, key in ((0x8298, "copyright"), (0x013B, "artist"), (0x010E, "description")):
        if key in meta:
            exif[tag] = meta[key].encode("utf-8")
    if "captured" in meta:
        exif.get_ifd(0x8769)[0x9003] = meta["captured"]
    return exif.tobytes()


def _save(folder: Path, name: str, image: Image.Image, fmt: str, **options: Any) -> Path:
    path = folder / name
    image.save(path, fmt, **options)
    return path


# -- the makers: (folder) -> DeviceFile ---------------------------------------------------------

def jpeg_oriented(orientation: int) -> Callable[[Path], DeviceFile]:
    def make(folder: Path) -> DeviceFile:
        name = f"phone-o{orientation}.jpg"
        _save(folder, name, stored(scene(SRGB_PATCH), orientation), "JPEG", quality=95,
              subsampling=0, exif=exif_bytes(orientation))
        return DeviceFile(name, srgb_lab(SRGB_PATCH), byte_for_byte=orientation == 1)
    return make


def phone_jpeg_with_metadata(folder: Path) -> DeviceFile:
    _save(folder, "IMG_0042.jpg", stored(scene(SRGB_PATCH), 6), "JPEG", quality=95,
          subsampling=0, exif=exif_bytes(6, STUDIO_META))
    return DeviceFile("IMG_0042.jpg", srgb_lab(SRGB_PATCH), meta=STUDIO_META)


def other_oriented(fmt: str, ext: str, orientation: int, **options: Any,
                   ) -> Callable[[Path], DeviceFile]:
    def make(folder: Path) -> DeviceFile:
        name = f"oriented-o{orientation}.{ext}"
        _save(folder, name, stored(scene(SRGB_PATCH), orientation), fmt,
              exif=exif_bytes(orientation), **options)
        return DeviceFile(name, srgb_lab(SRGB_PATCH))
    return make


def adobe_rgb_jpeg(folder: Path) -> DeviceFile:
    _save(folder, "camera-adobe.jpg", scene(ADOBE_PATCH), "JPEG", quality=95, subsampling=0,
          icc_profile=adobe_rgb_profile())
    decode = gamma_decode(ADOBE_RGB_GAMMA)
    return DeviceFile("camera-adobe.jpg",
                      xyz_to_lab(rgb8_to_xyz50(ADOBE_PATCH, ADOBE_RGB_PRIMARIES, decode)))


def display_p3_png(folder: Path) -> DeviceFile:
    _save(folder, "phone-p3.png", scene(P3_PATCH), "PNG", icc_profile=display_p3_profile())
    return DeviceFile("phone-p3.png", _p3_lab())


def _p3_lab() -> Vector:
    return xyz_to_lab(rgb8_to_xyz50(P3_PATCH, DISPLAY_P3_PRIMARIES, srgb_decode))


def heic_phone(folder: Path) -> DeviceFile:
    """An iPhone-like HEIC: Display P3, turned a quarter (irot), the studio's metadata."""
    import pillow_heif  # test-only: the encoder the daemon does not have

    image = stored(scene(P3_PATCH), 6)
    heif = pillow_heif.from_pillow(image)
    heif.save(folder / "IMG_1234.heic", quality=95, chroma=444,
              exif=exif_bytes(6, STUDIO_META), icc_profile=display_p3_profile())
    return DeviceFile("IMG_1234.heic", _p3_lab(), meta=STUDIO_META)


def heic_nclx(name: str, primaries: int, transfer: int, patch: tuple[int, int, int],
              patch_lab: Vector) -> Callable[[Path], DeviceFile]:
    """A HEIC whose colours are declared only as ``nclx`` (H.273 codes, no ICC profile), as
    many Android phones and converters write them: Display P3 is primaries 12, transfer 13."""
    def make(folder: Path) -> DeviceFile:
        import pillow_heif  # test-only: the encoder the daemon does not have

        heif = pillow_heif.from_pillow(scene(patch))
        heif.save(folder / name, quality=95, chroma=444, color_primaries=primaries,
                  transfer_characteristics=transfer, matrix_coefficients=6, full_range_flag=1)
        return DeviceFile(name, patch_lab)
    return make


heic_nclx_p3: Final = heic_nclx("IMG_5678.heic", 12, 13, P3_PATCH, _p3_lab())
heic_nclx_srgb: Final = heic_nclx("IMG_5679.heic", 1, 13, SRGB_PATCH, srgb_lab(SRGB_PATCH))


def cmyk_jpeg(folder: Path) -> DeviceFile:
    _save(folder, "press.jpg", scene(CMYK_PATCH, "CMYK", (0, 0, 0, 20), (0, 0, 0, 255)),
          "JPEG", quality=95)
    return DeviceFile("press.jpg", srgb_lab(naive_cmyk_to_srgb8(CMYK_PATCH)))


def cmyk_jpeg_with_press_profile(folder: Path) -> DeviceFile:
    _save(folder, "press-icc.jpg", scene(CMYK_PATCH, "CMYK", (0, 0, 0, 20), (0, 0, 0, 255)),
          "JPEG", quality=95, icc_profile=cmyk_profile())
    return DeviceFile("press-icc.jpg", press_lab([v / 255 for v in CMYK_PATCH]))


def ycck_jpeg(folder: Path) -> DeviceFile:
    """A YCCK JPEG (Adobe transform 2): the CMY inks stored as YCbCr, K apart."""
    cmyk = scene(CMYK_PATCH, "CMYK", (0, 0, 0, 20), (0, 0, 0, 255))
    c, m, y, k = cmyk.split()
    ycc = Image.merge("RGB", (c, m, y)).convert("YCbCr")
    # Pillow stores CMYK inverted (Adobe); these values come out of libjpeg's YCCK decoder as
    # the inverted CMY of the scene, then Pillow inverts them back.
    raw = Image.merge("CMYK", [*(band.point(lambda v: 255 - v) for band in ycc.split()), k])
    buffer = io.BytesIO()
    raw.save(buffer, "JPEG", quality=95)
    data = bytearray(buffer.getvalue())
    adobe = data.find(b"Adobe")
    assert adobe > 0, "Pillow wrote no Adobe segment"
    data[adobe + 11] = 2  # transform: YCCK
    (folder / "ycck.jpg").write_bytes(bytes(data))
    return DeviceFile("ycck.jpg", srgb_lab(naive_cmyk_to_srgb8(CMYK_PATCH)))


def tiff(name: str, compression: str | None, mode: str = "RGB",
         **options: Any) -> Callable[[Path], DeviceFile]:
    def make(folder: Path) -> DeviceFile:
        if mode == "L":
            image, lab = scene(GREY_PATCH, "L", 236, 0), srgb_lab((GREY_PATCH,) * 3)
        elif mode == "CMYK":
            image = scene(CMYK_PATCH, "CMYK", (0, 0, 0, 20), (0, 0, 0, 255))
            lab = srgb_lab(naive_cmyk_to_srgb8(CMYK_PATCH))
        else:
            image, lab = scene(SRGB_PATCH), srgb_lab(SRGB_PATCH)
        _save(folder, name, image, "TIFF", compression=compression, **options)
        return DeviceFile(name, lab)
    return make


def tiff_oriented(folder: Path) -> DeviceFile:
    _save(folder, "scan-o6.tif", stored(scene(SRGB_PATCH), 6), "TIFF",
          compression="tiff_lzw", tiffinfo={274: 6})
    return DeviceFile("scan-o6.tif", srgb_lab(SRGB_PATCH))


def tiff_three_pages(folder: Path) -> DeviceFile:
    pages = [scene(patch) for patch in PAGE_PATCHES]
    info = {315: SCANNER_META["artist"], 33432: SCANNER_META["copyright"],
            270: SCANNER_META["description"]}
    pages[0].save(folder / "letters.tif", "TIFF", compression="tiff_adobe_deflate",
                  save_all=True, append_images=pages[1:], tiffinfo=info)
    labs = tuple(srgb_lab(patch) for patch in PAGE_PATCHES)
    return DeviceFile("letters.tif", labs[0], stems=("letters-p1", "letters-p2", "letters-p3"),
                      meta=SCANNER_META, page_labs=labs)


def _tiff_entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")


def tiff_16bit(name: str, mode: str = "RGB",
               compression: int = 1) -> Callable[[Path], DeviceFile]:
    """A 16-bit TIFF written field by field (Pillow writes none with 3 or 4 samples): RGB the
    way flatbed scanners write "48-bit colour", or CMYK the way prepress scans come;
    ``compression`` 1 (none) or 8 (ZIP)."""
    def make(folder: Path) -> DeviceFile:
        if mode == "CMYK":
            image = scene(CMYK_PATCH, "CMYK", (0, 0, 0, 20), (0, 0, 0, 255))
            spp, photometric = 4, 5
            lab = srgb_lab(naive_cmyk_to_srgb8(CMYK_PATCH))
        else:
            image, spp, photometric, lab = scene(SRGB_PATCH), 3, 2, srgb_lab(SRGB_PATCH)
        samples = [v * 257 for v in image.tobytes()]
        pixels = struct.pack(f"<{len(samples)}H", *samples)
        if compression == 8:
            pixels = zlib.compress(pixels)
        width, height = SIZE
        entries = [(256, 3, 1, struct.pack("<H", width)),
                   (257, 3, 1, struct.pack("<H", height)), (258, 3, spp, None),
                   (259, 3, 1, struct.pack("<H", compression)),
                   (262, 3, 1, struct.pack("<H", photometric)), (273, 4, 1, None),
                   (277, 3, 1, struct.pack("<H", spp)), (278, 3, 1, struct.pack("<H", height)),
                   (279, 4, 1, struct.pack("<I", len(pixels))),
                   (284, 3, 1, struct.pack("<H", 1))]
        ifd_bytes = 2 + 12 * len(entries) + 4
        bits_at = 8 + ifd_bytes
        data_at = bits_at + 2 * spp
        values = {258: struct.pack("<I", bits_at), 273: struct.pack("<I", data_at)}
        ifd = struct.pack("<H", len(entries)) + b"".join(
            _tiff_entry(tag, kind, count, value if value is not None else values[tag])
            for tag, kind, count, value in entries) + b"\x00" * 4
        data = (b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack(f"<{spp}H", *[16] * spp)
                + pixels)
        (folder / name).write_bytes(data)
        return DeviceFile(name, lab)
    return make


def tiff_16bit_grey(name: str, compression: str | None = None,
                    ) -> Callable[[Path], DeviceFile]:
    def make(folder: Path) -> DeviceFile:
        image = scene(GREY_PATCH * 257, "I;16", 236 * 257, 0)
        _save(folder, name, image, "TIFF", compression=compression)
        return DeviceFile(name, srgb_lab((GREY_PATCH,) * 3))
    return make


def heif_mif1(folder: Path) -> DeviceFile:
    """A ``.heif`` whose major brand is the generic ``mif1`` (some Android phones and
    cameras), not ``heic``."""
    import pillow_heif  # test-only: the encoder the daemon does not have

    buffer = io.BytesIO()
    pillow_heif.from_pillow(scene(SRGB_PATCH)).save(buffer, quality=95, chroma=444)
    data = bytearray(buffer.getvalue())
    assert data[4:8] == b"ftyp", "pillow-heif wrote no ftyp box first"
    data[8:12] = b"mif1"
    (folder / "camera.heif").write_bytes(bytes(data))
    return DeviceFile("camera.heif", srgb_lab(SRGB_PATCH))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(body, zlib.crc32(kind)))


def png_16bit_rgb(folder: Path) -> DeviceFile:
    image = scene(SRGB_PATCH)
    width, height = SIZE
    raw = image.tobytes()
    row_bytes = width * 3
    rows = b"".join(b"\x00" + struct.pack(f">{row_bytes}H", *(
        v * 257 for v in raw[y * row_bytes:(y + 1) * row_bytes])) for y in range(height))
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                    16, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b""))
    (folder / "deep.png").write_bytes(data)
    return DeviceFile("deep.png", srgb_lab(SRGB_PATCH))


def png_16bit_grey(folder: Path) -> DeviceFile:
    _save(folder, "deep-grey.png", scene(GREY_PATCH * 257, "I;16", 236 * 257, 0), "PNG")
    return DeviceFile("deep-grey.png", srgb_lab((GREY_PATCH,) * 3))


def bmp(folder: Path) -> DeviceFile:
    _save(folder, "document.bmp", scene(SRGB_PATCH), "BMP")
    return DeviceFile("document.bmp", srgb_lab(SRGB_PATCH))


def gif(folder: Path) -> DeviceFile:
    _save(folder, "still.gif", scene(SRGB_PATCH), "GIF")
    return DeviceFile("still.gif", srgb_lab(SRGB_PATCH))


def animated_gif(folder: Path) -> DeviceFile:
    frames = [scene(SRGB_PATCH), scene((40, 90, 200))]
    frames[0].save(folder / "animated.gif", "GIF", save_all=True, append_images=frames[1:],
                   duration=200, loop=0)
    return DeviceFile("animated.gif", srgb_lab(SRGB_PATCH))


def png_srgb(folder: Path) -> DeviceFile:
    _save(folder, "product.png", scene(SRGB_PATCH), "PNG")
    return DeviceFile("product.png", srgb_lab(SRGB_PATCH), byte_for_byte=True)


def accepted_as_is(name: str, fmt: str, **options: Any) -> Callable[[Path], DeviceFile]:
    """A file the API takes as it is (upright, sRGB, 8 bits): sent byte for byte."""
    def make(folder: Path) -> DeviceFile:
        _save(folder, name, scene(SRGB_PATCH), fmt, **options)
        return DeviceFile(name, srgb_lab(SRGB_PATCH), byte_for_byte=True)
    return make


DEVICE_MAKERS: Final[tuple[Callable[[Path], DeviceFile], ...]] = (
    *(jpeg_oriented(o) for o in range(1, 9)),
    phone_jpeg_with_metadata, png_srgb, accepted_as_is("product.webp", "WEBP", lossless=True),
    accepted_as_is("product.avif", "AVIF", quality=95),
    other_oriented("PNG", "png", 8), other_oriented("WEBP", "webp", 3, lossless=True),
    other_oriented("AVIF", "avif", 5, quality=95),
    adobe_rgb_jpeg, display_p3_png, heic_phone, heic_nclx_p3, heic_nclx_srgb, heif_mif1,
    cmyk_jpeg,
    cmyk_jpeg_with_press_profile,
    ycck_jpeg,
    tiff("scan-lzw.tif", "tiff_lzw"), tiff("scan-zip.tif", "tiff_adobe_deflate"),
    tiff("scan-jpeg.tif", "jpeg", quality=95), tiff("scan-grey.tif", "tiff_lzw", "L"),
    tiff("scan-cmyk.tif", "tiff_lzw", "CMYK"), tiff_oriented, tiff_three_pages,
    tiff_16bit("scan-48bit.tif"), tiff_16bit("scan-48bit-zip.tif", compression=8),
    tiff_16bit("prepress-cmyk16.tif", "CMYK"),
    tiff_16bit_grey("scan-grey16.tif"), tiff_16bit_grey("scan-grey16-zip.tif",
                                                        "tiff_adobe_deflate"),
    png_16bit_rgb, png_16bit_grey, bmp, gif, animated_gif,
)


def make_device_corpus(folder: Path) -> list[DeviceFile]:
    """Every file of the corpus in ``folder``."""
    return [make(folder) for make in DEVICE_MAKERS]


# -- camera RAW, by shape -----------------------------------------------------------------------

def make_dng_shaped(folder: Path, name: str = "IMG_0001.DNG") -> Path:
    """A TIFF whose first IFD carries DNGVersion: what makes a DNG a DNG to every reader."""
    path = folder / name
    scene(SRGB_PATCH).save(path, "TIFF", tiffinfo={50706: b"\x01\x04\x00\x00", 271: "Canon"})
    return path


def make_cr2_shaped(folder: Path, name: str = "IMG_0002.CR2") -> Path:
    """Canon CR2: a TIFF header, then ``CR`` and version 2 at byte 8."""
    path = folder / name
    path.write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00\x00\x00\x00\x00" + bytes(4096))
    return path


def make_cr3_shaped(folder: Path, name: str = "IMG_0003.CR3") -> Path:
    path = folder / name
    path.write_bytes(b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + bytes(4096))
    return path
