"""Normalisation before the upload (job.normalize, job.colour): the plan, the conversions, the
encodings chosen within the byte limit, and the journaled upload a resume sends again."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from bgcut_watchd.errors import LocalInputError
from bgcut_watchd.job import normalize
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.normalize import Limits, decide, normalised, upload_for, write_within
from bgcut_watchd.job.pixelbudget import PixelBudget
from bgcut_watchd.job.validate import validate_input
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea
from tests.devices.corpus import (
    SIZE,
    adobe_rgb_jpeg,
    heic_nclx_p3,
    heic_nclx_srgb,
    heic_phone,
    jpeg_oriented,
    scene,
    tiff_three_pages,
    ycck_jpeg,
)
from tests.hostile import make_valid_jpeg

LIMITS = Limits(max_bytes=10**7, max_pixels=10**7)


def _checked(path: Path):  # type: ignore[no-untyped-def]
    return validate_input(path, max_bytes=10**7, max_pixels=10**7)


def _claimed(tmp_path: Path, make) -> ClaimedJob:  # type: ignore[no-untyped-def]
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    made = make(inbox)
    job = WorkArea(inbox).claim("studio", inbox / made.name)
    assert job is not None
    return job


@pytest.mark.parametrize(("make", "words"), [
    (heic_phone, "HEIC → PNG, rotated 90°, Display P3 → sRGB"),
    (heic_nclx_p3, "HEIC → PNG, Display P3 (nclx) → sRGB"),
    (heic_nclx_srgb, "HEIC → PNG"),  # converted for its format only: the colours stay
    (tiff_three_pages, "TIFF → PNG, 3 pages → 3 jobs"),
    (adobe_rgb_jpeg, "JPEG → PNG, Adobe RGB (1998) → sRGB"),
    (jpeg_oriented(8), "JPEG → PNG, rotated 270°"),
    (ycck_jpeg, "JPEG → PNG, YCCK (no profile) → sRGB"),
    (jpeg_oriented(1), "none: uploaded byte for byte"),
])
def test_the_plan_in_words(tmp_path: Path, make, words: str) -> None:  # type: ignore[no-untyped-def]
    made = make(tmp_path)
    assert decide(_checked(tmp_path / made.name)).describe() == words


def test_an_embedded_srgb_profile_or_a_damaged_one_changes_nothing(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    scene((200, 40, 60)).save(tmp_path / "tagged.jpg", "JPEG", icc_profile=srgb)
    scene((200, 40, 60)).save(tmp_path / "damaged.png", "PNG", icc_profile=b"not a profile")
    for name in ("tagged.jpg", "damaged.png"):
        assert not decide(_checked(tmp_path / name)).convert, name


def test_sixteen_bit_values_are_scaled_not_clipped() -> None:
    deep = Image.new("I;16", (4, 4), 40000)
    assert normalised(deep, None).getpixel((0, 0)) in (155, 156)  # 40000 / 257


def test_png_first_then_jpeg_95_without_subsampling_for_an_opaque_image(tmp_path: Path) -> None:
    noisy = Image.effect_noise((200, 150), 80).convert("RGB")
    png = write_within(noisy, tmp_path, "a", 10**7)
    assert (png.ext, png.words.startswith("PNG (lossless)")) == ("png", True)
    jpeg = write_within(noisy, tmp_path, "b", png.path.stat().st_size - 1)
    assert jpeg.words.startswith("JPEG quality 95, 4:4:4")
    with Image.open(jpeg.path) as image:
        assert isinstance(image, JpegImagePlugin.JpegImageFile)
        assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4
        assert image.quantization[0][0] <= 2  # type: ignore[index]  # quality 95's table


def test_an_image_with_transparency_falls_back_to_lossless_webp(tmp_path: Path) -> None:
    noisy = Image.effect_noise((200, 150), 80).convert("RGBA")
    noisy.putalpha(Image.linear_gradient("L").resize((200, 150)))
    png_bytes = len(_png(noisy))
    webp = write_within(noisy, tmp_path, "c", png_bytes - 1)
    assert webp.ext == "webp"
    with Image.open(webp.path) as image:
        assert image.convert("RGBA").tobytes() == noisy.tobytes()  # lossless, alpha kept


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=normalize.PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def test_too_large_when_no_encoding_fits(tmp_path: Path) -> None:
    with pytest.raises(LocalInputError) as raised:
        write_within(Image.effect_noise((200, 150), 80).convert("RGB"), tmp_path, "d", 1000)
    assert raised.value.reason == "too_large"
    assert "daemon.max_input_bytes" in raised.value.detail
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary left


def test_an_accepted_upright_srgb_file_is_uploaded_as_it_is(tmp_path: Path) -> None:
    job = _claimed(tmp_path, lambda inbox: make_valid_jpeg(inbox, "plain.jpg"))
    path, name = upload_for(job, _checked(job.input_path), LIMITS, lambda _: None)
    assert (path, name, job.record.upload_file) == (job.input_path, "plain.jpg", None)


def test_the_converted_upload_is_journaled_and_sent_again_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = _claimed(tmp_path, jpeg_oriented(6))
    said: list[str] = []
    path, name = upload_for(job, _checked(job.input_path), LIMITS, said.append)
    assert (path.name, name) == ("upload.png", "phone-o6.png")
    assert (job.record.upload_file, job.record.normalized) == (
        "upload.png", "JPEG → PNG, rotated 90°")
    assert said[0].startswith("normalised: JPEG → PNG, rotated 90°; uploading PNG (lossless)")
    with Image.open(path) as image:
        assert image.size == SIZE and image.getexif().get(0x0112) is None
    sent = path.read_bytes()

    job.release()  # as a crash would: the next start recovers the job from its journal
    resumed = WorkArea(tmp_path / "inbox").recover("studio")
    assert [j.record.state for j in resumed] == [JobState.CLAIMED]
    monkeypatch.setattr(normalize, "write_within", _must_not_convert)
    again, _ = upload_for(resumed[0], _checked(resumed[0].input_path), LIMITS, said.append)
    assert (again, again.read_bytes()) == (path, sent)


def _must_not_convert(*args: object, **kwargs: object) -> None:
    raise AssertionError("converted again on resume")


def test_a_conversion_holds_twice_the_pixels_of_the_decode_budget(tmp_path: Path) -> None:
    reserved: list[int] = []

    class Spy(PixelBudget):
        def reserve(self, pixels: int):  # type: ignore[no-untyped-def, override]
            reserved.append(pixels)
            return super().reserve(pixels)

    job = _claimed(tmp_path, jpeg_oriented(3))
    limits = Limits(10**7, 10**7, Spy(16_000_000))
    upload_for(job, _checked(job.input_path), limits, lambda _: None)
    assert reserved == [2 * SIZE[0] * SIZE[1]]


def test_a_palette_with_transparency_keeps_it_through_a_profile() -> None:
    from tests.devices.icc import adobe_rgb_profile

    palette = scene((140, 240, 100)).quantize(4)
    clear = palette.getpixel((2, 60))
    palette.info["transparency"] = clear  # the background colour's entry, as a GIF has it
    converted = normalised(palette, adobe_rgb_profile())
    assert converted.mode == "RGBA"
    assert converted.getpixel((2, 60))[3] == 0  # type: ignore[index]  # background: clear
    assert converted.getpixel((48, 32))[:3] != (140, 240, 100)  # type: ignore[index]
