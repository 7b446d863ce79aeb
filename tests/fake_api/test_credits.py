"""The emulator charges credits by the public pricing, shows its balance, answers 402 when the
balance cannot pay a call (and charges nothing then)."""

from __future__ import annotations

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.fake_api.credits import Pricing, call_credits

from .conftest import Client, image_bytes

FULL = {"output_file_path": "out/full.png"}
THUMB = {"output_file_path": "out/thumb.webp", "format": "webp", "autocrop": True,
         "max_resolution": 250_000}
WHITE = {"output_file_path": "out/white.jpg", "format": "jpeg", "background_color": "#ffffff"}


def test_pricing_of_the_example_set() -> None:
    pricing = Pricing()
    one = call_credits(pricing, 400 * 300, [(12_000_000, False)])
    assert one == pytest.approx(0.5 + 0.6 * 120_000 / 25_000_000)
    three = call_credits(pricing, 400 * 300,
                         [(12_000_000, False), (250_000, True), (12_000_000, False)])
    assert three == pytest.approx(one + 0.25 * 2 + 0.5)
    # the resolution charged is the input's, capped at the largest max_resolution asked for
    big = call_credits(pricing, 40_000_000, [(12_000_000, False)])
    assert big == pytest.approx(0.5 + 0.6 * 12 / 25)


def test_a_process_call_is_charged_and_usage_shows_the_balance(
        client: Client, api: FakeApiServer) -> None:
    api.update(credits_balance=10)
    path = client.upload_ok(image_bytes())
    assert client.process(path, FULL, THUMB, WHITE).status_code == 200
    usage = client.usage().json()
    expected = call_credits(Pricing(), 400 * 300,
                            [(12_000_000, False), (250_000, True), (12_000_000, False)])
    assert usage["credits_charged"] == pytest.approx(expected)
    assert usage["credits_balance"] == pytest.approx(10 - expected)
    assert usage["charged_calls"] == 1


def test_a_call_the_balance_cannot_pay_is_402_and_free(
        client: Client, api: FakeApiServer) -> None:
    api.update(credits_balance=1.0)
    path = client.upload_ok(image_bytes())
    assert client.process(path, FULL).status_code == 200  # about 0.5
    response = client.process(path, FULL, THUMB)  # about 1.25: more than is left
    assert response.status_code == 402
    usage = client.usage().json()
    assert usage["charged_calls"] == 1
    assert usage["credits_balance"] == pytest.approx(1.0 - usage["credits_charged"])
    api.update(credits_balance=5)  # a top-up
    assert client.process(path, FULL, THUMB).status_code == 200


def test_unlimited_by_default_but_still_counted(client: Client) -> None:
    path = client.upload_ok(image_bytes())
    assert client.process(path, FULL).status_code == 200
    usage = client.usage().json()
    assert usage["credits_balance"] is None
    assert usage["credits_charged"] > 0
