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

from PIL import Image, ImageDraw

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
