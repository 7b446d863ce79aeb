"""The one-shot commands: check-config, process, status, requeue, explain."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bgcut_watchd.config import Config, check_folders, describe, load_config, resolve_config_path
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.exitcodes import EXIT_CONFIG, EXIT_OK


def load_checked_config(cli_value: str | None, *, create_folders: bool = True) -> Config:
    """Load and validate the configuration, then check (and create) its folders.

    Raises ConfigError listing every problem with its key path.
    """
    path = resolve_config_path(cli_value, os.environ)
    config = load_config(path)
    if create_folders:
        problems = check_folders(config)
        if problems:
            raise ConfigError(problems)
    return config


def check_config(cli_value: str | None) -> int:
    """``check-config``: print every problem (exit 78) or a summary of the folders (exit 0)."""
    try:
        config = load_checked_config(cli_value)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(describe(config))
    print("configuration OK")
    return EXIT_OK


def config_error_exit(exc: ConfigError) -> int:
    """Report a configuration error the same way for every command; returns 78."""
    print(exc, file=sys.stderr)
    return EXIT_CONFIG


__all__ = ["Path", "check_config", "config_error_exit", "load_checked_config"]
