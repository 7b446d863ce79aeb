"""The folders on disk: the only part of the configuration with side effects.

Folders are never created by surprise: an inbox must exist (a typo in its path, or a share not
mounted yet, must not be silently created and watched); an outbox, archive, quarantine or
state_dir is created only inside an existing parent. A folder under a mount point declared in
``/etc/fstab`` (or a systemd mount unit) that is not mounted is on standby (``mounts``).
``check_folders`` proves each folder is a writable directory; ``load_checked`` is the one way
every command and the daemon (start and reload) load a configuration and check its folders.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Collection
from pathlib import Path

from bgcut_watchd.config.load import load_config
from bgcut_watchd.config.model import Config, FolderConfig
from bgcut_watchd.config.rules import written_paths
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.mounts import (
    SYSTEM_TABLES,
    MountSnapshot,
    MountTables,
    snapshot,
    standby_reason,
    standby_reason_of_resolved,
)

_CHECK_FILE_PREFIX = ".bgcut-watchd-check-"  # a dot folder: the intake ignores it


def load_checked(path: Path, *, create_folders: bool = True, make: bool = True,
                 tables: MountTables = SYSTEM_TABLES) -> Config:
    """Load and validate the configuration at ``path``, then (unless ``create_folders`` is
    False) check its folders, creating only the missing ones that may be created; with
    ``make`` False (``check-config``) creating none, a warning naming each one the daemon
    will create. A folder on standby (under a declared mount point that is not mounted) is
    not checked: a warning says so.

    Raises ConfigError listing every problem with its key path.
    """
    config = load_config(path)
    if not create_folders:
        return config
    problems, standby = check_folders(config, tables, make=make)
    if problems:
        raise ConfigError(problems)
    notes = tuple(f"folders[{index}] ({folder.name}): on standby: {standby[folder.name]}"
                  for index, folder in enumerate(config.folders) if folder.name in standby)
    if not make:
        notes += tuple(f"{key}: {path}: does not exist yet; the daemon creates it when it "
                       "starts" for key, path, create in _checked_dirs(config, standby)
                       if create and not os.path.lexists(path))
    return dataclasses.replace(config, warnings=config.warnings + notes) if notes else config


def check_folders(config: Config, tables: MountTables = SYSTEM_TABLES, *,
                  make: bool = True) -> tuple[list[str], dict[str, str]]:
    """Check every folder the daemon reads or writes; create the missing outbox, archive,
    quarantine and state_dir when their parent exists (with ``make`` False, only check that
    the parent would let them be made: ``check-config`` creates nothing, so that a check run
    as root never leaves folders the service's user cannot write). An inbox is never created:
    a typo would silently watch the wrong place. Folders on standby are skipped.

    Returns (problems, standby): problems as ``"<key path>: <problem>"``, and the reason of each
    folder on standby by name. Raises nothing.
    """
    standby = {f.name: why for f in config.folders
               if (why := folder_standby(f, tables)) is not None}
    problems = [f"{key}: {problem}" for key, path, create in _checked_dirs(config, standby)
                if (problem := _check_writable_dir(path, create=create, make=make)) is not None]
    return problems, standby


def folder_standby(folder: FolderConfig, tables: MountTables = SYSTEM_TABLES) -> str | None:
    """Why ``folder`` must wait for a mount (any of its paths under a declared mount point that
    is not mounted), or None. Raises nothing."""
    for _, folder_path, _ in _folder_dirs(folder):
        why = standby_reason(folder_path, tables)
        if why is not None:
            return why
    return None


def folder_standby_paths(folder: FolderConfig) -> tuple[str, ...]:
    """Every folder of ``folder`` resolved (symlinks followed), for
    :func:`folder_standby_of_resolved`. Touches the paths: call it once, at start or reload."""
    return tuple(str(folder_path.resolve()) for _, folder_path, _ in _folder_dirs(folder))


def folder_standby_of_resolved(paths: tuple[str, ...],
                               tables: MountTables = SYSTEM_TABLES,
                               tables_now: MountSnapshot | None = None) -> str | None:
    """:func:`folder_standby` of paths from :func:`folder_standby_paths`: reads only the mount
    tables (once, or uses ``tables_now``), so a hung share never blocks the service loop that
    asks every second."""
    seen = tables_now if tables_now is not None else snapshot(tables)
    for target in paths:
        why = standby_reason_of_resolved(target, tables, seen)
        if why is not None:
            return why
    return None


def _folder_dirs(folder: FolderConfig) -> list[tuple[str, Path, bool]]:
    """(key, path, may be created) of every folder of ``folder``."""
    return [("inbox", folder.inbox, False)] + [
        (key, folder_path, True) for key, folder_path in written_paths(folder)]


def _checked_dirs(config: Config, standby: Collection[str]) -> list[tuple[str, Path, bool]]:
    """(key path, path, may be created) of the state_dir and of every folder of the folders
    not named in ``standby``."""
    return [("daemon.state_dir", config.daemon.state_dir, True)] + [
        (f"folders[{index}].{key}", path, create)
        for index, folder in enumerate(config.folders) if folder.name not in standby
        for key, path, create in _folder_dirs(folder)]


def _check_writable_dir(path: Path, *, create: bool, make: bool = True) -> str | None:
    if not path.exists():
        if path.is_symlink():
            return (f"a symbolic link to a folder that does not exist: {path} (fix the "
                    "link, or the path)")
        if not create:
            return (f"does not exist: {path} (the daemon never creates an inbox: create it, "
                    "or fix the path)")
        if not path.parent.is_dir():
            return (f"cannot create {path}: its parent folder {path.parent} does not exist "
                    "(create it, or fix the path)")
        if not make:
            writable = os.access(path.parent, os.W_OK | os.X_OK)
            return None if writable else f"cannot create {path}: {path.parent} is not writable"
    try:
        path.mkdir(exist_ok=True)
    except FileExistsError:
        return f"not a directory: {path}"
    except OSError as exc:
        return f"cannot create {path}: {exc.strerror or exc}"
    if not path.is_dir():
        return f"not a directory: {path}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"not writable: {path}"
    try:  # a folder, not a file: nothing is opened, so a FUSE share (whose close is
        # asynchronous) never hides it as a .fuse_hidden* placeholder that stays behind
        Path(tempfile.mkdtemp(prefix=_CHECK_FILE_PREFIX, dir=path)).rmdir()
    except OSError as exc:
        return f"cannot write in {path}: {exc.strerror or exc}"
    return None
