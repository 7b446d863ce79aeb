"""Sample images for ``demo`` and the benchmarks: a subject on a plain background.

The emulator's background cut keys on the border colour, so these images come out with a clean
transparent background and an autocrop that visibly shrinks them.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

SAMPLE_FORMATS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


def sample_image(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """A deterministic picture: a light backdrop with a dark subject whose place depends on seed."""
    image = Image.new("RGB", (width, height), (236, 238, 240))
    draw = ImageDraw.Draw(image)
    cx = width // 2 + (seed * 37) % max(1, width // 4) - width // 8
    cy = height // 2 + (seed * 53) % max(1, height // 4) - height // 8
    rx, ry = width // 5, height // 4
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=(40 + seed % 150, 90, 160))
    base = (cx - rx // 3, cy + ry // 2, cx + rx // 3, cy + ry + ry // 2)
    draw.rectangle(base, fill=(120, 60, 30))
    return image


def sample_bytes(fmt: str = "jpeg", width: int = 640, height: int = 480, seed: int = 0) -> bytes:
    """The sample picture encoded as ``fmt`` (jpeg, png or webp)."""
    buffer = io.BytesIO()
    sample_image(width, height, seed).save(buffer, format=fmt.upper(), quality=90)
    return buffer.getvalue()


def write_sample(path: Path, fmt: str = "jpeg", width: int = 640, height: int = 480,
                 seed: int = 0) -> Path:
    """Write one sample image to ``path`` (plain write: callers drop it into an inbox)."""
    path.write_bytes(sample_bytes(fmt, width, height, seed))
    return path
