"""The folders on disk: the only part of the configuration with side effects.

``check_folders`` creates every folder the daemon writes to and proves each is a writable
directory; ``load_checked`` is the one way every command and the daemon (start and reload) load a
configuration and check its folders.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bgcut_watchd.config.load import load_config
from bgcut_watchd.config.model import Config
from bgcut_watchd.config.rules import written_paths
from bgcut_watchd.errors import ConfigError

_CHECK_FILE_PREFIX = ".bgcut-watchd-check-"  # a dot file: the intake ignores it


def load_checked(path: Path, *, create_folders: bool = True) -> Config:
    """Load and validate the configuration at ``path``, then (unless ``create_folders`` is
    False) check and create its folders.

    Raises ConfigError listing every problem with its key path.
    """
    config = load_config(path)
    if create_folders:
        problems = check_folders(config)
        if problems:
            raise ConfigError(problems)
    return config


def check_folders(config: Config) -> list[str]:
    """Create every folder the daemon writes to and prove each is a writable directory.

    Returns the problems, each as ``"<key path>: <problem>"``; raises nothing.
    """
    problems: list[str] = []
    for key, path in _needed_dirs(config):
        problem = _check_writable_dir(path)
        if problem is not None:
            problems.append(f"{key}: {problem}")
    return problems


def _needed_dirs(config: Config) -> list[tuple[str, Path]]:
    dirs = [("daemon.state_dir", config.daemon.state_dir)]
    for index, folder in enumerate(config.folders):
        dirs.append((f"folders[{index}].inbox", folder.inbox))
        dirs.extend((f"folders[{index}].{key}", path) for key, path in written_paths(folder))
    return dirs


def _check_writable_dir(path: Path) -> str | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"not a directory: {path}"
    except OSError as exc:
        return f"cannot create {path}: {exc.strerror or exc}"
    if not path.is_dir():
        return f"not a directory: {path}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"not writable: {path}"
    try:
        handle, name = tempfile.mkstemp(prefix=_CHECK_FILE_PREFIX, dir=path)
        os.close(handle)
        Path(name).unlink()
    except OSError as exc:
        return f"cannot write in {path}: {exc.strerror or exc}"
    return None
