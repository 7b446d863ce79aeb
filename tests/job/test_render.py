"""Local rendering (``job.render``) against the emulator's own rendering of each variant: from
the emulator's one full cutout, every variant kind comes out with the same dimensions, format,
background and autocrop box, and nearly the same pixels."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from bgcut_watchd.api import BackgroundCutClient
from bgcut_watchd.config.model import ApiConfig, Variant
from bgcut_watchd.errors import ServiceError
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.render import BadRenderError, master_variant, render_set, render_variant
from tests.support import API_KEY

KINDS = {  # variant -> bound of the mean absolute difference per channel (0..255)
    Variant("full"): 0.5,
    Variant("small", max_resolution=30_000): 1.0,
    Variant("white", format="jpeg", background_color="#ffffff", output_compression=85): 2.0,
    Variant("plainjpeg", format="jpeg"): 2.0,
    Variant("thumb", format="webp", max_resolution=40_000, autocrop=True): 3.0,
    Variant("crop", autocrop=True): 0.5,
    Variant("tinted", background_color="#204080"): 0.5,
    Variant("avif", format="avif", output_compression=70): 4.0,
}
MAGIC = {"png": b"\x89PNG", "jpeg": b"\xff\xd8\xff", "webp": b"WEBP", "avif": b"ftyp"}


def _input(path: Path) -> Path:
    image = Image.new("RGB", (480, 360), (30, 190, 40))
    draw = ImageDraw.Draw(image)
    draw.ellipse((150, 70, 390, 300), fill=(200, 40, 40))
    draw.rectangle((200, 120, 260, 200), fill=(240, 230, 20))
    image.save(path, "PNG")
    return path


def _emulator_outputs(emulator: FakeApiServer, tmp_path: Path,
                      variants: list[Variant]) -> list[Path]:
    client = BackgroundCutClient(ApiConfig(base_url=emulator.base_url), API_KEY)
    try:
        remote = client.upload(_input(tmp_path / "in.png"), "t/job", "in.png")
        wanted = [f"t/job/out/{i}-{v.name}.{v.ext}" for i, v in enumerate(variants)]
        outputs = client.process(remote, variants, wanted)
        paths = []
        for index, out in enumerate(outputs):
            local = tmp_path / f"api-{index}.{variants[index].ext}"
            client.download(out, local)
            paths.append(local)
        return paths
    finally:
        client.close()


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGBA"), b.convert("RGBA"))
    return sum(ImageStat.Stat(diff).mean) / 4


@pytest.fixture
def rendered(emulator: FakeApiServer, tmp_path: Path) -> dict[Variant, tuple[Path, Path]]:
    """Per variant: (the emulator's rendering, the local one from the emulator's cutout)."""
    kinds = list(KINDS)
    master = master_variant(kinds)
    paths = _emulator_outputs(emulator, tmp_path, [master, *kinds])
    out = tmp_path / "out"
    out.mkdir()
    local = [Path(p) for p in render_set(paths[0], kinds, out, "job1")]
    return {v: (api, mine) for v, api, mine in zip(kinds, paths[1:], local, strict=True)}


def test_local_rendering_matches_the_api_for_every_variant_kind(
        rendered: dict[Variant, tuple[Path, Path]], capsys: pytest.CaptureFixture[str]) -> None:
    report = []
    for variant, (api_path, local_path) in rendered.items():
        assert local_path.read_bytes()[:12].find(MAGIC[variant.format]) >= 0, variant.name
        with Image.open(api_path) as api, Image.open(local_path) as mine:
            assert mine.format == api.format, variant.name
            assert mine.size == api.size, variant.name
            if variant.background_color or variant.format == "jpeg":
                corners = [(0, 0), (mine.width - 1, 0), (0, mine.height - 1)]
                for xy in corners:
                    got, want = mine.convert("RGB").getpixel(xy), api.convert("RGB").getpixel(xy)
                    assert max(abs(g - w) for g, w in zip(got, want, strict=True)) <= 4
            diff = _mean_abs_diff(api, mine)
            report.append(f"{variant.name}: {mine.size} mean abs diff {diff:.3f}")
            assert diff <= KINDS[variant], (variant.name, diff)
    with capsys.disabled():
        print("\n" + "\n".join(report))


def test_autocrop_box_within_2px_of_the_api(emulator: FakeApiServer, tmp_path: Path) -> None:
    crop = Variant("crop", autocrop=True)
    paths = _emulator_outputs(emulator, tmp_path, [master_variant([crop]), Variant("full"), crop])
    with Image.open(paths[0]) as master, Image.open(paths[1]) as full:
        local_box = master.getchannel("A").getbbox()
        api_box = full.convert("RGBA").getchannel("A").getbbox()
        assert local_box is not None and api_box is not None
        assert max(abs(a - b) for a, b in zip(local_box, api_box, strict=True)) <= 2
        local = Image.open(io.BytesIO(render_variant(master.convert("RGBA"), crop)))
    with Image.open(paths[2]) as api_crop:
        assert local.size == api_crop.size


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
