"""api-v3.md, "Credits": "A 400 is not charged". Every process call the emulator answers with
a 4xx leaves ``credits_charged``, ``charged_calls`` and the balance as they were, whichever
check refuses it, including those only found while storing the outputs (a stored file in the
way of an output's folder, a folder where an output should go) and, in the benchmark's
``prerendered`` mode, an input whose header reads but whose pixels do not decode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from bgcut_watchd.fake_api import FakeApiServer

from .conftest import PROCESS_URL, Client, image_bytes

FULL = {"output_file_path": "out/full.png"}
Send = Callable[[], requests.Response]
Refused = Callable[[Client, str], Send]  # set the case up (paid or not), return its refused call


def _file_in_the_way(client: Client, path: str) -> Send:
    # the uploaded input is a file: nothing can be stored in a folder of its name
    return lambda: client.process(path, FULL, {"output_file_path": f"{path}/cut.png"})


def _folder_in_the_way(client: Client, path: str) -> Send:
    assert client.process(path, {"output_file_path": "taken/a.png"}).status_code == 200
    return lambda: client.process(path, {"output_file_path": "taken"})


def _malformed_json(client: Client, path: str) -> Send:
    return lambda: client.session.post(client.url(PROCESS_URL), data=b"{", timeout=30,
                                       headers={"Content-Type": "application/json"})


def _bad_field(client: Client, path: str) -> Send:
    return lambda: client.process(path, {"output_file_path": "out/x.png", "quality": "ultra"})


def _missing_input(client: Client, path: str) -> Send:
    return lambda: client.process("no/such/file.jpg", FULL)


def _not_an_image(client: Client, path: str) -> Send:
    junk = client.upload_ok(b"not an image at all", name="x.jpg")
    return lambda: client.process(junk, FULL)


REFUSED: dict[str, tuple[Refused, int]] = {
    "a stored file in the way of the output's folder": (_file_in_the_way, 400),
    "a folder where the output should go": (_folder_in_the_way, 400),
    "malformed JSON": (_malformed_json, 400),
    "an invalid field": (_bad_field, 400),
    "an input that does not exist": (_missing_input, 404),
    "an input that is not an image": (_not_an_image, 400),
}


def _account(client: Client) -> dict[str, Any]:
    usage: dict[str, Any] = client.usage().json()
    return {k: usage[k] for k in ("credits_balance", "credits_charged", "charged_calls")}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_process_call_is_not_charged(client: Client, api: FakeApiServer,
                                               case: str) -> None:
    api.update(credits_balance=10)
    path = client.upload_ok(image_bytes())
    refuse, status = REFUSED[case]
    send = refuse(client, path)
    before = _account(client)
    response = send()
    assert response.status_code == status, response.text
    assert _account(client) == before
    assert client.process(path, FULL).status_code == 200  # and the next good call is
    assert _account(client)["charged_calls"] == before["charged_calls"] + 1


def test_prerendered_an_input_whose_pixels_do_not_decode_is_not_charged(
        client: Client, api: FakeApiServer) -> None:
    api.update(credits_balance=10, prerendered=True)
    whole = image_bytes("PNG")
    path = client.upload_ok(whole[: len(whole) // 3], name="cut.png")  # header, no pixels
    before = _account(client)
    response = client.process(path, FULL)
    assert response.status_code == 400, response.text
    assert _account(client) == before
