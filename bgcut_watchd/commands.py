"""The one-shot commands: check-config here; process, status, requeue and explain load their
configuration here and run in their own modules (``oneshot``, ``status_cmd``, ``requeue_cmd``,
``explain``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from bgcut_watchd.config import Config, check_folders, describe, load_config, resolve_config_path
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.exitcodes import EXIT_CONFIG, EXIT_OK
from bgcut_watchd.logsetup import add_redaction


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


def process_paths(config_arg: str | None, folder_name: str | None, paths: list[Path], *,
                  progress: bool) -> int:
    """``process``: exit 0 when every input ended done, 1 otherwise, 2 for an unknown folder,
    78 for a configuration error (a missing API key included)."""
    from bgcut_watchd.oneshot import run_process
    from bgcut_watchd.secrets import load_api_key

    try:
        config = load_checked_config(config_arg)
        api_key = load_api_key(config.api)
    except ConfigError as exc:
        return config_error_exit(exc)
    for handler in logging.getLogger().handlers:
        add_redaction(handler, api_key)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return run_process(config, api_key, folder_name, list(paths), progress=progress)


def show_status(config_arg: str | None, *, as_json: bool) -> int:
    """``status``: a table (or ``--json``) on stdout; exit 0, or 78. Never loads the API key."""
    from bgcut_watchd.status_cmd import print_status

    try:
        config = load_checked_config(config_arg, create_folders=False)
    except ConfigError as exc:
        return config_error_exit(exc)
    return print_status(config, as_json=as_json)


def requeue(config_arg: str | None, folder_name: str | None, files: list[Path], *,
            everything: bool) -> int:
    """``requeue``: exit 0; 1 when a FILE is not a quarantined input; 2 unknown folder; 78."""
    from bgcut_watchd.requeue_cmd import run_requeue

    try:
        config = load_checked_config(config_arg, create_folders=False)
    except ConfigError as exc:
        return config_error_exit(exc)
    return run_requeue(config, folder_name, list(files), everything=everything)


def explain(config_arg: str | None, path: Path) -> int:
    """``explain``: exit 0 when the daemon would process PATH, 1 when not, 78 config error."""
    from bgcut_watchd.explain import run_explain

    try:
        config = load_checked_config(config_arg, create_folders=False)
    except ConfigError as exc:
        return config_error_exit(exc)
    return run_explain(config, path)


__all__ = ["check_config", "config_error_exit", "explain", "load_checked_config",
           "process_paths", "requeue", "show_status"]
