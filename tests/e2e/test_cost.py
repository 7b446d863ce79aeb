"""Paying for less, end to end: ``render = "local"`` asks the emulator for one cutout per input
and renders the example variant set here: about a third of the credits of ``render = "api"``
for small inputs (34 % at 640x480, measured), approaching half for large ones (44 % at 12 MP,
the example set's largest ``max_resolution``, by the same formula)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.fake_api.credits import Pricing, call_credits
from tests.e2e.test_crash import block_publishing
from tests.hostile import make_valid_jpeg
from tests.support import (
    DaemonProcess,
    InProcessDaemon,
    all_requests,
    assert_outbox_complete_and_decodable,
    files_under,
    job_dirs,
    journals,
    wait_for,
    write_config,
)

SIZE = (640, 480)
INPUTS = 3


def _run_set(tmp_path: Path, emulator: FakeApiServer, render: str) -> float:
    """Process INPUTS images with the example variant set; return the credits charged."""
    root = tmp_path / render
    config = write_config(root, emulator.base_url, folder={"render": render})
    before = emulator.usage()["credits_charged"]
    with InProcessDaemon(config):
        for n in range(INPUTS):
            make_valid_jpeg(root / "studio" / "inbox", f"p{n}.jpg", size=SIZE)
        wait_for(lambda: len(files_under(root / "studio" / "archive")) == INPUTS,
                 what="every input archived")
    outbox = root / "studio" / "outbox"
    assert len(files_under(outbox)) == 3 * INPUTS
    for path in files_under(outbox):
        with Image.open(path) as image:
            image.load()
    return float(emulator.usage()["credits_charged"]) - float(before)


def _ok(emulator: FakeApiServer, endpoint: str) -> int:
    return sum(1 for r in emulator.requests() if r.endpoint == endpoint and r.status == 200)


def test_local_render_sends_one_variant_per_input(tmp_path: Path,
                                                  emulator: FakeApiServer) -> None:
    charged = _run_set(tmp_path, emulator, "local")
    assert (_ok(emulator, "upload"), _ok(emulator, "process"), _ok(emulator, "download")) == (
        INPUTS, INPUTS, INPUTS)
    one_variant = call_credits(Pricing(), SIZE[0] * SIZE[1], [(12_000_000, False)])
    assert charged == pytest.approx(INPUTS * one_variant)
    calls = [r for r in emulator.requests() if r.endpoint == "process"]
    assert [(r.variants, r.credits) for r in calls] == [(1, pytest.approx(one_variant))] * INPUTS
    outbox = tmp_path / "local" / "studio" / "outbox"
    with Image.open(outbox / "p0.thumb.webp") as thumb, Image.open(outbox / "p0.full.png") as full:
        assert thumb.format == "WEBP" and full.format == "PNG"
        assert thumb.width * thumb.height <= 40_000 and full.size == SIZE
    with Image.open(outbox / "p0.white.jpg") as white:
        assert white.format == "JPEG" and white.convert("RGB").getpixel((0, 0)) >= (250,) * 3


def test_local_render_costs_a_third_of_api_render_for_small_inputs(
        tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    api = _run_set(tmp_path, emulator, "api")
    local = _run_set(tmp_path, emulator, "local")
    calls = [r for r in emulator.requests() if r.endpoint == "process"]
    assert [r.variants for r in calls] == [3] * INPUTS + [1] * INPUTS  # api, then local
    assert sum(r.credits or 0.0 for r in calls) == pytest.approx(api + local)
    with capsys.disabled():
        print(f"\ncredits for {INPUTS} inputs of {SIZE[0]}x{SIZE[1]}, example set: "
              f"api {api:.3f}, local {local:.3f} ({local / api:.0%})")
    assert (round(api, 2), round(local, 2)) == (4.52, 1.52)  # README, "Cost"
    assert round(local / api, 2) == 0.34


def test_local_render_approaches_half_of_api_render_for_large_inputs() -> None:
    """The example set by the emulator's formula: full and white at 12 MP, the thumbnail
    autocropped. API mode pays the first variant + 2 x 0.25 + 0.5; local mode the first only."""
    api_set = [(12_000_000, False), (250_000, True), (12_000_000, False)]
    ratios = {pixels: call_credits(Pricing(), pixels, [(12_000_000, False)])
              / call_credits(Pricing(), pixels, api_set) for pixels in (SIZE[0] * SIZE[1],
                                                                       12_000_000, 24_000_000)}
    assert [round(r, 2) for r in ratios.values()] == [0.34, 0.44, 0.44]  # capped at 12 MP


def test_a_local_render_job_killed_after_rendering_resumes_without_any_api_call(
        tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url,
                          folder={"render": "local", "on_conflict": "overwrite"})
    root = tmp_path / "studio"
    inbox = root / "inbox"
    (inbox / "sub").mkdir(parents=True)
    unblock = block_publishing(root)
    make_valid_jpeg(inbox / "sub", "shot.jpg")
    with DaemonProcess(config) as first:
        wait_for(lambda: [r["state"] for r in journals(inbox)] == ["downloaded"],
                 what="the job journaled as downloaded")
        first.kill9()
    assert [e.endpoint for e in all_requests(emulator)] == ["upload", "process", "download"]
    temps = sorted(p.name for p in (root / "outbox" / "sub").iterdir() if p.is_file())
    # the rendered set; and the master cutout (0.part) when the kill fell between the journal
    # saying "downloaded" and the master's removal: the resumed job removes it on publishing
    rendered = [name.rsplit("-", 1)[1] for name in temps]
    assert rendered in (["1.part", "2.part", "3.part"], ["0.part", "1.part", "2.part", "3.part"])
    unblock()
    with DaemonProcess(config) as second:
        wait_for(lambda: len(files_under(root / "archive")) == 1 and not job_dirs(inbox),
                 what="the resumed job archived")
        assert second.terminate() == 0
    assert len(all_requests(emulator)) == 3  # nothing uploaded, processed or fetched again
    assert_outbox_complete_and_decodable(root / "outbox", ["sub/shot.jpg"])  # no temp left
