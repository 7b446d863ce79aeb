"""The output verifier: real images encoded by Pillow and rendered by the emulator, checked
against their variant (format, pixel count, proportions, content) before publication. A JPEG is
decoded at 1/8 scale and must refuse exactly what a full-size decode refuses; the PNG data
check is in test_pngdata."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin

from bgcut_watchd.config.model import Variant
from bgcut_watchd.errors import BadOutputError, ServiceError
from bgcut_watchd.fake_api import faults
from bgcut_watchd.fake_api.render import RenderSpec, render_all
from bgcut_watchd.job.validate import PixelBudget
from bgcut_watchd.job.verify import upright_size, verify_output
from tests.hostile import damaged_jpegs, photo_jpeg, subject_image

PILLOW = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
SIZE = (120, 80)


def encoded(fmt: str, size: tuple[int, int] = SIZE) -> bytes:
    image = subject_image(size)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, PILLOW[fmt])
    return buffer.getvalue()


def write(tmp_path: Path, data: bytes, name: str = "out.dl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def bad(path: Path, variant: Variant, input_size: tuple[int, int] | None = SIZE) -> str:
    with pytest.raises(BadOutputError) as caught:
        verify_output(path, variant, input_size)
    assert isinstance(caught.value, ServiceError) and caught.value.reason == "bad_output"
    return caught.value.detail


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "avif"])
def test_a_whole_output_of_the_right_format_passes(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, encoded(fmt))
    assert verify_output(path, Variant("v", format=fmt), SIZE) == SIZE


def test_jpg_is_the_same_format_as_jpeg(tmp_path: Path) -> None:
    assert verify_output(write(tmp_path, encoded("jpeg")), Variant("v", format="jpg"), SIZE)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "avif"])
def test_an_html_page_answered_200_is_refused(tmp_path: Path, fmt: str) -> None:
    detail = bad(write(tmp_path, faults.HTML_PAGE), Variant("full", format=fmt))
    assert "HTML" in detail and "'full'" in detail and fmt.upper() in detail


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "avif"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_a_cut_body_is_refused(tmp_path: Path, fmt: str, keep: float) -> None:
    data = encoded(fmt)
    detail = bad(write(tmp_path, data[: int(len(data) * keep)]), Variant("v", format=fmt))
    assert "'v'" in detail


def test_another_format_than_the_variants_is_refused(tmp_path: Path) -> None:
    detail = bad(write(tmp_path, encoded("jpeg")), Variant("full", format="png"))
    assert "is JPEG data" in detail


def test_garbage_and_empty_bodies_are_refused(tmp_path: Path) -> None:
    assert "not an image" in bad(write(tmp_path, b"\x00\x01garbage"), Variant("v"))
    assert "not an image" in bad(write(tmp_path, b""), Variant("v"))


def test_more_pixels_than_max_resolution_is_refused_before_decoding(tmp_path: Path) -> None:
    budget = RecordingBudget()
    path = write(tmp_path, encoded("png", (300, 200)))
    with pytest.raises(BadOutputError, match="60000 pixels, over its max_resolution of 10000"):
        verify_output(path, Variant("thumb", max_resolution=10_000), (300, 200), budget)
    assert budget.reserved == []  # refused from the header, nothing decoded


def test_rounding_by_up_to_two_pixels_a_side_is_accepted(tmp_path: Path) -> None:
    # 100x100 = 10000 allowed; 102x101 has 302 pixels more, within 2 px a side.
    path = write(tmp_path, encoded("png", (102, 101)))
    assert verify_output(path, Variant("v", max_resolution=10_000), (1000, 1000))
    # A 1000x667 input scaled to 120 wide: 80.04 exact, 78..82 within the slack.
    for height in (78, 80, 82):
        path = write(tmp_path, encoded("png", (120, height)))
        assert verify_output(path, Variant("v"), (1000, 667))
    path = write(tmp_path, encoded("png", (120, 84)))
    assert "not in the proportions of the 1000x667 input" in bad(path, Variant("v"), (1000, 667))


def test_a_rotated_or_distorted_output_is_refused_unless_autocrop(tmp_path: Path) -> None:
    path = write(tmp_path, encoded("png", (80, 120)))  # the 120x80 input turned on its side
    assert "not in the proportions" in bad(path, Variant("full"), SIZE)
    assert verify_output(path, Variant("thumb", autocrop=True), SIZE) == (80, 120)
    assert verify_output(path, Variant("full"), None) == (80, 120)  # input size unknown


def test_the_decode_runs_under_the_shared_pixel_budget(tmp_path: Path) -> None:
    budget = RecordingBudget()
    verify_output(write(tmp_path, encoded("webp")), Variant("v", format="webp"), SIZE, budget)
    assert budget.reserved == [SIZE[0] * SIZE[1]]


def test_truncated_images_allowed_process_wide_refuses_to_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        verify_output(write(tmp_path, encoded("png")), Variant("v"), SIZE)


@pytest.mark.parametrize(("orientation", "upright"), [(1, (120, 80)), (3, (120, 80)),
                                                      (6, (80, 120)), (8, (80, 120))])
def test_upright_size_applies_the_exif_orientation(
        tmp_path: Path, orientation: int, upright: tuple[int, int]) -> None:
    path = tmp_path / "in.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    subject_image(SIZE).convert("RGB").save(path, "JPEG", exif=exif.tobytes())
    assert upright_size(path) == upright


def test_upright_size_of_a_non_image_is_unknown(tmp_path: Path) -> None:
    assert upright_size(write(tmp_path, b"not an image", "in.jpg")) is None
    assert upright_size(tmp_path / "missing.jpg") is None


def test_what_the_emulator_renders_from_a_rotated_photo_passes(tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone held upright: stored 240x160, shown 160x240
    subject_image((240, 160)).convert("RGB").save(source, "JPEG", exif=exif.tobytes())
    variants = [Variant("full", format="png"), Variant("small", format="avif",
                                                       max_resolution=5_000),
                Variant("white", format="jpeg", background_color="#ffffff"),
                Variant("thumb", format="webp", max_resolution=4_096, autocrop=True)]
    specs = [RenderSpec(format=v.format, max_resolution=v.max_resolution,
                        background_color=v.background_color, autocrop=v.autocrop)
             for v in variants]
    # The daemon uploads the photo turned upright (job.normalize); the emulator, like the real
    # API may, ignores EXIF orientation: it renders what it got.
    uploaded = tmp_path / "upright.png"
    with Image.open(source) as photo:
        ImageOps.exif_transpose(photo).save(uploaded)
    for index, (variant, data) in enumerate(zip(variants, render_all(uploaded, specs),
                                                strict=True)):
        path = write(tmp_path, data, f"{index}.dl")
        width, height = verify_output(path, variant, upright_size(source))
        assert variant.autocrop or height > width  # upright, like the input as shown


class RecordingBudget(PixelBudget):
    """A pixel budget that records what was reserved."""

    def __init__(self) -> None:
        super().__init__(10**9)
        self.reserved: list[int] = []

    @contextlib.contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        self.reserved.append(pixels)
        with super().reserve(pixels):
            yield


def full_size_decode_refuses(data: bytes) -> bool:
    """The verdict of the check before issue 14: Pillow's decode at full size."""
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            image.load()
    except Exception:
        return True
    return False


CUTS = {"half": lambda d: d[: len(d) // 2], "90_percent": lambda d: d[: len(d) * 9 // 10],
        "before_eoi": lambda d: d[:-2], "inside_eoi": lambda d: d[:-1]}


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("cut", list(CUTS))
def test_a_cut_jpeg_is_refused_although_decoded_at_an_eighth(
        tmp_path: Path, progressive: bool, cut: str) -> None:
    data = CUTS[cut](photo_jpeg(progressive))
    assert full_size_decode_refuses(data)
    detail = bad(write(tmp_path, data), Variant("v", format="jpeg"), (333, 251))
    assert "does not decode fully: image file is truncated" in detail


def test_another_images_start_in_the_entropy_coded_data_is_refused(tmp_path: Path) -> None:
    data = bytearray(photo_jpeg(False))
    middle = (data.rfind(b"\xff\xda") + len(data)) // 2
    data[middle:middle + 4] = b"\xff\xd8\xff\xe0"
    detail = bad(write(tmp_path, bytes(data)), Variant("v", format="jpeg"), (333, 251))
    assert "does not decode fully: broken data stream" in detail


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_the_eighth_scale_decode_refuses_exactly_what_a_full_decode_refuses(
        tmp_path: Path, progressive: bool) -> None:
    variant = Variant("v", format="jpeg")
    verdicts = set()
    for index, data in enumerate(damaged_jpegs(photo_jpeg(progressive), 90, seed=14)):
        path = write(tmp_path, data, f"{index}.dl")
        refused = full_size_decode_refuses(data)
        verdicts.add(refused)
        if refused:
            bad(path, variant, (333, 251))
        else:  # libjpeg takes a damaged byte as a warning: both decodes pass it
            assert verify_output(path, variant, (333, 251)) == (333, 251)
    assert verdicts == {True, False}  # both kinds were met


def test_a_jpeg_output_is_decoded_at_an_eighth_of_each_side(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded_sizes = []
    load = JpegImagePlugin.JpegImageFile.load

    def spy(image: JpegImagePlugin.JpegImageFile) -> object:
        decoded_sizes.append(image.size)
        return load(image)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    path = write(tmp_path, photo_jpeg(False))
    assert verify_output(path, Variant("v", format="jpeg"), (333, 251)) == (333, 251)
    assert decoded_sizes == [(42, 32)]  # ceil(333 / 8), ceil(251 / 8)
