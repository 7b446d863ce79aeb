"""Rendering of output variants: pure functions over Pillow images, no HTTP, no disk state.

The background cut is deliberately simple and deterministic: the median colour of the image's
border is taken as the background, and every pixel whose largest channel difference from it is
within a threshold becomes transparent. ``quality`` picks the threshold and how much the mask's
edge is feathered. Everything runs in Pillow's C code, so small images render in milliseconds.

Only the documented contract (api-v3.md): JPEG, PNG, WebP and AVIF are taken, anything else is
a 400 with the API's own message, and the pixels are used as stored: no EXIF orientation is
applied and no ICC profile honoured, since nothing says the real API does either (the daemon
must not depend on it; it sends upright sRGB pixels).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter, UnidentifiedImageError

INVALID_IMAGE_DETAIL = "Invalid image format. Supported: JPEG, PNG, WebP, AVIF"
INPUT_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "AVIF"})
OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
QUALITIES = ("high", "medium", "low")
MIN_RESOLUTION = 4096
MAX_RESOLUTION = 25_000_000

# quality -> (largest channel difference still counted as background, feather radius in px)
_CUT_SETTINGS = {"high": (40, 1.0), "medium": (48, 0.6), "low": (64, 0.0)}
_WHITE = (255, 255, 255)


class UnreadableImageError(ValueError):
    """The input is not a decodable JPEG, PNG, WebP or AVIF image."""


@dataclass(frozen=True)
class RenderSpec:
    """How to render one variant; the fields and defaults of api-v3.md (paths excluded)."""

    format: str = "png"
    max_resolution: int = 12_000_000
    quality: str = "high"
    background_color: str | None = None
    output_compression: int = 85
    autocrop: bool = False


def decode_image(path: Path) -> Image.Image:
    """Decode ``path`` fully into an RGBA image, its pixels as stored (no EXIF orientation).

    Raises:
        UnreadableImageError: not a JPEG/PNG/WebP/AVIF file, or a truncated/corrupt one.
    """
    try:
        with Image.open(path, formats=sorted(INPUT_FORMATS)) as image:
            image.load()
            return image.convert("RGBA")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(INVALID_IMAGE_DETAIL) from exc
    except Image.DecompressionBombError as exc:
        raise UnreadableImageError(INVALID_IMAGE_DETAIL) from exc


def border_colour(image: Image.Image) -> tuple[int, int, int]:
    """The per-channel median colour of the one-pixel border of ``image``."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    strips = [
        rgb.crop((0, 0, width, 1)),
        rgb.crop((0, height - 1, width, height)),
        rgb.crop((0, 0, 1, height)),
        rgb.crop((width - 1, 0, width, height)),
    ]
    histogram = [0] * 768
    for strip in strips:
        histogram = [a + b for a, b in zip(histogram, strip.histogram(), strict=True)]
    red, green, blue = (_median(histogram[i * 256 : (i + 1) * 256]) for i in range(3))
    return red, green, blue


def _median(counts: Sequence[int]) -> int:
    """The median value of a 256-bin histogram."""
    half = (sum(counts) + 1) // 2
    seen = 0
    for value, count in enumerate(counts):
        seen += count
        if seen >= half:
            return value
    return 255


def cut_background(image: Image.Image, quality: str) -> Image.Image:
    """Return a copy of the RGBA ``image`` whose background-coloured pixels are transparent."""
    threshold, feather_px = _CUT_SETTINGS[quality]
    rgb = image.convert("RGB")
    backdrop = Image.new("RGB", rgb.size, border_colour(rgb))
    red, green, blue = ImageChops.difference(rgb, backdrop).split()
    distance = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    mask = distance.point([0 if v <= threshold else 255 for v in range(256)])
    if feather_px > 0:
        mask = mask.filter(ImageFilter.BoxBlur(feather_px))
    cut = image.copy()
    cut.putalpha(ImageChops.multiply(mask, image.getchannel("A")))
    return cut


def crop_to_subject(image: Image.Image) -> Image.Image:
    """Crop an RGBA image to the bounding box of its non-transparent pixels (unchanged if none)."""
    bbox = image.getchannel("A").getbbox()
    return image if bbox is None else image.crop(bbox)


def fitted_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most ``max_pixels``; never larger."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    new_width = max(1, math.floor(width * scale))
    new_height = max(1, math.floor(height * scale))
    if new_width * new_height > max_pixels:  # a side clamped to 1, or float rounding
        if new_width <= new_height:
            new_height = max_pixels // new_width
        else:
            new_width = max_pixels // new_height
    return new_width, new_height


def scale_down(image: Image.Image, max_pixels: int) -> Image.Image:
    """Scale ``image`` down to fit ``max_pixels`` keeping its aspect ratio; never up."""
    size = fitted_size(image.width, image.height, max_pixels)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def parse_colour(value: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> (r, g, b).

    Raises:
        ValueError: not of the form ``#rrggbb``.
    """
    if len(value) != 7 or value[0] != "#":
        raise ValueError(f"not a #rrggbb colour: {value!r}")
    rgb = bytes.fromhex(value[1:])
    return rgb[0], rgb[1], rgb[2]


def fill_background(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """Composite the RGBA ``image`` onto an opaque ``colour``; returns an RGB image."""
    base = Image.new("RGBA", image.size, (*colour, 255))
    base.alpha_composite(image)
    return base.convert("RGB")


def encode(image: Image.Image, fmt: str, compression: int) -> bytes:
    """Encode ``image`` in the API format name ``fmt`` (png, jpeg, jpg, webp, avif)."""
    pil_format = OUTPUT_FORMATS[fmt]
    buffer = io.BytesIO()
    if pil_format == "PNG":
        image.save(buffer, "PNG", compress_level=3)
    elif pil_format == "JPEG":
        image.convert("RGB").save(buffer, "JPEG", quality=compression)
    elif pil_format == "WEBP":
        image.save(buffer, "WEBP", quality=compression, method=2)
    else:
        image.save(buffer, "AVIF", quality=compression, speed=8)
    return buffer.getvalue()


def render(cut: Image.Image, spec: RenderSpec) -> bytes:
    """Render one variant from an already cut-out RGBA image."""
    image = crop_to_subject(cut) if spec.autocrop else cut
    image = scale_down(image, spec.max_resolution)
    if spec.background_color is not None:
        image = fill_background(image, parse_colour(spec.background_color))
    elif OUTPUT_FORMATS[spec.format] == "JPEG":
        image = fill_background(image, _WHITE)
    return encode(image, spec.format, spec.output_compression)


def render_all(source: Path, specs: Sequence[RenderSpec]) -> list[bytes]:
    """Decode ``source`` once and render every spec, in order; one cut per distinct quality.

    Raises:
        UnreadableImageError: ``source`` is not a decodable JPEG/PNG/WebP/AVIF image.
    """
    return render_decoded(decode_image(source), specs)


def render_decoded(image: Image.Image, specs: Sequence[RenderSpec]) -> list[bytes]:
    """Render every spec from the decoded RGBA ``image``, in order; one cut per quality."""
    cuts: dict[str, Image.Image] = {}
    outputs: list[bytes] = []
    for spec in specs:
        if spec.quality not in cuts:
            cuts[spec.quality] = cut_background(image, spec.quality)
        outputs.append(render(cuts[spec.quality], spec))
    return outputs
