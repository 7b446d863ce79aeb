"""Validation of the process body, field by field (api-v3.md table)."""

from __future__ import annotations

from typing import Any

import pytest

from bgcut_watchd.fake_api.render import RenderSpec
from bgcut_watchd.fake_api.variants import parse_process_request


def body(**variant: Any) -> dict[str, Any]:
    return {"input_file_path": "p/in.jpg", "output_variants": [{"output_file_path": "p/o.png",
                                                                **variant}]}


def test_defaults_follow_the_api_table() -> None:
    request = parse_process_request(body())
    assert request.input_file_path == "p/in.jpg"
    (variant,) = request.variants
    assert variant.output_file_path == "p/o.png"
    assert variant.spec == RenderSpec(
        format="png", max_resolution=12_000_000, quality="high", background_color=None,
        output_compression=85, autocrop=False,
    )


def test_every_field_is_taken_in_order() -> None:
    raw = {"input_file_path": "a/b.png", "output_variants": [
        {"output_file_path": "a/1.webp", "format": "webp", "max_resolution": 4096,
         "quality": "low", "background_color": "#A0b0C0", "output_compression": 1,
         "autocrop": True},
        {"output_file_path": "a/2.jpg", "format": "jpg", "max_resolution": 25_000_000,
         "output_compression": 100},
    ]}
    first, second = parse_process_request(raw).variants
    assert first.spec == RenderSpec("webp", 4096, "low", "#A0b0C0", 1, True)
    assert (second.output_file_path, second.spec.format) == ("a/2.jpg", "jpg")


@pytest.mark.parametrize(
    ("variant", "field"),
    [
        ({"format": "gif"}, "format"),
        ({"format": "PNG"}, "format"),
        ({"max_resolution": 4095}, "max_resolution"),
        ({"max_resolution": 25_000_001}, "max_resolution"),
        ({"max_resolution": 5000.0}, "max_resolution"),
        ({"max_resolution": True}, "max_resolution"),
        ({"quality": "ultra"}, "quality"),
        ({"background_color": "red"}, "background_color"),
        ({"background_color": "#12345"}, "background_color"),
        ({"background_color": "#gggggg"}, "background_color"),
        ({"output_compression": 0}, "output_compression"),
        ({"output_compression": 101}, "output_compression"),
        ({"output_compression": "85"}, "output_compression"),
        ({"autocrop": "yes"}, "autocrop"),
        ({"autocrop": 1}, "autocrop"),
        ({"output_file_path": ""}, "output_file_path"),
        ({"output_file_path": "/abs.png"}, "output_file_path"),
        ({"output_file_path": "a/../b.png"}, "output_file_path"),
        ({"output_file_path": 5}, "output_file_path"),
        ({"colour": "#ffffff"}, "unknown field"),
    ],
)
def test_bad_variant_fields_are_named(variant: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_process_request(body(**variant))


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "JSON object"),
        ({"output_variants": [{"output_file_path": "a"}]}, "input_file_path"),
        ({"input_file_path": "", "output_variants": [{"output_file_path": "a"}]},
         "input_file_path"),
        ({"input_file_path": "a"}, "output_variants"),
        ({"input_file_path": "a", "output_variants": []}, "output_variants"),
        ({"input_file_path": "a", "output_variants": ["x"]}, r"output_variants\[0\]"),
        ({"input_file_path": "a", "output_variants": [{}]}, "output_file_path"),
        ({"input_file_path": "a", "output_variants": [{"output_file_path": "b"}], "x": 1},
         "unknown field"),
    ],
)
def test_bad_bodies_are_named(raw: Any, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_process_request(raw)
