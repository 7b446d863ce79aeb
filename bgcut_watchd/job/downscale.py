"""No more pixels than needed: an input larger than its largest variant is scaled down here
before the upload (``downscale_before_upload``, default true).

The API scales every output down to its ``max_resolution`` anyway, so pixels above the largest
one are paid for in upload time (and, by the public pricing, in resolution) and then thrown
away. Such an input is decoded upright (its EXIF orientation applied, then dropped), scaled
with Lanczos to fit the largest ``max_resolution``, and saved in its own format, losslessly or
visually so: PNG stays PNG (lossless), JPEG is saved at quality 95 with the chroma subsampling
of the input (never coarser), WebP at quality 95, AVIF at 90; its ICC profile is kept. Every
other input (small enough, or the option off) is uploaded byte for byte: the file the API gets
is then the claimed one. An input ``job.normalize`` converted (a TIFF, a HEIC, a rotated
photo...) is scaled the same way from the file it became (:func:`converted_facts`), after the
conversion, so the two never hold their pixels at once (bench memory: scaling inside the
conversion added 95 MB for a 14 MP TIFF). A scaled copy that is not smaller in bytes than its
source (a low-quality JPEG saved again at 95 can grow) is not sent: fewer pixels would save
nothing then, as the price counts pixels only up to the largest ``max_resolution`` anyway
(``job.cost``).

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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from bgcut_watchd.config.model import Variant
from bgcut_watchd.fsops import local_disk
from bgcut_watchd.job.naming import scaled_upload_name
from bgcut_watchd.job.render import fitted_size
from bgcut_watchd.job.validate import FORMAT_OF_NAME, PixelBudget, ValidatedInput

log = logging.getLogger("bgcut_watchd.job")

_SAVE: dict[str, tuple[str, str, dict[str, Any]]] = {  # format -> (Pillow, ext, options)
    "png": ("PNG", "png", {"compress_level": 6}),
    "jpeg": ("JPEG", "jpg", {"quality": 95}),
    "webp": ("WEBP", "webp", {"quality": 95, "method": 4}),
    "avif": ("AVIF", "avif", {"quality": 90, "speed": 6}),
}


@dataclass(frozen=True)
class UploadSource:
    """The file to upload, and what scaling it down saved (0 when it is the input itself)."""

    path: Path
    saved_bytes: int = 0
    saved_pixels: int = 0


def upload_source(job_dir: Path, source: Path, checked: ValidatedInput,
                  variants: Sequence[Variant], *, enabled: bool,
                  budget: PixelBudget | None = None) -> UploadSource:
    """The file to upload for ``source`` (described by ``checked``): a scaled-down copy in
    ``job_dir`` when it has more pixels than the largest ``max_resolution`` of ``variants``
    and ``enabled``, else ``source`` itself. Raises LocalDiskError when the copy cannot be
    written; a copy Pillow cannot make leaves the input to be uploaded as it is."""
    pixels = checked.width * checked.height
    largest = max(v.max_resolution for v in variants)
    if not enabled or pixels <= largest:
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


def converted_facts(converted: Path, checked: ValidatedInput) -> ValidatedInput:
    """``checked`` (the input's local check) as it holds for the file ``job.normalize`` made
    of it: its format and size in bytes; the pixel count is the same. Raises OSError."""
    return replace(checked, format=FORMAT_OF_NAME[converted.suffix[1:]],
                   size_bytes=converted.stat().st_size,
                   orientation=1, icc_profile=None, bits=8)


def _write_scaled(source: Path, target: Path, max_pixels: int, pil_format: str,
                  options: dict[str, Any]) -> int:
    """Write ``source`` upright and scaled to fit ``max_pixels`` into ``target``; return its
    pixels. Raises LocalDiskError (writing), Pillow's errors (decoding)."""
    with Image.open(source) as opened:
        icc = opened.info.get("icc_profile")
        if pil_format == "JPEG":
            options = {**options, "subsampling": max(0, JpegImagePlugin.get_sampling(opened))}
        # In place: a copy of an upright image would be a second full set of pixels
        # (bench memory: 13.9 MP inputs peaked at 258 MB with the copy).
        ImageOps.exif_transpose(opened, in_place=True)
        image: Image.Image = opened
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA" if "A" in image.getbands() or
                                  "transparency" in image.info else "RGB")
        size = fitted_size(image.width, image.height, max_pixels)
        # The two passes of the resampling one after the other, each image freed as soon as
        # the next exists: in one call the input, the horizontal pass and the result are all
        # held at once (bench memory, 13.9 -> 12 MP: 117 MB at the peak instead of ~80).
        wide = image.resize((size[0], image.height), Image.Resampling.LANCZOS,
                            reducing_gap=3.0)
        image.close()
        opened.close()
    scaled = wide.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    wide.close()
    if pil_format == "JPEG" and scaled.mode not in ("RGB", "L"):
        scaled = scaled.convert("RGB")
    extra = {"icc_profile": icc} if icc else {}
    with local_disk("writing the scaled-down input", target):
        scaled.save(target, pil_format, **options, **extra)
    return size[0] * size[1]
