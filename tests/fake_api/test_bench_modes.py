"""The benchmark knobs over real HTTP: ``prerendered`` outputs, and ``nagle`` on the socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bgcut_watchd.config.model import Variant
from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer, prerender
from bgcut_watchd.fake_api.handler import FakeApiHandler
from bgcut_watchd.fake_api.render import RenderSpec
from bgcut_watchd.job.verify import verify_output

from .conftest import Client, image_bytes

# the daemon's default three variants, as bench/naive.py asks for them
VARIANTS = (
    Variant("full", format="png"),
    Variant("thumb", format="webp", max_resolution=40000, quality="medium", autocrop=True),
    Variant("white", format="jpeg", background_color="#ffffff"),
)


def body(variant: Variant, output: str) -> dict[str, Any]:
    return {"output_file_path": output, "format": variant.format,
            "max_resolution": variant.max_resolution, "quality": variant.quality,
            "background_color": variant.background_color, "autocrop": variant.autocrop}


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many variants each real render of the prerendered mode rendered, call by call."""
    calls: list[int] = []
    real = prerender.render_decoded

    def counting(image: Image.Image, specs: Sequence[RenderSpec]) -> list[bytes]:
        calls.append(len(specs))
        return real(image, specs)

    monkeypatch.setattr(prerender, "render_decoded", counting)
    yield calls


def process_and_verify(client: Client, tmp_path: Path, data: bytes, name: str) -> list[bytes]:
    """Upload, process into VARIANTS, download, and pass each through the daemon's check."""
    stored = client.upload_ok(data, name=f"{name}.jpg")
    answer = client.process(stored, *(body(v, f"out/{name}.{v.name}") for v in VARIANTS))
    assert answer.status_code == 200, answer.text
    size = Image.open(client.api.local_path(stored)).size
    outputs = []
    for variant, remote in zip(VARIANTS, answer.json()["output_file_paths"], strict=True):
        download = client.download(remote)
        assert download.status_code == 200
        local = tmp_path / f"{name}.{variant.name}"
        local.write_bytes(download.content)
        width, height = verify_output(local, variant, size)
        if variant.autocrop:
            assert width * height <= variant.max_resolution
        else:
            assert (width, height) == size
        outputs.append(download.content)
    return outputs


def test_prerendered_outputs_pass_the_daemons_checks_and_render_once_per_size(
        client: Client, api: FakeApiServer, tmp_path: Path, renders: list[int]) -> None:
    assert client.session.post(client.url("/_control/"), json={"prerendered": True}).ok
    first = process_and_verify(client, tmp_path, image_bytes(size=(400, 300)), "a")
    second = process_and_verify(client, tmp_path, image_bytes(size=(400, 300)) + b"x", "b")
    assert renders == [3]  # the second input of that size cost no render
    assert second == first
    process_and_verify(client, tmp_path, image_bytes(size=(300, 400)), "c")
    assert renders == [3, 3]
    assert api.usage()["charged_calls"] == 3


def test_without_prerendered_every_input_is_rendered(
        client: Client, tmp_path: Path, renders: list[int]) -> None:
    process_and_verify(client, tmp_path, image_bytes(size=(400, 300)), "a")
    process_and_verify(client, tmp_path, image_bytes(size=(400, 300)) + b"x", "b")
    assert renders == []  # the normal path renders each input itself


def test_prerendered_still_refuses_what_is_not_an_image(client: Client) -> None:
    client.api.update(prerendered=True)
    stored = client.upload_ok(b"not an image at all", name="x.jpg")
    answer = client.process(stored, body(VARIANTS[0], "out/x.png"))
    assert answer.status_code == 400
    assert "Invalid image format" in answer.json()["detail"]


@pytest.mark.parametrize(("nagle", "nodelay"), [(False, True), (True, False)])
def test_nagle_leaves_tcp_nodelay_off_on_accepted_sockets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nagle: bool, nodelay: bool) -> None:
    seen: list[bool] = []
    real_setup = FakeApiHandler.setup

    def recording_setup(handler: FakeApiHandler) -> None:
        real_setup(handler)
        seen.append(bool(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))

    monkeypatch.setattr(FakeApiHandler, "setup", recording_setup)
    with FakeApiServer(FakeApiOptions(nagle=nagle), storage_dir=tmp_path / "s") as api:
        client = Client(api)
        assert client.usage().status_code == 200
        client.session.close()
    assert seen == [nodelay]
