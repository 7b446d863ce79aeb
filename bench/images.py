"""Inputs for the benchmarks: many tiny distinct images, and a few large ones.

Every tiny image is the same subject on a plain background with its index written into three
pixels of the subject, so no two share a sha256 (the daemon copies the outputs of a duplicate
instead of calling the API, which would skew every count).
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

TINY_SIZE = (64, 48)
BACKGROUND = (236, 238, 240)
SUBJECT = (40, 90, 160)


def _base(size: tuple[int, int]) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=SUBJECT)
    return image


class TinyImages:
    """Distinct small PNGs, fast to make (one encode of a 64x48 image each)."""

    def __init__(self, size: tuple[int, int] = TINY_SIZE) -> None:
        self._base = _base(size)
        self._centre = (size[0] // 2 - 1, size[1] // 2)

    def png_bytes(self, index: int) -> bytes:
        image = self._base.copy()
        x, y = self._centre
        for offset, byte in enumerate(index.to_bytes(3, "big")):
            image.putpixel((x + offset, y), (byte, 90, 160))
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    def write(self, folder: Path, index: int, prefix: str = "img") -> Path:
        """Write image ``index`` as ``<folder>/<prefix>-<index>.png``; returns the path."""
        path = folder / f"{prefix}-{index:06d}.png"
        path.write_bytes(self.png_bytes(index))
        return path

    def fill(self, folder: Path, count: int, prefix: str = "img", start: int = 0) -> list[Path]:
        """Write ``count`` distinct images into ``folder`` (created if needed)."""
        folder.mkdir(parents=True, exist_ok=True)
        return [self.write(folder, start + n, prefix) for n in range(count)]


def large_tiff(path: Path, target_bytes: int, seed: int) -> Path:
    """An uncompressed RGB TIFF of random noise of about ``target_bytes``: a flatbed scanner's
    output as the daemon meets it (converted to PNG before the upload)."""
    pixels = target_bytes // 3
    width = int(pixels**0.5 * 4 / 3) // 8 * 8
    height = pixels // width
    noise = random.Random(seed).randbytes(width * height * 3)
    image = Image.frombytes("RGB", (width, height), noise)
    temp = path.with_name(f".{path.name}.tmp")
    image.save(temp, "TIFF")
    os.replace(temp, path)
    return path


def large_png(path: Path, target_bytes: int, seed: int) -> Path:
    """A PNG of random noise of about ``target_bytes`` (noise does not compress).

    Noise gives the fewest pixels for a file size, so it is the kindest large input for a
    daemon that decodes every input fully: a photo of the same size has more pixels.
    """
    pixels = target_bytes // 3
    width = int(pixels**0.5 * 4 / 3) // 8 * 8
    height = pixels // width
    noise = random.Random(seed).randbytes(width * height * 3)
    image = Image.frombytes("RGB", (width, height), noise)
    temp = path.with_name(f".{path.name}.tmp")
    image.save(temp, "PNG", compress_level=1)
    os.replace(temp, path)
    return path


# -- realistic camera-like photos --------------------------------------------------------------

CAMERA_SIZES = ((2048, 1536), (2448, 1632), (2304, 1728))  # 3.1, 4.0 and 4.0 MP
CAMERA_QUALITY = 90
PATCH_PX = 48  # the per-file variation: one small block of noise inside the subject


def _photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A studio-like photo: a backdrop in a soft gradient, a textured subject, sensor noise.

    The backdrop stays within the emulator's cut threshold of its border colour (its subject
    comes out, the backdrop goes), so outputs have the shape and size of a real cut-out.
    """
    width, height = size
    rng = random.Random(seed)
    ramp = Image.linear_gradient("L").resize(size)
    backdrop = Image.merge("RGB", [ramp.point(lambda v, base=base: base + v // 14)
                                   for base in (214, 218, 222)])
    subject = Image.merge("RGB", [Image.linear_gradient("L").rotate(angle).resize(size)
                                  for angle in (30, 150, 270)])
    subject = ImageChops.multiply(subject, Image.new("RGB", size, (170, 110, 80)))
    subject = ImageChops.add(subject, _noise(size, rng, 48), scale=1.0, offset=-100)
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    draw.ellipse((width * 0.28, height * 0.18, width * 0.72, height * 0.92), fill=255)
    for _ in range(6):
        x, y = rng.uniform(0.3, 0.6) * width, rng.uniform(0.2, 0.7) * height
        draw.rectangle((x, y, x + width * 0.12, y + height * 0.15), fill=255)
    photo = Image.composite(subject, backdrop, mask.filter(ImageFilter.GaussianBlur(3)))
    return ImageChops.add(photo, _noise(size, rng, 8), scale=1.0, offset=-128)


def _noise(size: tuple[int, int], rng: random.Random, spread: int) -> Image.Image:
    """Uniform RGB noise around 128, each channel within +-``spread`` (fast: no Gaussian)."""
    raw = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    return raw.point([128 - spread + v * (2 * spread + 1) // 256 for v in range(256)] * 3)


class CameraPhotos:
    """Distinct camera-like JPEGs of 3-4 MP (quality 90), cached on disk under ``cache_dir``.

    A few base photos are made once; each file is a base with one small block of noise
    written into its subject, then encoded: one JPEG encode per file, distinct bytes (the
    daemon's duplicate check never kicks in). Files are made once per cache folder and linked
    into each round's inbox (the daemon moves its inputs away).
    """

    def __init__(self, cache_dir: Path, sizes: tuple[tuple[int, int], ...] = CAMERA_SIZES) -> None:
        self._cache_dir = cache_dir
        self.sizes = sizes
        self._bases: dict[int, Image.Image] = {}

    def path(self, index: int) -> Path:
        """The cached file of photo ``index``, made on first use."""
        size = self.sizes[index % len(self.sizes)]
        path = self._cache_dir / f"photo-{index:05d}-{size[0]}x{size[1]}.jpg"
        if not path.exists():
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            self._make(path, index)
        return path

    def _make(self, path: Path, index: int) -> None:
        kind = index % len(self.sizes)
        if kind not in self._bases:
            self._bases[kind] = _photo(self.sizes[kind], seed=kind)
        image = self._bases[kind].copy()
        patch = Image.frombytes("RGB", (PATCH_PX, PATCH_PX),
                                random.Random(index).randbytes(PATCH_PX * PATCH_PX * 3))
        width, height = image.size
        image.paste(patch, (width // 2 - PATCH_PX // 2, height // 2 - PATCH_PX // 2))
        exif = Image.Exif()
        exif[0x010F], exif[0x0110], exif[0x0112] = "BenchCam", "Model 9", 1  # make, model, upright
        temp = path.with_name(f".{path.name}.tmp")
        image.save(temp, "JPEG", quality=CAMERA_QUALITY, exif=exif)
        os.replace(temp, path)

    def fill(self, folder: Path, count: int, prefix: str = "photo") -> list[Path]:
        """Hard-link photos 0..count-1 into ``folder`` (created if needed) as new names."""
        folder.mkdir(parents=True, exist_ok=True)
        placed = []
        for index in range(count):
            source = self.path(index)
            target = folder / f"{prefix}-{index:05d}.jpg"
            os.link(source, target)
            placed.append(target)
        return placed
