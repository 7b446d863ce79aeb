"""Verification of a downloaded output before it may be published (product.md, step 7).

An HTTP 200 proves nothing about its body: a maintenance page, a captive portal or a CDN error
arrives as ``200 text/html``, and a body cut short with a Content-Length that matches the cut
passes every HTTP-level check. So each output is checked against its variant before its ``.dl``
becomes a ``.part`` (and each copy reused for a duplicate before it is kept):

1. **format**, from the magic bytes (never the name or the Content-Type): the variant's
   ``png``/``jpeg``/``webp``/``avif``; a PNG's chunk CRCs are checked up to ``IEND``;
2. **size**, from the header, before a pixel is decoded: at most ``max_resolution`` pixels,
   and, unless the variant has ``autocrop``, the proportions of the input as the API sees it
   (upright: EXIF orientations 5 to 8 swap width and height);
3. **content**: every byte of the compressed image data is decoded and checked, without
   building the full-size pixels where that is not needed to decide:

   * **PNG** (``job.pngdata``): the IDAT data is inflated in 1 MiB pieces and must end exactly
     (zlib's end with a matching Adler-32, no byte after it), inflate to exactly the raw size the
     IHDR declares, and start every row with a filter type 0..4; the IDAT chunks are one run.
     With the CRCs above, every byte of the file is checked; what Pillow's decode adds (the
     unfiltering, the pixels) cannot fail on such data. Stricter than the full decode it
     replaces, which passed a stream that inflated short or long or had bytes after its end.
     Interlaced and animated PNGs keep Pillow's full decode.
   * **JPEG**: decoded at 1/8 scale (``decoding.decode_to_check``): libjpeg still decodes every
     Huffman-coded coefficient of every scan, so a cut, garbled or progressive-cut-short body
     fails exactly as in a full decode (tests/job/test_verify.py compares both verdicts on
     damaged files); only the inverse DCT and colour conversion shrink.
   * **WebP, AVIF**: decoded in full (their decoders offer no cheaper complete pass).

   Pillow's decodes run under the shared :class:`~bgcut_watchd.job.validate.PixelBudget`
   (the header's pixel count, also at 1/8 scale: a progressive JPEG buffers all its
   coefficients), so verifying never holds more pixels at once than the local check may.

   CPU, best of 5 (issue 14): a 4 MP RGBA cut-out PNG 196 -> 73 ms (a noise-heavy 7.7 MB one,
   mostly inflate: 120 -> 99 ms); a 12 MP JPEG output 72 -> 27 ms.

Rounding slack: a service scales with its own rounding (floor, nearest, even sizes for chroma
subsampling), so each side may be off by up to ``SLACK_PX`` (2) pixels: the size check is
``(width - 2) * (height - 2) <= max_resolution``, the proportion check
``|width * input_height - height * input_width| <= 2 * (input_width + input_height)``, which
is what a scale of the input by any factor, each side then rounded by at most 2 pixels, gives.
A distorted, rotated or wrong-variant output is off by far more.

A failure raises :class:`~bgcut_watchd.errors.BadOutputError` (the service's fault: fetch it
again); its detail names the variant and what is wrong, never image bytes beyond a few leading
ones. ``ImageFile.LOAD_TRUNCATED_IMAGES`` switched on refuses to run (RuntimeError), as in
``validate``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final, TypeVar

from PIL import Image, ImageFile

from bgcut_watchd.config.model import Variant
from bgcut_watchd.errors import BadOutputError, LocalInputError
from bgcut_watchd.intake.sniff import format_of as sniff_format
from bgcut_watchd.job.decoding import decode_to_check
from bgcut_watchd.job.pngdata import BrokenPixelData, check_pixel_data
from bgcut_watchd.job.validate import (
    FORMAT_OF_NAME,
    PILLOW_FORMAT,
    ImageFormat,
    PixelBudget,
    verify_png_chunks,
)

_T = TypeVar("_T")

SLACK_PX: Final = 2
ENDPOINT: Final = "download"
_SWAPPING_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})  # transposed, rotated 90 or 270
_EXIF_ORIENTATION: Final = 0x0112

SNIFF_BYTES = 4096  # enough for every signature and an ISO media ftyp box


def verify_output(path: Path, variant: Variant, input_size: tuple[int, int] | None,
                  budget: PixelBudget | None = None) -> tuple[int, int]:
    """Check the downloaded ``path`` against ``variant``; return its (width, height).

    ``input_size`` is the input's upright (width, height) for the proportion check, or None
    when unknown (no proportion check then).

    Raises:
        BadOutputError: not an image, another format, too many pixels, wrong proportions,
            or it does not decode fully.
        OSError: the file cannot be opened or read (the local disk).
        RuntimeError: ``ImageFile.LOAD_TRUNCATED_IMAGES`` was switched on in this process.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on: cut outputs would pass")
    expected = FORMAT_OF_NAME[variant.format]
    with path.open("rb") as fp:
        _check_format(fp.read(SNIFF_BYTES), expected, variant)
        size_bytes = os.fstat(fp.fileno()).st_size
        if expected == "png":  # the IDAT CRCs: below, with the data, or before a full decode
            _check_png_chunks(fp, size_bytes, variant, idat_crcs=False)
        fp.seek(0)
        image = _pillow_step(variant, lambda: Image.open(fp, formats=[PILLOW_FORMAT[expected]]))
        with image:
            width, height = image.size
            _check_size(width, height, variant, input_size)
            if expected == "png":
                if _check_png_data(fp, variant):
                    return width, height
                _check_png_chunks(fp, size_bytes, variant)
            with budget.reserve(width * height) if budget else contextlib.nullcontext():
                _pillow_step(variant, lambda: decode_to_check(image))
    return width, height


def upright_size(path: Path) -> tuple[int, int] | None:
    """The (width, height) of an input as the API renders it: EXIF orientation applied.

    Reads the header only (JPEG, PNG with its eXIf before the pixels, WebP, AVIF). Returns
    None when the file cannot be read or parsed: the proportion check is then skipped, the
    others still hold. Raises nothing.
    """
    try:
        with Image.open(path, formats=list(PILLOW_FORMAT.values())) as image:
            width, height = image.size
            raw_exif = image.info.get("exif")
            orientation = _orientation(raw_exif) if isinstance(raw_exif, bytes) else None
    except Exception:  # any failure to parse means "unknown", never a crash
        return None
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def _orientation(raw_exif: bytes) -> int | None:
    exif = Image.Exif()
    exif.load(raw_exif)
    value = exif.get(_EXIF_ORIENTATION)
    return value if isinstance(value, int) else None


def _bad(variant: Variant, problem: str) -> BadOutputError:
    wanted = FORMAT_OF_NAME[variant.format].upper()
    return BadOutputError(ENDPOINT, f"output of variant {variant.name!r} ({wanted}) {problem}; "
                                    "not published")


def _check_format(head: bytes, expected: ImageFormat, variant: Variant) -> None:
    found = sniff_format(head)
    if found == expected:
        return
    if found is not None:
        raise _bad(variant, f"is {found.upper()} data")
    if head.lstrip()[:1] == b"<":
        raise _bad(variant, f"is an HTML or XML page (starts with {head.lstrip()[:24]!r}): a "
                            "maintenance page, captive portal or proxy error answered 200?")
    raise _bad(variant, f"is not an image (starts with {head[:8].hex(' ') or 'nothing'})")


def _check_png_chunks(fp: BinaryIO, size_bytes: int, variant: Variant, *,
                      idat_crcs: bool = True) -> None:
    try:
        verify_png_chunks(fp, size_bytes, idat_crcs=idat_crcs)
    except LocalInputError as exc:
        raise _bad(variant, f"is {exc.detail}") from exc


def _check_png_data(fp: BinaryIO, variant: Variant) -> bool:
    """Every IDAT byte inflated and checked, CRCs included (True), or a PNG left to a full
    decode (False)."""
    try:
        return check_pixel_data(fp)
    except BrokenPixelData as exc:
        raise _bad(variant, str(exc)) from exc


def _check_size(width: int, height: int, variant: Variant,
                input_size: tuple[int, int] | None) -> None:
    """Pixel count and proportions from the header, before any pixel is decoded."""
    if (width - SLACK_PX) * (height - SLACK_PX) > variant.max_resolution:
        raise _bad(variant, f"is {width}x{height} = {width * height} pixels, over its "
                            f"max_resolution of {variant.max_resolution}")
    if variant.autocrop or input_size is None:
        return
    input_width, input_height = input_size
    skew = abs(width * input_height - height * input_width)
    if skew > SLACK_PX * (input_width + input_height):
        raise _bad(variant, f"is {width}x{height}, not in the proportions of the "
                            f"{input_width}x{input_height} input")


def _pillow_step(variant: Variant, step: Callable[[], _T]) -> _T:
    """Run one Pillow call on downloaded bytes; a failure of it is the service's fault.

    Pillow raises many types on malformed data (OSError, SyntaxError, ValueError, EOFError,
    struct.error...), so everything but MemoryError is caught: the try holds this single call.
    An OSError with an errno is the local disk's and propagates.
    """
    try:
        return step()
    except MemoryError:
        raise
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise _bad(variant, f"does not decode fully: {exc}") from exc
    except Exception as exc:
        raise _bad(variant, f"does not decode fully: {type(exc).__name__}: {exc}") from exc
