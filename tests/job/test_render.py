"""Local rendering (``job.render``) against the emulator's own rendering of each variant.

Per input (a flat drawing and a seeded photo-like picture with grain and soft edges), the
emulator is called twice as the daemon would: once in local mode (ONE process call asking for
the master cutout, which ``job.render.render_set`` turns into every variant here) and once in
API mode (one process call asking for every variant). Each local rendering is then held to the
emulator's: same dimensions (an autocrop variant: the same box within 2 px), same format by
magic bytes, same background at the corners, and a bounded mean absolute pixel difference,
printed. The emulator and ``job.render`` share one rendering algorithm (crop, Lanczos, fill,
encoder settings): the comparison shows the pipeline is wired right, not that the real API
renders the same. The one real difference is ``quality``: the master is cut at the best
quality asked for, so the example set's ``medium`` thumbnail differs from the emulator's
``medium`` rendering; that difference is measured and bounded here (README, "Cost").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from bgcut_watchd.api import BackgroundCutClient
from bgcut_watchd.config import load_config
from bgcut_watchd.config.model import ApiConfig, Variant
from bgcut_watchd.errors import ServiceError
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.render import BadRenderError, fitted_size, master_variant, render_set
from tests.support import API_KEY, REPO

EXAMPLE = load_config(REPO / "config.example.toml").variants  # full, thumb (medium), white
SAME_QUALITY_BOUND = 0.25  # mean abs difference per channel (0..255), same cut on both sides
THUMB_BOUND = 5.0  # the example thumbnail: a `high` cut where the emulator cuts `medium`
KINDS = {  # variant -> bound of the mean absolute difference per channel
    EXAMPLE["full"]: SAME_QUALITY_BOUND,
    EXAMPLE["thumb"]: THUMB_BOUND,
    EXAMPLE["white"]: SAME_QUALITY_BOUND,
    Variant("small", max_resolution=30_000): SAME_QUALITY_BOUND,
    Variant("plainjpeg", format="jpeg", max_resolution=100_000): SAME_QUALITY_BOUND,
    Variant("crop", autocrop=True): SAME_QUALITY_BOUND,
    Variant("smallcrop", format="webp", max_resolution=20_000, autocrop=True):
        SAME_QUALITY_BOUND,
    Variant("tinted", background_color="#204080", max_resolution=200_000): SAME_QUALITY_BOUND,
    Variant("avif", format="avif", output_compression=70, max_resolution=60_000):
        SAME_QUALITY_BOUND,
}
MAGIC = {"png": b"\x89PNG", "jpeg": b"\xff\xd8\xff", "webp": b"WEBP", "avif": b"ftyp"}
SIZE = (800, 600)
Box = tuple[int, int, int, int]


def flat_drawing(size: tuple[int, int]) -> Image.Image:
    """Plain colours, hard edges."""
    width, height = size
    image = Image.new("RGB", size, (30, 190, 40))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 5 // 16, height // 5, width * 13 // 16, height * 5 // 6),
                 fill=(200, 40, 40))
    draw.rectangle((width * 5 // 12, height // 3, width * 13 // 24, height * 5 // 9),
                   fill=(240, 230, 20))
    return image


def photo_like(size: tuple[int, int], seed: int = 13) -> Image.Image:
    """A seeded photo-like picture: a graded backdrop with grain, a graded subject with grain
    and soft (blurred) edges, where the cut's threshold and feathering decide the mask."""
    width, height = size
    grain = Image.frombytes("L", size, random.Random(seed).randbytes(width * height))
    grain_rgb = grain.convert("RGB")
    ramp = Image.linear_gradient("L").resize(size)
    backdrop = Image.merge("RGB", [ramp.point(lambda v: 60 + v // 12),
                                   ramp.point(lambda v: 140 + v // 16),
                                   ramp.point(lambda v: 90 - v // 16)])
    across = Image.linear_gradient("L").rotate(90).resize(size)
    subject = Image.merge("RGB", [across.point(lambda v: 150 + v // 3),
                                  across.point(lambda v: 30 + v // 2), Image.new("L", size, 40)])
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    draw.ellipse((width // 4, height // 5, width * 3 // 4, height * 4 // 5), fill=255)
    draw.rectangle((width * 9 // 20, height // 10, width * 11 // 20, height // 2), fill=255)
    return Image.composite(Image.blend(subject, grain_rgb, 0.12),
                           Image.blend(backdrop, grain_rgb, 0.08),
                           mask.filter(ImageFilter.GaussianBlur(4)))


INPUTS = {"flat": flat_drawing, "photo": photo_like}


@dataclass(frozen=True)
class Rendered:
    """One variant as the emulator rendered it (API mode) and as ``job.render`` did (local
    mode), with the box each autocrop was taken from (input coordinates) or None."""

    variant: Variant
    api: Path
    local: Path
    api_box: Box | None
    local_box: Box | None


def _fetch(client: BackgroundCutClient, remote: str, variants: list[Variant],
           prefix: str, into: Path) -> list[Path]:
    """One real process call asking for ``variants``; their files downloaded into ``into``."""
    wanted = [f"{prefix}/{i}-{v.name}.{v.ext}" for i, v in enumerate(variants)]
    paths = []
    for index, out in enumerate(client.process(remote, variants, wanted)):
        local = into / f"{prefix.replace('/', '-')}-{index}.{variants[index].ext}"
        client.download(out, local)
        paths.append(local)
    return paths


def _uncropped(variant: Variant) -> Variant:
    """The autocrop variant's twin: same quality, not cropped, not scaled, lossless (its alpha
    box is where the emulator cut ``variant`` from)."""
    return Variant(f"{variant.name}-uncropped", quality=variant.quality,
                   max_resolution=25_000_000)


def _alpha_box(path: Path) -> Box:
    with Image.open(path) as image:
        box = image.convert("RGBA").getchannel("A").getbbox()
    assert box is not None, path
    return box


def render_both(emulator: FakeApiServer, tmp_path: Path, picture: Image.Image,
                kinds: list[Variant]) -> list[Rendered]:
    """Every kind rendered by the emulator (API mode) and locally from its master."""
    picture.save(tmp_path / "in.png", "PNG")
    client = BackgroundCutClient(ApiConfig(base_url=emulator.base_url), API_KEY)
    try:
        remote = client.upload(tmp_path / "in.png", "t/job", "in.png")
        [master] = _fetch(client, remote, [master_variant(kinds)], "t/local", tmp_path)
        twins = [_uncropped(v) for v in kinds if v.autocrop]
        api = _fetch(client, remote, [*kinds, *twins], "t/api", tmp_path)
    finally:
        client.close()
    out = tmp_path / "out"
    out.mkdir()
    local = [Path(p) for p in render_set(master, kinds, out, "job1")]
    twin_boxes = iter(_alpha_box(p) for p in api[len(kinds):])
    return [Rendered(v, api_path, local_path,
                     next(twin_boxes) if v.autocrop else None,
                     _alpha_box(master) if v.autocrop else None)
            for v, api_path, local_path in zip(kinds, api, local, strict=False)]


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (RGBA, 0..255) of two images of one size."""
    diff = ImageChops.difference(a.convert("RGBA"), b.convert("RGBA"))
    return sum(ImageStat.Stat(diff).mean) / 4


def _aligned(item: Rendered, api: Image.Image, mine: Image.Image) -> tuple[Image.Image,
                                                                            Image.Image]:
    """The two renderings over the same pixels of the input: as they are when of one size;
    two unscaled autocrops of different boxes cut to the boxes' intersection."""
    if api.size == mine.size:
        return api, mine
    assert item.api_box is not None and item.local_box is not None, item.variant.name
    unscaled = (api.size == _size(item.api_box) and mine.size == _size(item.local_box))
    assert unscaled, f"{item.variant.name}: scaled autocrops of different boxes"
    common = (max(item.api_box[0], item.local_box[0]), max(item.api_box[1], item.local_box[1]),
              min(item.api_box[2], item.local_box[2]), min(item.api_box[3], item.local_box[3]))
    return _cut(api, item.api_box, common), _cut(mine, item.local_box, common)


def _size(box: Box) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def _cut(image: Image.Image, box: Box, common: Box) -> Image.Image:
    return image.crop((common[0] - box[0], common[1] - box[1],
                       common[2] - box[0], common[3] - box[1]))


def check_pair(item: Rendered) -> float:
    """Assert everything but the pixel bound; return the mean absolute difference."""
    variant, name = item.variant, item.variant.name
    for path in (item.api, item.local):
        assert MAGIC[variant.format] in path.read_bytes()[:12], (name, path.name)
    with Image.open(item.api) as api, Image.open(item.local) as mine:
        assert mine.format == api.format, name
        if item.api_box is None or item.local_box is None:
            assert mine.size == api.size, name
        else:
            assert max(abs(a - b) for a, b in zip(item.api_box, item.local_box,
                                                  strict=True)) <= 2, name
            # each output is its box, scaled: the box really is where it was cut from
            assert api.size == fitted_size(*_size(item.api_box), variant.max_resolution), name
            assert mine.size == fitted_size(*_size(item.local_box), variant.max_resolution)
        _check_corners(variant, api, mine)
        return mean_abs_diff(*_aligned(item, api, mine))


def _check_corners(variant: Variant, api: Image.Image, mine: Image.Image) -> None:
    """An opaque variant's corners are its background colour (white for a plain JPEG) on both
    sides; a transparent one's corners are transparent on both (unless cropped to them)."""
    corners = [(0, 0), (mine.width - 1, 0), (0, mine.height - 1),
               (mine.width - 1, mine.height - 1)]
    if variant.background_color or variant.format == "jpeg":
        want = bytes.fromhex((variant.background_color or "#ffffff")[1:])
        for image in (api, mine):
            rgb = image.convert("RGB")
            for xy in corners:
                got = rgb.getpixel(xy)
                assert isinstance(got, tuple), variant.name
                assert max(abs(g - w) for g, w in zip(got, want, strict=True)) <= 6, (
                    variant.name, xy, got)
    elif not variant.autocrop:
        for image in (api, mine):
            alpha = image.convert("RGBA").getchannel("A")
            assert [alpha.getpixel(xy) for xy in corners] == [0] * 4, variant.name


@pytest.mark.parametrize("picture", sorted(INPUTS))
def test_local_rendering_matches_the_emulator_for_every_variant_kind(
        emulator: FakeApiServer, tmp_path: Path, picture: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    rendered = render_both(emulator, tmp_path, INPUTS[picture](SIZE), list(KINDS))
    report, over = [], []
    for item in rendered:
        diff = check_pair(item)
        report.append(f"{picture} {item.variant.name} ({item.variant.quality}): "
                      f"mean abs diff {diff:.3f} (bound {KINDS[item.variant]})")
        if diff > KINDS[item.variant]:
            over.append((item.variant.name, diff))
    with capsys.disabled():
        print("\n" + "\n".join(report))
    assert over == []


def test_the_example_thumbnail_differs_from_the_emulator_s_medium_rendering_by_the_readme_s_figure(
        emulator: FakeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """README, "Cost": the example set's `medium` thumbnail, cut `high` for the master, against
    the emulator's own `medium` rendering of it, on the photo-like input."""
    example = [EXAMPLE["full"], EXAMPLE["thumb"], EXAMPLE["white"]]
    assert EXAMPLE["thumb"].quality == "medium" and master_variant(example).quality == "high"
    thumb = render_both(emulator, tmp_path, photo_like(SIZE), example)[1]
    diff = check_pair(thumb)
    with capsys.disabled():
        print(f"\nexample thumbnail ({SIZE[0]}x{SIZE[1]} photo-like input): mean abs diff "
              f"{diff:.2f} per channel against the emulator's medium rendering, boxes "
              f"{thumb.local_box} (high) vs {thumb.api_box} (medium)")
    assert 2.0 <= diff <= THUMB_BOUND  # README: 3.95 (the flat drawing: 0.23)
    (tmp_path / "same").mkdir()
    same = render_both(emulator, tmp_path / "same", photo_like(SIZE),
                       [EXAMPLE["full"], replace(EXAMPLE["thumb"], quality="high")])[1]
    assert check_pair(same) <= SAME_QUALITY_BOUND  # so the difference is the quality's


def test_the_master_asks_for_the_largest_resolution_and_best_quality() -> None:
    master = master_variant([Variant("a", max_resolution=40_000, quality="low"),
                             Variant("b", format="jpeg", quality="medium")])
    assert (master.format, master.max_resolution, master.quality) == ("png", 12_000_000,
                                                                      "medium")
    assert (master.background_color, master.autocrop) == (None, False)


def test_a_master_that_is_not_a_png_is_dropped_and_blamed_on_the_service(
        tmp_path: Path) -> None:
    master = tmp_path / ".bgcut-job1-0.part"
    master.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, no image
    with pytest.raises(BadRenderError) as raised:
        render_set(master, [Variant("full")], tmp_path, "job1")
    assert isinstance(raised.value, ServiceError)  # retried, never quarantined
    assert not master.exists()  # the retry downloads it again
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_each_rendered_file_goes_through_finish_before_it_becomes_a_part(
        tmp_path: Path) -> None:
    master = tmp_path / ".bgcut-job1-0.part"
    Image.new("RGBA", (40, 30), (10, 200, 30, 255)).save(master, "PNG")
    variants = [Variant("full"), Variant("white", format="jpeg", background_color="#ffffff")]
    seen: list[tuple[str, str, bool]] = []

    def finish(path: Path, variant: Variant) -> None:  # what the job stamps and verifies
        seen.append((path.name, variant.name, path.read_bytes()[:2] in (b"\x89P", b"\xff\xd8")))

    parts = render_set(master, variants, tmp_path, "job1", finish=finish)
    assert seen == [(".bgcut-job1-1.dl", "full", True), (".bgcut-job1-2.dl", "white", True)]
    assert [Path(p).name for p in parts] == [".bgcut-job1-1.part", ".bgcut-job1-2.part"]


def test_a_rendered_file_that_fails_its_verification_drops_the_master(tmp_path: Path) -> None:
    master = tmp_path / ".bgcut-job1-0.part"
    Image.new("RGBA", (40, 30), (10, 200, 30, 255)).save(master, "PNG")

    def finish(path: Path, variant: Variant) -> None:
        raise BadRenderError("download", f"rendered {variant.name}: too many pixels")

    with pytest.raises(BadRenderError):
        render_set(master, [Variant("full")], tmp_path, "job1", finish=finish)
    assert not master.exists()  # a retry fetches the cutout again
    assert not list(tmp_path.glob("*.part"))  # nothing unverified can be published
