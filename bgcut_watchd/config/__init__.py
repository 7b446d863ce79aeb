"""The configuration: ``model`` (the data), ``load`` (TOML in, every problem with its key path),
``reader`` (typed reads), ``rules`` (pure cross-key rules), ``folders`` (the only side effects),
``secrets`` (the API key), ``describe`` (the summary), ``schema`` (the JSON Schema editors
validate the file with, shipped as ``schema.json``).

Importing this package creates nothing; it re-exports the data types and the loader.
"""

from __future__ import annotations

from bgcut_watchd.config.load import load_config, parse_config, resolve_config_path
from bgcut_watchd.config.model import (
    API_KEY_CREDENTIAL,
    API_KEY_ENV,
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    ApiConfig,
    Config,
    DaemonConfig,
    FolderConfig,
    RetryConfig,
    Variant,
)

__all__ = [
    "API_KEY_CREDENTIAL", "API_KEY_ENV", "CONFIG_ENV", "DEFAULT_CONFIG_PATH", "ApiConfig",
    "Config", "DaemonConfig", "FolderConfig", "RetryConfig", "Variant", "load_config",
    "parse_config", "resolve_config_path",
]
