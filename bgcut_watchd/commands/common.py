"""What several commands share: the configuration they load, and which folder a path is in.

Every command loads its configuration through :func:`load`; a ``ConfigError`` it raises is
turned into exit 78 in one place, ``cli.main``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path, PurePath

from bgcut_watchd.config.folders import load_checked
from bgcut_watchd.config.load import resolve_config_path
from bgcut_watchd.config.model import Config, FolderConfig


def load(args: argparse.Namespace, *, create_folders: bool = True,
         make: bool = True) -> Config:
    """The configuration named by ``-c``/``$BGCUT_WATCHD_CONFIG``/the default, validated, its
    folders checked (and created, unless ``make`` is False) unless ``create_folders`` is
    False. Raises ConfigError."""
    return load_checked(resolve_config_path(args.config, os.environ),
                        create_folders=create_folders, make=make)


def print_warnings(config: Config) -> None:
    """The configuration's warnings, one ``warning:`` line each on stderr."""
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def select_folder(config: Config, name: str | None) -> FolderConfig | None:
    """The folder called ``name`` (None: no choice made). Raises ValueError for an unknown one."""
    if name is None:
        return None
    for folder in config.folders:
        if folder.name == name:
            return folder
    known = ", ".join(f.name for f in config.folders)
    raise ValueError(f"no folder named {name!r} in the configuration (folders: {known})")


def absolute_path(path: Path) -> Path:
    """``path`` made absolute and normalised (``..`` removed) without following symlinks."""
    return Path(os.path.normpath(path.absolute()))


def inbox_relpath(inbox: Path, path: Path) -> PurePath | None:
    """``path`` relative to ``inbox`` (``PurePath()`` for the inbox itself), or None if outside.

    Symlinked parent folders are resolved on both sides; ``path`` itself is never followed.
    """
    absolute = absolute_path(path)
    real = Path(os.path.realpath(absolute.parent)) / absolute.name
    if absolute.name in ("", "/"):
        real = Path(os.path.realpath(absolute))
    try:
        return PurePath(real.relative_to(os.path.realpath(inbox)))
    except ValueError:
        return None


def folder_holding(config: Config, path: Path) -> tuple[FolderConfig, PurePath] | None:
    """The configured folder whose inbox holds ``path``, with ``path`` relative to it."""
    for folder in config.folders:
        relative = inbox_relpath(folder.inbox, path)
        if relative is not None:
            return folder, relative
    return None
