"""Validation of the process call's JSON body, field by field, per api-v3.md.

Every problem is a ``ValueError`` whose message is the client-facing 400 ``detail``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bgcut_watchd.fake_api.paths import validate_remote_path
from bgcut_watchd.fake_api.render import (
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    OUTPUT_FORMATS,
    QUALITIES,
    RenderSpec,
)

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_BODY_FIELDS = frozenset({"input_file_path", "output_variants"})
_VARIANT_FIELDS = frozenset(
    {"output_file_path", "format", "max_resolution", "quality", "background_color",
     "output_compression", "autocrop"}
)


@dataclass(frozen=True)
class OutputVariant:
    """One requested output: where to store it and how to render it."""

    output_file_path: str
    spec: RenderSpec


@dataclass(frozen=True)
class ProcessRequest:
    """A validated ``POST /v3/tools/ai/remove-bg/process/`` body."""

    input_file_path: str
    variants: tuple[OutputVariant, ...]


def parse_process_request(body: object) -> ProcessRequest:
    """Validate a decoded JSON body.

    Raises:
        ValueError: the first problem found, as a client-facing message.
    """
    if not isinstance(body, dict):
        raise ValueError("Request body must be a JSON object")
    _reject_unknown(body, _BODY_FIELDS, "")
    if "input_file_path" not in body:
        raise ValueError("input_file_path: this field is required")
    input_path = validate_remote_path(body["input_file_path"], "input_file_path")
    raw_variants = body.get("output_variants")
    if not isinstance(raw_variants, list) or not raw_variants:
        raise ValueError("output_variants: must be a non-empty list")
    variants = tuple(
        _parse_variant(raw, f"output_variants[{index}]") for index, raw in enumerate(raw_variants)
    )
    return ProcessRequest(input_file_path=input_path, variants=variants)


def _reject_unknown(data: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}unknown field(s): {', '.join(unknown)}")


def _parse_variant(raw: object, where: str) -> OutputVariant:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a JSON object")
    _reject_unknown(raw, _VARIANT_FIELDS, f"{where}: ")
    if "output_file_path" not in raw:
        raise ValueError(f"{where}.output_file_path: this field is required")
    path = validate_remote_path(raw["output_file_path"], f"{where}.output_file_path")
    defaults = RenderSpec()
    spec = RenderSpec(
        format=_choice(raw.get("format", defaults.format), OUTPUT_FORMATS, f"{where}.format"),
        max_resolution=_int_in(
            raw.get("max_resolution", defaults.max_resolution),
            MIN_RESOLUTION, MAX_RESOLUTION, f"{where}.max_resolution",
        ),
        quality=_choice(raw.get("quality", defaults.quality), QUALITIES, f"{where}.quality"),
        background_color=_colour(raw.get("background_color"), f"{where}.background_color"),
        output_compression=_int_in(
            raw.get("output_compression", defaults.output_compression),
            1, 100, f"{where}.output_compression",
        ),
        autocrop=_bool(raw.get("autocrop", defaults.autocrop), f"{where}.autocrop"),
    )
    return OutputVariant(output_file_path=path, spec=spec)


def _choice(value: object, allowed: Mapping[str, Any] | tuple[str, ...], where: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{where}: must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _int_in(value: object, low: int, high: int, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{where}: must be an integer in {low}..{high}; got {value!r}")
    return value


def _colour(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _COLOUR.fullmatch(value):
        raise ValueError(f"{where}: must be null or a colour '#rrggbb'; got {value!r}")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: must be true or false; got {value!r}")
    return value
