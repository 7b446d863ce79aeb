"""A JSON Schema of the configuration, generated from the dataclasses of ``model``.

Editors validate the TOML file with it (taplo, VS Code's "Even Better TOML": a first line
``#:schema /opt/bgcut-watchd/config.schema.json``). Every dataclass field becomes a property
with its JSON type and default; the ranges and choices that the loader enforces are in
:data:`RULES` (a test probes the loader at every boundary listed there, so the two cannot
drift). The shipped copy, ``config/schema.json``, is regenerated with
``python -m bgcut_watchd.config.schema > bgcut_watchd/config/schema.json`` (a test compares it).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from bgcut_watchd.config.model import (
    FORMAT_EXTENSIONS,
    QUALITIES,
    RAW_FILES_CHOICES,
    RENDER_MODES,
    ApiConfig,
    BudgetConfig,
    DaemonConfig,
    FolderConfig,
    HttpConfig,
    NotifyConfig,
    RetryConfig,
    Variant,
)

SCHEMA_ID = "https://bgcut-watchd.invalid/config.schema.json"
SECTIONS: dict[str, type] = {"api": ApiConfig, "daemon": DaemonConfig, "retry": RetryConfig,
                             "http": HttpConfig, "notify": NotifyConfig,
                             "budget": BudgetConfig}
REQUIRED_FOLDER_KEYS = ("name", "inbox", "outbox", "quarantine", "variants")

_POSITIVE = {"exclusiveMinimum": 0}
_NOT_NEGATIVE = {"minimum": 0}
RULES: dict[str, dict[str, Any]] = {
    "api.max_requests_per_minute": {"minimum": 1},
    "daemon.workers": {"minimum": 1},
    "daemon.stability_s": _NOT_NEGATIVE,
    "daemon.max_input_bytes": {"minimum": 1},
    "daemon.max_input_pixels": {"minimum": 1},
    "retry.max_attempts": {"minimum": 1},
    "retry.base_delay_s": _NOT_NEGATIVE,
    "retry.max_delay_s": _NOT_NEGATIVE,
    "budget.first_variant_min_credits": _NOT_NEGATIVE,
    "budget.first_variant_max_credits": _NOT_NEGATIVE,
    "budget.first_variant_max_at_pixels": {"minimum": 1},
    "budget.extra_variant_credits": _NOT_NEGATIVE,
    "budget.autocrop_credits": _NOT_NEGATIVE,
    "budget.max_credits_per_day": _NOT_NEGATIVE,
    "variants.format": {"enum": list(FORMAT_EXTENSIONS)},
    "variants.max_resolution": {"minimum": 4096, "maximum": 25_000_000},
    "variants.quality": {"enum": list(QUALITIES)},
    "variants.background_color": {"pattern": "^#[0-9a-fA-F]{6}$"},
    "variants.output_compression": {"minimum": 1, "maximum": 100},
    "http.listen": {"pattern": r"^$|^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):[0-9]{1,5}$"},
    "notify.digest_s": _NOT_NEGATIVE,
    "folders.on_success": {"enum": ["archive", "delete"]},
    "folders.watch": {"enum": ["auto", "inotify", "polling"]},
    "folders.on_conflict": {"enum": ["rename", "overwrite"]},
    "folders.render": {"enum": list(RENDER_MODES)},
    "folders.archive_retention_days": {"minimum": 0},
    "folders.quarantine_retention_days": {"minimum": 0},
    "folders.raw_files": {"enum": list(RAW_FILES_CHOICES)},
}
"""Per ``section.key``: the JSON Schema keywords of what the loader accepts. A number field not
listed must be > 0 (the loader's default rule)."""


def build_schema() -> dict[str, Any]:
    """The whole JSON Schema (draft 2020-12) of ``config.toml``."""
    properties: dict[str, Any] = {
        name: _section(name, cls) for name, cls in SECTIONS.items()
    }
    properties["variants"] = {
        "type": "object", "description": "named output presets, reusable by every folder",
        "minProperties": 1,
        "additionalProperties": _section("variants", Variant, skip=("name",)),
    }
    properties["folders"] = {
        "type": "array", "description": "the watched folders ([[folders]])",
        "items": _section("folders", FolderConfig, required=REQUIRED_FOLDER_KEYS),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
        "title": "bgcut-watchd configuration", "type": "object",
        "properties": properties, "required": ["variants", "folders"],
        "additionalProperties": False,
    }


def _section(name: str, cls: type, *, skip: tuple[str, ...] = (),
             required: tuple[str, ...] = ()) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props = {
        field.name: _property(f"{name}.{field.name}", hints[field.name], field)
        for field in dataclasses.fields(cls) if field.name not in skip
    }
    section: dict[str, Any] = {"type": "object", "properties": props,
                               "additionalProperties": False}
    if required:
        section["required"] = list(required)
    return section


def _property(key: str, hint: Any, field: dataclasses.Field[Any]) -> dict[str, Any]:
    optional = type(None) in typing.get_args(hint) and isinstance(hint, types.UnionType)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    prop = _json_type(base)
    if prop.get("type") == "number" and key not in RULES:
        prop.update(_POSITIVE)
    prop.update(RULES.get(key, {}))
    default = _default(field)
    if default is not None:
        prop["default"] = default
    return prop


def _json_type(hint: Any) -> dict[str, Any]:
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint in (str, Path):
        return {"type": "string"}
    if typing.get_origin(hint) is tuple:  # ignore globs, variant names: strings in TOML
        return {"type": "array", "items": {"type": "string"}}
    raise TypeError(f"no JSON type for {hint!r}")


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is dataclasses.MISSING or field.default is None:
        return None
    value = field.default
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def main() -> None:
    """Print the schema (``python -m bgcut_watchd.config.schema``)."""
    print(json.dumps(build_schema(), indent=2, sort_keys=False))


if __name__ == "__main__":
    main()
