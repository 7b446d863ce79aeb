"""Rendering per variant field, as pure functions (no HTTP)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from bgcut_watchd.fake_api.render import (
    INVALID_IMAGE_DETAIL,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    RenderSpec,
    UnreadableImageError,
    border_colour,
    decode_image,
    fitted_size,
    render_all,
)

from .conftest import BACKGROUND, image_bytes

MAGIC: dict[str, Callable[[bytes], bool]] = {
    "png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "jpg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "avif": lambda b: b[4:8] == b"ftyp" and b[8:12] in (b"avif", b"avis"),
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    path.write_bytes(image_bytes("PNG", (400, 300)))
    return path


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def render_one(source: Path, **fields: object) -> Image.Image:
    (data,) = render_all(source, [RenderSpec(**fields)])  # type: ignore[arg-type]
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("fmt", sorted(MAGIC))
def test_every_format_name_is_encoded_as_that_format(source: Path, fmt: str) -> None:
    (data,) = render_all(source, [RenderSpec(format=fmt)])
    assert MAGIC[fmt](data), data[:16]


def test_png_without_background_has_a_transparent_corner_and_opaque_subject(source: Path) -> None:
    image = render_one(source, format="png")
    assert image.mode == "RGBA"
    assert pixel(image, (0, 0))[3] == 0
    assert pixel(image, (200, 150))[3] == 255


def test_background_color_fills_the_corner(source: Path) -> None:
    image = render_one(source, format="png", background_color="#123456")
    assert image.mode == "RGB"
    assert pixel(image, (0, 0)) == (0x12, 0x34, 0x56)


def test_jpeg_without_background_color_gets_white(source: Path) -> None:
    image = render_one(source, format="jpeg")
    assert all(abs(c - 255) <= 3 for c in pixel(image, (0, 0)))


def test_autocrop_is_smaller_than_uncropped(source: Path) -> None:
    full = render_one(source, format="png")
    cropped = render_one(source, format="png", autocrop=True)
    assert full.size == (400, 300)
    assert cropped.width < full.width and cropped.height < full.height
    # the ellipse spans about half of each side
    assert 180 <= cropped.width <= 220 and 130 <= cropped.height <= 170


def test_max_resolution_scales_down_keeping_aspect(source: Path) -> None:
    image = render_one(source, format="png", max_resolution=10_000)
    assert image.width * image.height <= 10_000
    assert abs(image.width / image.height - 400 / 300) < 0.05


def test_max_resolution_never_scales_up(source: Path) -> None:
    assert render_one(source, max_resolution=MAX_RESOLUTION).size == (400, 300)


def test_output_compression_changes_lossy_size(source: Path) -> None:
    low, high = render_all(
        source, [RenderSpec(format="webp", output_compression=5),
                 RenderSpec(format="webp", output_compression=100)],
    )
    assert len(low) < len(high)


def test_quality_changes_the_mask_edge(tmp_path: Path) -> None:
    path = tmp_path / "soft.jpg"
    path.write_bytes(image_bytes("JPEG", (200, 200)))
    high, low = render_all(path, [RenderSpec(quality="high"), RenderSpec(quality="low")])
    assert high != low


def test_rendering_is_deterministic(source: Path) -> None:
    specs = [RenderSpec(format="png", autocrop=True), RenderSpec(format="webp")]
    assert render_all(source, specs) == render_all(source, specs)


def test_border_colour_is_the_median_border_pixel() -> None:
    image = Image.new("RGB", (50, 40), BACKGROUND)
    image.putpixel((0, 0), (255, 255, 255))
    assert border_colour(image) == BACKGROUND


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF"])
def test_every_accepted_input_format_decodes(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"in.{fmt.lower()}"
    path.write_bytes(image_bytes(fmt, (64, 48)))
    assert decode_image(path).size == (64, 48)


@pytest.mark.parametrize(
    "content", [b"not an image at all", image_bytes("GIF", (20, 20)), image_bytes("BMP", (20, 20)),
                image_bytes("PNG", (64, 64))[:60]],
    ids=["text", "gif", "bmp", "truncated-png"],
)
def test_unreadable_inputs_are_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match="Invalid image format"):
        decode_image(path)
    assert INVALID_IMAGE_DETAIL == "Invalid image format. Supported: JPEG, PNG, WebP, AVIF"


@example(width=1, height=20_000, max_pixels=4096)  # one side clamps to 1 pixel
@given(
    width=st.integers(1, 20_000), height=st.integers(1, 20_000),
    max_pixels=st.integers(MIN_RESOLUTION, MAX_RESOLUTION),
)
def test_fitted_size_fits_and_never_grows(width: int, height: int, max_pixels: int) -> None:
    new_width, new_height = fitted_size(width, height, max_pixels)
    assert 1 <= new_width <= width and 1 <= new_height <= height
    if width * height <= max_pixels:
        assert (new_width, new_height) == (width, height)
        return
    assert new_width * new_height <= max_pixels
    if min(new_width, new_height) >= 20:
        assert abs(new_width / new_height - width / height) / (width / height) < 0.1


def test_exif_orientation_is_not_applied(tmp_path: Path) -> None:
    """The documented contract only: nothing says the API honours EXIF orientation, so the
    emulator does not either (the daemon must send upright pixels)."""
    stored = Image.new("RGB", (64, 48), BACKGROUND)
    stored.paste((0, 0, 0), (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn a quarter clockwise to view"
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    decoded = decode_image(path)
    assert decoded.size == (64, 48)
    assert sum(decoded.getpixel((3, 3))[:3]) < 60  # type: ignore[index]


@pytest.mark.parametrize("make", ["tiff", "heic"])
def test_what_scanners_and_phones_write_is_refused_with_the_apis_message(
    tmp_path: Path, make: str,
) -> None:
    """TIFF and HEIC are not in the API's list, even with a HEIC decoder in the process."""
    import bgcut_watchd.job.validate  # noqa: F401 - registers pi-heif with Pillow
    from tests.devices.corpus import heic_phone, tiff

    made = heic_phone(tmp_path) if make == "heic" else tiff("scan.tif", "tiff_lzw")(tmp_path)
    with pytest.raises(UnreadableImageError) as raised:
        decode_image(tmp_path / made.name)
    assert str(raised.value) == INVALID_IMAGE_DETAIL
