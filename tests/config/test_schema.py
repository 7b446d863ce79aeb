"""The JSON Schema of the configuration: generated from the dataclasses, shipped, validating the
example, and agreeing with the loader at every boundary it lists."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from bgcut_watchd.config import parse_config
from bgcut_watchd.config.schema import RULES, SECTIONS, build_schema
from bgcut_watchd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "bgcut_watchd" / "config" / "schema.json"
EXAMPLE = ROOT / "config.example.toml"
VALIDATOR = Draft202012Validator(build_schema())
BASE: dict[str, Any] = {
    "variants": {"full": {"format": "png"}},
    "folders": [{"name": "studio", "inbox": "/srv/s/inbox", "outbox": "/srv/s/outbox",
                 "quarantine": "/srv/s/quarantine", "archive": "/srv/s/done",
                 "variants": ["full"]}],
}


def test_the_schema_is_valid_and_the_shipped_copy_is_current() -> None:
    Draft202012Validator.check_schema(build_schema())
    assert json.loads(SHIPPED.read_text()) == build_schema(), (
        "regenerate: python -m bgcut_watchd.config.schema > bgcut_watchd/config/schema.json")


def test_the_example_config_validates() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert [e.message for e in VALIDATOR.iter_errors(data)] == []


def _with(key: str, value: object) -> dict[str, Any]:
    section, name = key.split(".")
    data = copy.deepcopy(BASE)
    if section == "variants":
        data["variants"]["full"][name] = value
    elif section == "folders":
        data["folders"][0][name] = value
    else:
        data.setdefault(section, {})[name] = value
    return data


def _loader_accepts(data: dict[str, Any]) -> bool:
    try:
        parse_config(data)
    except ConfigError:
        return False
    return True


def _probes() -> list[tuple[str, object]]:
    """(key, value) pairs at and across every boundary of RULES, plus each unlisted number's 0."""
    probes: list[tuple[str, object]] = []
    for key, rule in RULES.items():
        for bound, outside in (("minimum", -1), ("maximum", 1)):
            if bound in rule:
                probes += [(key, rule[bound]), (key, rule[bound] + outside)]
        if "exclusiveMinimum" in rule:
            probes += [(key, 0), (key, 0.001)]
        if "enum" in rule:
            probes += [(key, v) for v in rule["enum"]] + [(key, "bogus")]
    for section, cls in SECTIONS.items():
        for field in cls.__dataclass_fields__.values():
            key = f"{section}.{field.name}"
            if field.type in ("float", float) and key not in RULES:
                probes += [(key, 0), (key, 0.5)]
    return probes


@pytest.mark.parametrize(("key", "value"), _probes())
def test_the_schema_and_the_loader_agree(key: str, value: object) -> None:
    data = _with(key, value)
    # base_delay_s <= max_delay_s is a cross-key rule of the loader, not of the schema
    if key == "retry.base_delay_s" and isinstance(value, int | float):
        data["retry"]["max_delay_s"] = max(float(value), 1.0)
    if key == "retry.max_delay_s":
        data["retry"]["base_delay_s"] = 0
    assert VALIDATOR.is_valid(data) == _loader_accepts(data), (key, value)


def test_an_unknown_key_fails_both() -> None:
    data = _with("daemon.wrokers", 4)
    assert not VALIDATOR.is_valid(data) and not _loader_accepts(data)
