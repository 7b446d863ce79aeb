"""Local rendering (``render = "local"``): one paid cutout, every variant made here.

What is *requested* and what is *published* stay apart: the process call asks for
:func:`master_variant` only (a transparent PNG at the largest ``max_resolution`` and the best
``quality`` of the folder's variants); :func:`render_set` then makes every configured variant
from it with Pillow, the way api-v3.md describes the API doing it:

1. ``autocrop``: crop to the bounding box of the pixels whose alpha is not 0 (no margin);
2. scale down to fit ``max_resolution`` pixels (Lanczos), never up;
3. fill ``background_color`` (a JPEG without one gets white, as JPEG has no alpha);
4. encode in ``format`` with ``output_compression`` (JPEG/WebP/AVIF; PNG is lossless).

The autocrop box is taken on the master, not on the full-resolution input: when the master was
scaled down, an autocrop variant whose ``max_resolution`` exceeds its crop gets the master's
pixels of the subject (never upscaled), where the API would have cropped before scaling.

Each rendered file is written as a ``.dl`` (``job.naming``); once every variant is made and the
master's pixels are let go, the caller's ``finish`` treats each ``.dl`` exactly like a
downloaded output (the job stamps the studio's metadata into it, fsyncs it and verifies it with
``job.verify``: a locally rendered file is trusted no more than a downloaded one), then it
becomes its ``.part``. Rendering holds the master's pixels three times in the shared pixel
budget (the decoded PNG, its RGBA copy and the variant being made); verifying reserves its own
pixels after that reservation ends, so the two never wait on each other. Raises
``LocalDiskError`` on a disk error, ``BadRenderError`` (a ``ServiceError``: the caller drops
the master, a retry fetches it again) when the master does not decode as a PNG or a rendered
file fails its verification.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bgcut_watchd.config.model import QUALITIES, Variant
from bgcut_watchd.errors import ServiceError
from bgcut_watchd.fsops import fsync_file, local_disk
from bgcut_watchd.job.naming import (
    download_path_for,
    remote_master_path,
    remote_output_paths,
    temp_path_for,
)
from bgcut_watchd.job.validate import PixelBudget

MASTER_NAME = "master"
RENDER_COPIES = 3  # the master's pixels held while rendering: see _decoded
RENDERED_INDEX_BASE = 1  # rendered temps are .bgcut-<job>-1.part ...; 0 is the master
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
_WHITE = (255, 255, 255)
_MAGIC = {"PNG": (b"\x89PNG",), "JPEG": (b"\xff\xd8\xff",), "WEBP": (b"RIFF",),
          "AVIF": (b"ftyp",)}


class BadRenderError(ServiceError):
    """The master cutout the API sent does not decode as a PNG image (or a rendered file is
    not what its variant asks for): retried like a bad body, the master downloaded again."""


def master_variant(variants: Sequence[Variant]) -> Variant:
    """The one variant a local-render process call asks for: every variant can be cut from it."""
    best = min((v.quality for v in variants), key=QUALITIES.index)
    return Variant(name=MASTER_NAME, format="png",
                   max_resolution=max(v.max_resolution for v in variants), quality=best)


def requested_outputs(render: str, upload_prefix: str, job_id: str,
                      variants: tuple[Variant, ...],
                      remote_round: int = 0) -> tuple[tuple[Variant, ...], list[str]]:
    """What the process call asks for under ``render``, and where: ``"api"``, the variants
    themselves; ``"local"``, the master alone (``job.naming.remote_master_path``)."""
    if render == "local":
        return ((master_variant(variants),),
                [remote_master_path(upload_prefix, job_id, remote_round)])
    return variants, remote_output_paths(upload_prefix, job_id, variants, remote_round)


Finish = Callable[[Path, Variant], None]
"""What the job does to each rendered ``.dl`` before it becomes a ``.part``: stamp, fsync and
verify it as a downloaded output. Raises BadRenderError, LocalDiskError."""


def fsync_and_check(partial: Path, variant: Variant) -> None:
    """The plainest ``finish``: fsync, then :func:`check_rendered`. Raises BadRenderError,
    LocalDiskError."""
    with local_disk("writing a rendered output", partial):
        fsync_file(partial)
    check_rendered(partial, variant)


def render_set(master_png: Path, variants: Sequence[Variant], out_dir: Path, job_id: str,
               budget: PixelBudget | None = None,
               finish: Finish = fsync_and_check) -> list[str]:
    """Render every variant from ``master_png`` into the job's ``.part`` temporaries (in
    variant order), each passed through ``finish`` first (the job verifies it as a download);
    return their paths. Raises LocalDiskError; BadRenderError after removing the master (a
    retry downloads it again)."""
    try:
        partials = _render_all(master_png, variants, out_dir, job_id, budget)
        temps = []
        for index, (partial, variant) in enumerate(zip(partials, variants, strict=True),
                                                    start=RENDERED_INDEX_BASE):
            finish(partial, variant)
            temp = temp_path_for(out_dir, job_id, index)
            with local_disk("writing a rendered output", partial):
                partial.rename(temp)
            temps.append(os.fsdecode(temp))
        return temps
    except BadRenderError:
        master_png.unlink(missing_ok=True)
        raise


def drop_master(out_dir: Path, job_id: str) -> None:
    """Remove a local-render job's downloaded master once its set is rendered (or published:
    a crash may have left it). Any job may call it: an API job has no such file then.
    Raises LocalDiskError."""
    master = temp_path_for(out_dir, job_id, 0)
    with local_disk("removing a rendered job's cutout", master):
        master.unlink(missing_ok=True)


def _render_all(master_png: Path, variants: Sequence[Variant], out_dir: Path, job_id: str,
                budget: PixelBudget | None) -> list[Path]:
    """Every variant written to its ``.dl``, in variant order, while the master is held."""
    with _decoded(master_png, budget) as master:
        partials = []
        for index, variant in enumerate(variants, start=RENDERED_INDEX_BASE):
            partial = download_path_for(out_dir, job_id, index)
            with local_disk("writing a rendered output", partial):
                partial.write_bytes(render_variant(master, variant))
            partials.append(partial)
    return partials


def render_variant(master: Image.Image, variant: Variant) -> bytes:
    """One variant's encoded bytes from the RGBA ``master`` (steps 1-4 of the docstring)."""
    image = master
    if variant.autocrop:
        box = image.getchannel("A").getbbox()
        image = image if box is None else image.crop(box)
    image = scale_down(image, variant.max_resolution)
    pil_format = _PIL_FORMATS[variant.format]
    if variant.background_color is not None:
        image = _fill(image, _colour(variant.background_color))
    elif pil_format == "JPEG":
        image = _fill(image, _WHITE)
    return _encode(image, pil_format, variant.output_compression)


def check_rendered(path: Path, variant: Variant) -> None:
    """The verification seam of a rendered file: its magic bytes say its variant's format.
    Raises BadRenderError."""
    with path.open("rb") as handle:
        head = handle.read(12)
    pil_format = _PIL_FORMATS[variant.format]
    if not any(magic in head for magic in _MAGIC[pil_format]):
        raise BadRenderError("download", f"rendered {variant.name} is not a {pil_format} file")


def scale_down(image: Image.Image, max_pixels: int) -> Image.Image:
    """``image`` scaled to fit ``max_pixels`` with its aspect ratio (Lanczos); never up."""
    size = fitted_size(image.width, image.height, max_pixels)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def fitted_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size of the same aspect ratio with at most ``max_pixels``; never larger."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    new_width, new_height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    if new_width * new_height > max_pixels:  # a side clamped to 1, or float rounding
        if new_width <= new_height:
            new_height = max_pixels // new_width
        else:
            new_width = max_pixels // new_height
    return new_width, new_height


@contextlib.contextmanager
def _decoded(path: Path, budget: PixelBudget | None) -> Iterator[Image.Image]:
    """The master decoded as RGBA while its pixels are held in ``budget`` (three times: the
    decoded PNG, its RGBA copy and the variant being made from it)."""
    with _png(path) as probe:
        pixels = probe.width * probe.height
    reserved = (budget.reserve(RENDER_COPIES * pixels) if budget is not None
                else contextlib.nullcontext())
    with reserved, _png(path) as image:
        try:
            rgba = image.convert("RGBA")
        except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
            raise BadRenderError("download", f"the cutout {path.name} does not decode: "
                                             f"{exc}") from exc
        yield rgba


@contextlib.contextmanager
def _png(path: Path) -> Iterator[Image.Image]:
    try:
        image = Image.open(path, formats=["PNG"])
    except (UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise BadRenderError("download", f"the cutout {path.name} is not a PNG image") from exc
    with image:
        yield image


def _colour(value: str) -> tuple[int, int, int]:
    rgb = bytes.fromhex(value[1:])
    return rgb[0], rgb[1], rgb[2]


def _fill(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    base = Image.new("RGBA", image.size, (*colour, 255))
    base.alpha_composite(image.convert("RGBA"))
    return base.convert("RGB")


def _encode(image: Image.Image, pil_format: str, compression: int) -> bytes:
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
