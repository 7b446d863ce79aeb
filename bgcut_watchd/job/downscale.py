"""No more pixels than needed: an input larger than its largest variant is scaled down here
before the upload (``downscale_before_upload``, default true).

The API scales every output down to its ``max_resolution`` anyway, so pixels above the largest
one are paid for in upload time (and, by the public pricing, in resolution) and then thrown
away. Such an input is decoded upright (its EXIF orientation applied, then dropped), scaled
with Lanczos to fit the largest ``max_resolution``, and saved in its own format, losslessly or
visually so: PNG stays PNG (lossless), JPEG is saved at quality 95 with the chroma subsampling
of the input (never coarser), WebP at quality 95 (a lossless WebP stays lossless), AVIF at 90;
its ICC profile is kept. Every other input (small enough, or the option off) is uploaded byte
for byte: the file the API gets is then the claimed one. An input ``job.normalize`` converts (a
TIFF, a HEIC, a rotated photo...) is scaled there, by :func:`scaled`, between its decoding and
its one encoding, so the encoding (PNG, else JPEG or lossless WebP within the byte limit) is
chosen for the picture that is sent: a scaled picture whose PNG fits goes losslessly, and it is
never encoded twice. :func:`fit_pixels` is the one rule of when to scale. A scaled copy (of an
input sent as it is) that is not smaller in bytes than its source (a low-quality JPEG saved
again at 95 can grow) is not sent: fewer pixels would save nothing then, as the price counts
pixels only up to the largest ``max_resolution`` anyway (``job.cost``).

The scaled copy lives in the job dir (``job.naming.scaled_upload_name``) and is made again
whenever the upload step runs (it is not journaled: the same input makes the same copy);
``finish`` removes it with the job dir. Issue 10's ``job.normalize`` (format, orientation,
sRGB) works at the same place: combined, "a file the API accepts, upright, sRGB and small
enough is uploaded byte for byte" must still hold.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from bgcut_watchd.config.model import Variant
from bgcut_watchd.fsops import local_disk
from bgcut_watchd.job.naming import scaled_upload_name
from bgcut_watchd.job.render import fitted_size
from bgcut_watchd.job.validate import PixelBudget, ValidatedInput

log = logging.getLogger("bgcut_watchd.job")

_SAVE: dict[str, tuple[str, str, dict[str, Any]]] = {  # format -> (Pillow, ext, options)
    "png": ("PNG", "png", {"compress_level": 6}),
    "jpeg": ("JPEG", "jpg", {"quality": 95}),
    "webp": ("WEBP", "webp", {"quality": 95, "method": 4}),
    "avif": ("AVIF", "avif", {"quality": 90, "speed": 6}),
}
_WEBP_LOSSLESS: dict[str, Any] = {"lossless": True, "exact": True, "method": 4}


@dataclass(frozen=True)
class UploadSource:
    """The file to upload, and what scaling it down saved (0 when it is the input itself)."""

    path: Path
    saved_bytes: int = 0
    saved_pixels: int = 0


def fit_pixels(checked: ValidatedInput, variants: Sequence[Variant], *,
               enabled: bool) -> int | None:
    """The pixels an input is scaled down to before its upload: the largest
    ``max_resolution`` of ``variants`` when ``enabled`` and the input has more; else None.
    The one rule for the upload step, the conversion (``job.normalize``) and ``explain``."""
    largest = max(v.max_resolution for v in variants)
    return largest if enabled and checked.width * checked.height > largest else None


def upload_source(job_dir: Path, source: Path, checked: ValidatedInput,
                  variants: Sequence[Variant], *, enabled: bool,
                  budget: PixelBudget | None = None) -> UploadSource:
    """The file to upload for ``source`` (an input the API takes as it is, described by
    ``checked``): a scaled-down copy in ``job_dir`` when it has more pixels than the largest
    ``max_resolution`` of ``variants`` and ``enabled`` (:func:`fit_pixels`), else ``source``
    itself. Raises LocalDiskError when the copy cannot be written; a copy Pillow cannot make
    leaves the input to be uploaded as it is."""
    pixels = checked.width * checked.height
    largest = fit_pixels(checked, variants, enabled=enabled)
    if largest is None:
        return UploadSource(source)
    pil_format, ext, options = _SAVE[checked.format]
    target = job_dir / scaled_upload_name(ext)
    # The decoded input and the scaled copy exist together: at most twice its pixels, so a
    # large input is scaled alone (the pixel budget's accounting, not a measured saving).
    reserved = budget.reserve(2 * pixels) if budget is not None else contextlib.nullcontext()
    try:
        with reserved:
            scaled_pixels = _write_scaled(source, target, largest, pil_format, options)
    except (UnidentifiedImageError, SyntaxError, ValueError) as exc:
        log.warning("cannot scale %s down before the upload (%s): uploading it as it is",
                    source.name, exc)
        return UploadSource(source)
    scaled_bytes = target.stat().st_size
    if scaled_bytes >= checked.size_bytes:  # a low-quality JPEG saved again at 95 can grow
        log.info("the scaled-down copy of %s is not smaller (%d bytes, the input %d): "
                 "uploading the input as it is", source.name, scaled_bytes, checked.size_bytes)
        with local_disk("removing the scaled-down input", target):
            target.unlink(missing_ok=True)
        return UploadSource(source)
    return UploadSource(target, saved_bytes=checked.size_bytes - scaled_bytes,
                        saved_pixels=pixels - scaled_pixels)


def scaled(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` resized to ``size`` with Lanczos, in a mode that resamples (a palette or
    bilevel picture becomes RGB(A) or L first). ``image`` is closed: its pixels are freed as
    soon as they are not needed. Raises what Pillow raises."""
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        converted = image.convert("RGBA" if "A" in image.getbands() or
                                  "transparency" in image.info else "RGB")
        image.close()
        image = converted
    # The two passes of the resampling one after the other, each image freed as soon as the
    # next exists: in one call the input, the horizontal pass and the result are all held at
    # once (bench memory, 13.9 -> 12 MP: 117 MB at the peak instead of ~80).
    wide = image.resize((size[0], image.height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    image.close()
    result = wide.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    wide.close()
    return result


def _write_scaled(source: Path, target: Path, max_pixels: int, pil_format: str,
                  options: dict[str, Any]) -> int:
    """Write ``source`` upright and scaled to fit ``max_pixels`` into ``target``; return its
    pixels. Raises LocalDiskError (writing), Pillow's errors (decoding)."""
    with Image.open(source) as opened:
        icc = opened.info.get("icc_profile")
        if pil_format == "JPEG":
            options = {**options, "subsampling": max(0, JpegImagePlugin.get_sampling(opened))}
        elif pil_format == "WEBP" and _is_lossless_webp(source):
            options = _WEBP_LOSSLESS  # a lossless picture stays lossless
        # In place: a copy of an upright image would be a second full set of pixels
        # (bench memory: 13.9 MP inputs peaked at 258 MB with the copy).
        ImageOps.exif_transpose(opened, in_place=True)
        size = fitted_size(opened.width, opened.height, max_pixels)
        result = scaled(opened, size)
    if pil_format == "JPEG" and result.mode not in ("RGB", "L"):
        result = result.convert("RGB")
    extra = {"icc_profile": icc} if icc else {}
    with local_disk("writing the scaled-down input", target):
        result.save(target, pil_format, **options, **extra)
    return size[0] * size[1]


def _is_lossless_webp(path: Path) -> bool:
    """True when the WebP file's first chunk is ``VP8L`` (the lossless bitstream), or an
    extended file holds one. Raises OSError."""
    with path.open("rb") as file:
        head = file.read(4096)
    return head[12:16] == b"VP8L" or (head[12:16] == b"VP8X" and b"VP8L" in head)
