"""Normalisation before the upload: what the API receives for each input (product.md, step 5).

The API takes JPEG, PNG, WebP and AVIF, and nothing says it honours EXIF orientation or ICC
profiles, so the daemon does both itself, locally, without an API call:

* :func:`decide` reads the facts of the local check (``ValidatedInput``) and plans: a file the
  API already accepts, upright (orientation 1) and sRGB, 8 bits per sample, is uploaded **byte
  for byte**; anything else is converted (TIFF, BMP, GIF, HEIC, a 16-bit PNG, a CMYK or YCCK
  JPEG, a file with an EXIF orientation or a non-sRGB profile). The plan in words is what the
  log and ``explain`` say: ``HEIC → PNG, rotated 90°, Display P3 → sRGB``. A converted input
  with more pixels than its largest variant needs is scaled down too (``downscale.fit_pixels``,
  ``downscale.scaled``), before it is encoded: one encoding, chosen for the picture sent.
* :func:`normalised` turns a decoded page upright (the EXIF orientation applied, then dropped),
  8 bits per sample (16-bit values scaled, not clipped) and sRGB (``colour``).
* :func:`write_within` encodes it losslessly as PNG, or, when that exceeds
  ``daemon.max_input_bytes``, as JPEG quality 95 without chroma subsampling (an opaque image) or
  lossless WebP (one with transparency); an image that fits in none is ``too_large``. The file
  is written to a temporary in the job dir, fsynced and renamed: whole or absent. The choice is
  :func:`first_fitting`'s, which ``explain`` runs in memory (:func:`predicted_upload`), so what
  it predicts is what the daemon sends.
* :func:`upload_for` runs it for a job: the converted file is ``upload.<ext>`` in the job dir and
  its name and the plan are journaled (``upload_file``, ``normalized``) before the upload, so a
  resume (after a crash, a retry, or a 404 that redoes the upload) sends the same file, never a
  differently converted one.

Decoding again for the conversion holds twice the pixels in the shared ``PixelBudget``: the
decoded page and its converted copy exist together for a moment (the decoded page is closed as
soon as its converted copy exists; the scaled copy is smaller than either).

Over 300 lines on purpose: the plan, the conversion and the one encoding rule belong together.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from PIL import Image, ImageOps

from bgcut_watchd.errors import LocalInputError
from bgcut_watchd.fsops import fsync_dir, fsync_file, local_disk
from bgcut_watchd.intake.sniff import ACCEPTED
from bgcut_watchd.job.colour import colour_steps, declared_icc, to_srgb
from bgcut_watchd.job.decoding import pillow_step, refuse_too_many_pixels
from bgcut_watchd.job.downscale import scaled
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.metadata import StudioMetadata
from bgcut_watchd.job.naming import UPLOAD_STEM, upload_file_name, upload_name_for
from bgcut_watchd.job.pixelbudget import PixelBudget, reserved
from bgcut_watchd.job.render import fitted_size
from bgcut_watchd.job.stamp import stamp_file
from bgcut_watchd.job.validate import (
    INVALID_IMAGE,
    PILLOW_FORMAT,
    TOO_LARGE,
    ImageFormat,
    ValidatedInput,
)
from bgcut_watchd.job.workarea import ClaimedJob

PNG_COMPRESS_LEVEL: Final = 3  # measured: level 6 took 1.8x the time for a 10 % smaller file
JPEG_QUALITY: Final = 95
WEBP_MAX_SIDE: Final = 16383
CONVERSION_PIXEL_FACTOR: Final = 2  # the decoded page and its converted copy, for a moment
_SHORT_NAMES: Final = {"heif": "HEIC", "jpeg": "JPEG", "png": "PNG", "webp": "WebP",
                       "avif": "AVIF", "tiff": "TIFF", "bmp": "BMP", "gif": "GIF"}
_ORIENTATION_WORDS: Final = {2: "mirrored", 3: "rotated 180°", 4: "mirrored vertically",
                             5: "mirrored, rotated 270°", 6: "rotated 90°",
                             7: "mirrored, rotated 90°", 8: "rotated 270°"}
_QUARTER_TURNS: Final = frozenset({5, 6, 7, 8})
_PNG_MODES: Final = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})
_HIGH_DEPTH_MODES: Final = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Limits:
    """What a conversion must respect: the input limits and the shared decode budget."""

    max_bytes: int
    max_pixels: int
    budget: PixelBudget | None = None


@dataclass(frozen=True)
class Plan:
    """What normalisation does to one input: its format, the ``steps`` in words, whether it
    converts, and the upright size it is scaled down to (None: kept; an input not converted
    is scaled by ``downscale.upload_source``, in its own format)."""

    source: str
    steps: tuple[str, ...]
    convert: bool
    scale_to: tuple[int, int] | None = None
    pages: int = 1

    def describe(self, target: str = "PNG") -> str:
        """The steps in words, the format it becomes (``target``, what the encoding chose)
        first; or that the file goes as it is."""
        if not self.convert:
            return ("none: uploaded byte for byte" if self.scale_to is None
                    else "none: format, orientation and colours stay")
        steps = [f"{self.source} → {target}", *self.steps]
        if self.scale_to is not None:
            steps.append(f"scaled down to {self.scale_to[0]}x{self.scale_to[1]}")
        if self.pages > 1:
            steps.append(f"{self.pages} pages → {self.pages} jobs")
        return ", ".join(steps)


def decide(checked: ValidatedInput, fit_pixels: int | None = None) -> Plan:
    """The plan for an input from the facts of its local check; it is scaled down to
    ``fit_pixels`` when given (``downscale.fit_pixels``), a converted one before its encoding.
    Raises nothing."""
    steps: list[str] = []
    if checked.orientation != 1:
        steps.append(_ORIENTATION_WORDS[checked.orientation])
    if checked.bits > 8 or checked.mode in _HIGH_DEPTH_MODES:
        steps.append(f"{checked.bits if checked.bits > 8 else 16}-bit → 8-bit")
    steps.extend(colour_steps(checked.icc_profile, checked.mode, ycck=checked.ycck))
    if checked.animated:
        steps.append("first frame of an animated GIF")
    convert = bool(steps) or checked.format not in ACCEPTED
    scale_to = None
    if fit_pixels is not None:
        turned = checked.orientation in _QUARTER_TURNS
        width, height = (checked.height, checked.width) if turned else (checked.width,
                                                                         checked.height)
        scale_to = fitted_size(width, height, fit_pixels)
    return Plan(_SHORT_NAMES[checked.format], tuple(steps), convert, scale_to, checked.pages)


def normalised(image: Image.Image, icc: bytes | None) -> Image.Image:
    """A loaded page upright, 8 bits per sample and sRGB, in a mode PNG takes. Raises what
    Pillow or LittleCMS raise (run it through ``pillow_step``)."""
    ImageOps.exif_transpose(image, in_place=True)  # TIFF and HEIF decoders did theirs
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    if image.mode == "I":
        image = image.point(lambda value: value * (1 / 257)).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    image = to_srgb(image, icc)
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.mode or "a" in image.mode else "RGB")
    return image


@contextlib.contextmanager
def decoded_page(path: Path, image_format: ImageFormat, page: int, limits: Limits,
                 ) -> Iterator[Image.Image]:
    """Page ``page`` (from 1) of a checked input, decoded and :func:`normalised`, within the
    budget while the ``with`` lasts. Raises LocalInputError (the input's fault)."""
    formats = [PILLOW_FORMAT[image_format]]
    image = pillow_step(image_format, lambda: Image.open(path, formats=formats))
    with image:
        if page > 1:
            pillow_step(image_format, lambda: image.seek(page - 1))
        refuse_too_many_pixels(image.width, image.height, limits.max_pixels)
        with reserved(limits.budget, CONVERSION_PIXEL_FACTOR * image.width * image.height):
            pillow_step(image_format, image.load)
            icc = declared_icc(image.info)
            upright = pillow_step(image_format, lambda: normalised(image, icc))
            if upright is not image:
                image.close()  # its pixels are not needed any more
            yield upright


@dataclass(frozen=True)
class Encoded:
    """A converted file: where it is, and how it was encoded, in words for the log."""

    path: Path
    words: str

    @property
    def ext(self) -> str:
        return self.path.suffix[1:]

    @property
    def format_name(self) -> str:
        return TARGET_FORMATS[self.ext]


TARGET_FORMATS: Final = {"png": "PNG", "jpg": "JPEG", "webp": "WebP"}
Encoder = Callable[[str, dict[str, object]], int]  # (ext, save options) -> size in bytes


def _candidates(image: Image.Image) -> list[tuple[str, str, dict[str, object]]]:
    """(extension, words, Pillow save options), in order of preference."""
    first = ("png", "PNG (lossless)", {"format": "PNG", "compress_level": PNG_COMPRESS_LEVEL})
    has_alpha = image.mode in ("LA", "RGBA") or "transparency" in image.info
    if not has_alpha:
        return [first, ("jpg", f"JPEG quality {JPEG_QUALITY}, 4:4:4",
                        {"format": "JPEG", "quality": JPEG_QUALITY, "subsampling": 0})]
    if max(image.size) > WEBP_MAX_SIDE:
        return [first]
    return [first, ("webp", "WebP (lossless)",
                    {"format": "WEBP", "lossless": True, "exact": True, "method": 4})]


def first_fitting(image: Image.Image, max_bytes: int, encode: Encoder) -> tuple[str, str]:
    """``(ext, words)`` of the first encoding of ``image`` that ``encode`` makes within
    ``max_bytes``: the one rule the daemon uploads by and ``explain`` predicts with.

    Raises LocalInputError (``too_large``) when none fits; what ``encode`` raises.
    """
    sizes: list[str] = []
    for ext, words, options in _candidates(image):
        size_bytes = encode(ext, options)
        if size_bytes <= max_bytes:
            return ext, f"{words}, {size_bytes} bytes"
        sizes.append(f"{size_bytes} bytes as {words}")
    raise LocalInputError(f"converted, it takes {' and '.join(sizes)}: over the limit of "
                          f"{max_bytes} bytes (daemon.max_input_bytes)", reason=TOO_LARGE)


def encoded_in_memory(image: Image.Image, max_bytes: int) -> tuple[str, str]:
    """:func:`first_fitting` with nothing written (``explain``). Raises LocalInputError."""
    def encode(ext: str, options: dict[str, object]) -> int:
        buffer = io.BytesIO()
        _encode(image, buffer, ext, options)
        return buffer.tell()
    return first_fitting(image, max_bytes, encode)


def write_within(image: Image.Image, directory: Path, stem: str, max_bytes: int,
                 meta: StudioMetadata | None = None) -> Encoded:
    """Encode ``image`` as ``<stem>.<ext>`` in ``directory``: the first candidate within
    ``max_bytes`` (:func:`first_fitting`), whole and fsynced (with ``meta`` stamped in).

    Raises LocalInputError (``too_large``) when none fits; LocalDiskError.
    """
    temp = directory / f".{stem}.part"

    def encode(ext: str, options: dict[str, object]) -> int:
        with local_disk("writing the converted input", temp):
            _encode(image, temp, ext, options)
            if meta:
                stamp_file(temp, meta)
            return temp.stat().st_size
    try:
        ext, words = first_fitting(image, max_bytes, encode)
    except LocalInputError:
        with local_disk("writing the converted input", temp):
            temp.unlink(missing_ok=True)
        raise
    with local_disk("writing the converted input", temp):
        fsync_file(temp)
        target = directory / f"{stem}.{ext}"
        temp.rename(target)
        fsync_dir(directory)
    return Encoded(target, words)


def _encode(image: Image.Image, path: Path | IO[bytes], ext: str,
            options: dict[str, object]) -> None:
    """Save ``image``; an encoder's own failure (an OSError without errno) is no disk error.
    Raises LocalInputError for that, OSError for the disk."""
    if ext == "jpg" and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    elif ext == "webp" and image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA")
    try:
        image.save(path, **options)  # type: ignore[arg-type]
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise LocalInputError(f"its converted picture cannot be encoded as {ext.upper()}: "
                              f"{exc}", reason=INVALID_IMAGE) from exc


def upload_for(job: ClaimedJob, checked: ValidatedInput, limits: Limits, say: Say,
               fit_pixels: int | None = None) -> tuple[Path, str]:
    """The file to upload for ``job`` and the name to send it as: the input itself, or the
    converted page 1 (made now, scaled down to ``fit_pixels`` first when given, or the one
    journaled before). Encoded once, the encoding chosen on the picture that is sent.

    Raises LocalInputError (the input cannot be converted within the limits), LocalDiskError.
    """
    record = job.record
    if record.upload_file is not None and os.path.lexists(job.job_dir / record.upload_file):
        path = job.job_dir / record.upload_file
        return path, upload_name_for(record.original_relpath, path.suffix[1:])
    plan = decide(checked, fit_pixels)
    if not plan.convert:
        return job.input_path, Path(record.original_relpath).name
    with converted_page(job.input_path, checked.format, fit_pixels, limits) as image:
        encoded = write_within(image, job.job_dir, UPLOAD_STEM, limits.max_bytes)
    assert encoded.path.name == upload_file_name(encoded.ext)
    said = plan.describe(encoded.format_name)
    job.save(record.advance(JobState.CLAIMED, upload_file=encoded.path.name, normalized=said))
    say(f"normalised: {said}; uploading {encoded.words}")
    return encoded.path, upload_name_for(record.original_relpath, encoded.ext)


@contextlib.contextmanager
def converted_page(path: Path, image_format: ImageFormat, fit_pixels: int | None,
                   limits: Limits, page: int = 1) -> Iterator[Image.Image]:
    """Page ``page`` decoded, normalised and, when it has more than ``fit_pixels``, scaled
    down to fit them (``downscale.scaled``), in the decode budget.
    Raises LocalInputError (the input's fault)."""
    with decoded_page(path, image_format, page, limits) as image:
        if fit_pixels is None or image.width * image.height <= fit_pixels:
            yield image
            return
        size = fitted_size(image.width, image.height, fit_pixels)
        yield pillow_step(image_format, lambda: scaled(image, size))


def predicted_upload(path: Path, checked: ValidatedInput, limits: Limits,
                     fit_pixels: int | None) -> tuple[Plan, str | None, str]:
    """What :func:`upload_for` would send, nothing written (``explain``): the plan, the
    extension of the converted file (None: the input itself) and the encoding in words.
    Raises LocalInputError (``too_large``: no encoding fits)."""
    plan = decide(checked, fit_pixels)
    if not plan.convert:
        return plan, None, ""
    with converted_page(path, checked.format, fit_pixels, limits) as image:
        ext, words = encoded_in_memory(image, limits.max_bytes)
    return plan, ext, words
