"""``bgcut-watchd explain PATH``: what the daemon would do with one path, without doing it.

No API call, no file moved, nothing written (the ledger is read only if it already exists). In
order: which folder's inbox holds PATH, the ignore rule that hides it, the local check (format,
size, sha256, or the quarantine reason it would get), whether the ledger knows the same content
with the same variants (the outputs would be copied, no API call), the remote calls (one upload,
one process call with every variant's fields, one download per output), the output names
against the outbox as it is now, and where the input goes afterwards.

A path in no inbox is never seen by the daemon (exit 1); the plan ``process`` would follow for it
(a copy, with the first folder) is shown all the same. Exit 0 when the daemon would process it.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from pathlib import Path, PurePath

from bgcut_watchd.api import safe_upload_name, variant_body
from bgcut_watchd.commands.common import absolute_path, folder_holding, load
from bgcut_watchd.config.model import Config, FolderConfig, variant_key
from bgcut_watchd.errors import ConfigError, LocalInputError
from bgcut_watchd.exitcodes import EXIT_FAILURE, EXIT_OK
from bgcut_watchd.fsops import show_path
from bgcut_watchd.intake.ignore import IgnoreRules
from bgcut_watchd.intake.scan import is_candidate
from bgcut_watchd.job.duplicates import intact_earlier_outputs
from bgcut_watchd.job.naming import (
    choose_output_set,
    free_name,
    output_names,
    relative_subfolder,
    remote_output_paths,
    remote_upload_path,
    split_name,
)
from bgcut_watchd.job.validate import ValidatedInput, validate_input
from bgcut_watchd.ledger import LEDGER_NAME, Ledger

JOB_ID = "<job id>"


def run(args: argparse.Namespace) -> int:
    """Print the dry run for PATH; 0 when the daemon would process it, else 1. Raises
    ConfigError (exit 78)."""
    return explain_path(load(args, create_folders=False), args.path)


def explain_path(config: Config, given: Path) -> int:
    """Print the dry run for ``given``; 0 when the daemon would process it, else 1."""
    path = absolute_path(given)
    print(f"path:        {show_path(path)}")
    held = folder_holding(config, path)
    if held is None:
        folder, relpath = config.folders[0], PurePath(path.name)
        print(f"folder:      none: in no folder's inbox, the daemon never sees it; `process` "
              f"would copy it (the original stays) with folder {folder.name!r}")
        if path.is_symlink():
            path = Path(os.path.realpath(path))  # process follows a link named on its command line
    else:
        folder, relpath = held
        print(f"folder:      {folder.name} (inbox {show_path(folder.inbox)}), "
              f"as {show_path(relpath)}")
        if not _taken_from_inbox(folder, relpath):
            return EXIT_FAILURE
    if not _candidate(path):
        return EXIT_FAILURE
    if not _plan(config, folder, path, os.fsdecode(relpath), copy=held is None):
        return EXIT_FAILURE
    return EXIT_FAILURE if held is None else EXIT_OK


def _taken_from_inbox(folder: FolderConfig, relpath: PurePath) -> bool:
    """False (said why) when the daemon would leave this path of the inbox alone."""
    if not relpath.parts:
        print("not taken:   this is the inbox itself; explain one file in it")
        return False
    rule = IgnoreRules(folder.ignore).is_ignored(relpath)
    if rule is not None:
        print(f"ignored:     yes, by the {rule}: the daemon leaves it alone, untouched")
        return False
    if not folder.recursive and len(relpath.parts) > 1:
        print("not taken:   in a subfolder and the folder has recursive = false")
        return False
    print("ignored:     no")
    return True


def _candidate(path: Path) -> bool:
    """False (said why) when there is no file to take at ``path``."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        print(f"not taken:   cannot look at it: {exc.strerror or exc}")
        return False
    if not is_candidate(path.name, mode):
        what = "a folder: its files are taken one by one" if path.is_dir() else (
            "not a regular file, and not named like an image")
        print(f"not taken:   {what}")
        return False
    return True


def _plan(config: Config, folder: FolderConfig, path: Path, relpath: str, *, copy: bool) -> bool:
    """The local check and, if it passes, the calls, the outputs and the disposal."""
    sub = relative_subfolder(folder.inbox, relpath)
    name = PurePath(relpath).name
    try:
        checked = validate_input(path, max_bytes=config.daemon.max_input_bytes,
                                 max_pixels=config.daemon.max_input_pixels)
    except LocalInputError as exc:
        print(f"local check: rejected: {exc.reason}: {exc.detail}")
        print(f"afterwards:  quarantined, no API call: {show_path(folder.quarantine / sub / name)}"
              f" beside {name}.error.json")
        return False
    print(f"local check: OK: {checked.format} {checked.width}x{checked.height}, "
          f"{checked.size_bytes} bytes, sha256 {checked.sha256}")
    if not _duplicate(config, folder, checked):
        _remote_calls(config, folder, name)
    _outputs(folder, sub, name)
    _afterwards(folder, sub, name, "the copy (the original stays)" if copy else "the input")
    return True


def _duplicate(config: Config, folder: FolderConfig, checked: ValidatedInput) -> bool:
    """True (said so) when the runner would copy earlier outputs instead of calling the API."""
    if folder.reprocess_duplicates:
        print("duplicate:   not looked for (reprocess_duplicates = true)")
        return False
    state_dir = config.daemon.state_dir
    if not (state_dir / LEDGER_NAME).exists():
        print("duplicate:   no (no ledger yet)")
        return False
    try:
        with Ledger(state_dir) as ledger:
            earlier = intact_earlier_outputs(ledger, checked.sha256,
                                             variant_key(folder.variants), len(folder.variants))
    except (OSError, sqlite3.Error, ConfigError) as exc:
        print(f"duplicate:   unknown, the ledger cannot be read: {exc}")
        return False
    if earlier is None:
        print("duplicate:   no")
        return False
    print("duplicate:   yes: same content, same variants; these outputs would be copied, "
          "no API call:")
    for earlier_path in earlier:
        print(f"  {show_path(earlier_path)}")
    return True


def _remote_calls(config: Config, folder: FolderConfig, name: str) -> None:
    prefix = remote_upload_path(config.api.upload_prefix, JOB_ID)
    outputs = remote_output_paths(config.api.upload_prefix, JOB_ID, folder.variants)
    count = len(folder.variants)
    print(f"remote calls: {count + 2} ({config.api.base_url})")
    print(f"  1. upload to {json.dumps(prefix)} as {json.dumps(safe_upload_name(name))}")
    print(f"  2. process, one call with {count} variant(s):")
    for variant, output in zip(folder.variants, outputs, strict=True):
        print(f"     {variant.name}: {json.dumps(variant_body(variant, output))}")
    print(f"  3. download, {count} call(s): one per output")


def _outputs(folder: FolderConfig, sub: Path, name: str) -> None:
    out_dir = folder.outbox / sub
    stem, _ = split_name(name)
    finals = choose_output_set(
        out_dir, lambda s: output_names(folder.output_name, s, folder.variants, folder.name),
        stem, folder.on_conflict)
    print(f"outputs:     in {show_path(out_dir)} (on_conflict = {folder.on_conflict}, "
          "names as the outbox is now)")
    for variant, final in zip(folder.variants, finals, strict=True):
        print(f"  {variant.name}: {show_path(final.name)}")


def _afterwards(folder: FolderConfig, sub: Path, name: str, what: str) -> None:
    if folder.on_success == "delete" or folder.archive is None:
        print(f"afterwards:  {what} is deleted (on_success = delete)")
        return
    target = free_name(folder.archive / sub, name)
    print(f"afterwards:  {what} moves to {show_path(target)}")
