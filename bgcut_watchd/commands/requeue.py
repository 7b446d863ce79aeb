"""``bgcut-watchd requeue``: quarantined inputs back into their inbox, their error files removed.

``--all`` takes every quarantined input of every folder (or of ``--folder``). FILE arguments
(a quarantined input, or its ``.error.json``) are all checked first: when one is not a
quarantined input of a selected folder, nothing moves and the exit is 1. Each input goes back
to ``<inbox>/<its subfolder>/<name>`` (``name-N`` if taken), where the daemon, or ``process``,
takes it again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bgcut_watchd.commands.common import inbox_relpath, load, select_folder
from bgcut_watchd.config.model import Config, FolderConfig
from bgcut_watchd.errors import LocalDiskError, UsageError
from bgcut_watchd.exitcodes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from bgcut_watchd.fsops import show_path
from bgcut_watchd.job.quarantine import ERROR_SUFFIX, requeue

Targets = list[Path] | Literal["all"]


@dataclass
class Outcome:
    """What a requeue did: the moves, and the errors (the exit code follows from them)."""

    moved: list[dict[str, str | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exit_code: int = EXIT_OK

    def fail(self, message: str, exit_code: int = EXIT_FAILURE) -> Outcome:
        self.errors.append(message)
        self.exit_code = exit_code
        return self


def run(args: argparse.Namespace) -> int:
    """Print what moved where (``--json``: ``{"ok", "moved": [{"folder", "from", "to"}],
    "errors"}``, ``from`` null with ``--all``); exit 0, 1 (unknown FILE, disk error) or 2
    (unknown folder: a UsageError, which ``cli`` prints). Raises ConfigError (exit 78),
    UsageError (exit 2)."""
    config = load(args, create_folders=False)
    try:
        select_folder(config, args.folder)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    outcome = requeue_inputs(config, args.folder, list(args.files), everything=args.all)
    if args.json:
        print(json.dumps({"ok": outcome.exit_code == EXIT_OK, "moved": outcome.moved,
                          "errors": outcome.errors}, indent=2))
        return outcome.exit_code
    for error in outcome.errors:
        print(f"requeue: {error}", file=sys.stderr)
    for move in outcome.moved:
        source = f"{show_path(move['from'])} " if move["from"] else "requeued "
        print(f"{move['folder']}: {source}-> {show_path(move['to'])}")
    if outcome.exit_code == EXIT_OK:
        total = len(outcome.moved)
        print(f"{total} input(s) back in their inbox" if total else "nothing to requeue")
    return outcome.exit_code


def requeue_inputs(config: Config, folder_name: str | None, files: Sequence[Path], *,
                   everything: bool) -> Outcome:
    """Requeue ``files`` (or ``everything``) of ``folder_name`` (or every folder)."""
    outcome = Outcome()
    try:
        chosen = select_folder(config, folder_name)
    except ValueError as exc:
        return outcome.fail(str(exc), EXIT_USAGE)
    folders = [chosen] if chosen else list(config.folders)
    if everything:
        plan: list[tuple[FolderConfig, Targets]] = [(f, "all") for f in folders]
    else:
        matched, unknown = match_files(folders, files)
        names = ", ".join(f.name for f in folders)
        for path in unknown:
            outcome.fail(f"not a quarantined input of {names}: {show_path(path)}")
        if unknown:
            return outcome.fail("nothing moved")
        plan = [(f, matched[f.name]) for f in folders if matched.get(f.name)]
    return _carry_out(plan, outcome)


def _carry_out(plan: list[tuple[FolderConfig, Targets]], outcome: Outcome) -> Outcome:
    for folder, targets in plan:
        try:
            moved = requeue(folder.quarantine, folder.inbox, targets)
        except (LocalDiskError, OSError, ValueError) as exc:
            return outcome.fail(f"folder {folder.name}: {exc}")
        # match_files passed inputs only, no orphan error file: same order, same length
        sources: list[Path | None] = [None] * len(moved) if targets == "all" else list(targets)
        outcome.moved += [{"folder": folder.name, "to": os.fsdecode(target),
                           "from": None if source is None else os.fsdecode(source)}
                          for source, target in zip(sources, moved, strict=True)]
    return outcome


def match_files(folders: Sequence[FolderConfig],
                files: Sequence[Path]) -> tuple[dict[str, list[Path]], list[Path]]:
    """FILE arguments by the folder whose quarantine holds them as inputs; and the others."""
    matched: dict[str, list[Path]] = {}
    unknown: list[Path] = []
    for given in files:
        for folder in folders:
            relative = inbox_relpath(folder.quarantine, given)
            item = None if relative is None else _quarantined_input(folder.quarantine / relative)
            if item is not None:
                items = matched.setdefault(folder.name, [])
                if item not in items:
                    items.append(item)
                break
        else:
            unknown.append(given)
    return matched, unknown


def _quarantined_input(path: Path) -> Path | None:
    """The quarantined input ``path`` names (itself, or the input of its error file), or None."""
    if path.name.startswith(".") or not os.path.lexists(path):
        return None
    if path.is_dir() and not path.is_symlink():  # a quarantined symlink is an input
        return None
    if path.name.endswith(ERROR_SUFFIX) and not os.path.lexists(
            path.with_name(path.name + ERROR_SUFFIX)):
        own_input = path.with_name(path.name[:-len(ERROR_SUFFIX)])
        return own_input if os.path.lexists(own_input) else None
    return path
