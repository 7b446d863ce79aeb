"""The inputs of ``process``: which folder each PATH uses, and how it is claimed.

The folder: ``--folder NAME``, required when several folders are configured (a silent first
choice would put outputs in the wrong outbox), else the only one. A file inside that folder's
inbox is claimed by rename, like the daemon does; any other file (and, with ``--output DIR``,
every file) is copied in (``WorkArea.claim_copy``, a detached job) and the original is never
moved or deleted. A copied file's place "in the inbox" (``relpath``: it picks the output
subfolder) is its path below the folder argument it was found in, or its bare name.

Camera RAW is listed as ignored, never taken, when the folder says ``raw_files = "ignore"``
(the daemon leaves it in the inbox the same way). Folders given are walked with the folder's
ignore rules (relative to the inbox for a folder inside
it, else to the folder given); ignored entries are listed, not taken. A walk never takes files
from a configured outbox, archive or quarantine found below the folder given (that would feed
outputs back in). A file named explicitly is taken even if an ignore rule matches its name: you
asked for it by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from bgcut_watchd.commands.common import absolute_path, inbox_relpath, select_folder
from bgcut_watchd.config.model import Config, FolderConfig
from bgcut_watchd.fsops import show_path
from bgcut_watchd.intake.ignore import IgnoreRules
from bgcut_watchd.intake.scan import scan_folder
from bgcut_watchd.intake.sniff import sniff_camera_raw
from bgcut_watchd.job.workarea import WORK_DIR_NAME


@dataclass(frozen=True)
class Input:
    """One file to process: ``source`` is claimed by rename, or copied when ``copy``."""

    source: Path
    folder: FolderConfig
    relpath: str
    copy: bool
    output_dir: Path | None = None  # --output: where the outputs go instead of the outbox


@dataclass(frozen=True)
class Skipped:
    """A path not taken, and why (the ignore rule, or the problem)."""

    path: Path
    why: str


@dataclass
class Collected:
    inputs: list[Input] = field(default_factory=list)
    output_dir: Path | None = None
    ignored: list[Skipped] = field(default_factory=list)
    refused: list[Skipped] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def add(self, item: Input) -> None:
        key = os.path.realpath(item.source.parent) + "/" + item.source.name
        if key not in self._seen:
            self._seen.add(key)
            self.inputs.append(item)


def collect_inputs(config: Config, folder_name: str | None, paths: Sequence[Path],
                   output_dir: Path | None = None) -> Collected:
    """Every input of ``process PATH...``, in order, without duplicates. With ``output_dir``
    every file is copied (even in an inbox) and its outputs go there.

    Raises ValueError for an unknown ``folder_name``, or for none when several folders are
    configured; a missing or unusable PATH is listed in ``refused`` instead.
    """
    chosen = select_folder(config, folder_name)
    if chosen is None and len(config.folders) > 1:
        names = ", ".join(f.name for f in config.folders)
        raise ValueError(f"{len(config.folders)} folders are configured ({names}): say whose "
                         "variants and outbox to use with --folder NAME")
    folder = chosen or config.folders[0]
    collected = Collected(output_dir=output_dir)
    for given in paths:
        path = absolute_path(given)
        if not os.path.lexists(path):
            collected.refused.append(Skipped(path, "no such file or folder"))
        elif path.is_dir():
            _walk(config, folder, path, collected)
        else:
            _one_file(folder, path, PurePath(path.name), collected, explicit=True)
    return collected


def _one_file(folder: FolderConfig, path: Path, relpath: PurePath, collected: Collected,
              *, explicit: bool = False) -> None:
    """Take ``path``: by rename inside ``folder``'s inbox, else as a copy at ``relpath``.

    A symlink named on the command line outside the inbox is followed, as ``cp`` would; in
    the inbox it is claimed as itself (and quarantined by the local check, like the daemon).
    """
    in_inbox = inbox_relpath(folder.inbox, path)
    raw = _camera_raw(path) if folder.raw_files == "ignore" else None
    if in_inbox is not None and in_inbox.parts[:1] == (WORK_DIR_NAME,):
        collected.refused.append(Skipped(path, "inside the work area (a job in progress)"))
    elif raw is not None:
        collected.ignored.append(Skipped(path, f'camera RAW ({raw}), never uploaded '
                                               '(raw_files = "ignore")'))
    elif in_inbox is not None and collected.output_dir is None:
        collected.add(Input(folder.inbox / in_inbox, folder, os.fsdecode(in_inbox), copy=False))
    else:
        if in_inbox is not None:  # --output: copied like any other file, subfolder kept
            relpath = in_inbox
        source = Path(os.path.realpath(path)) if explicit and path.is_symlink() else path
        collected.add(Input(source, folder, os.fsdecode(relpath), copy=True,
                            output_dir=collected.output_dir))


def _camera_raw(path: Path) -> str | None:
    """The camera RAW format of the regular file at ``path``, or None (not RAW, or not a
    regular file we could read: the local check says what is wrong then)."""
    try:
        return sniff_camera_raw(path) if path.is_file() else None
    except OSError:
        return None


def _walk(config: Config, folder: FolderConfig, top: Path, collected: Collected) -> None:
    rules = IgnoreRules(folder.ignore)
    in_inbox = inbox_relpath(folder.inbox, top)
    if in_inbox is not None and in_inbox.parts:
        rule = rules.is_ignored(in_inbox)
        if rule is not None:
            collected.ignored.append(Skipped(top, rule))
            return
        found = scan_folder(folder.inbox, folder.recursive, rules, start=folder.inbox / in_inbox)
    else:
        found = scan_folder(top, folder.recursive, rules)
    top_rel = in_inbox if in_inbox is not None else PurePath()
    collected.ignored.extend(_ignored_below(top, top_rel, folder.recursive, rules))
    managed = _managed_below(config, top)
    for path in found:
        owner = next((why for where, why in managed if path.is_relative_to(where)), None)
        if owner is not None:
            collected.ignored.append(Skipped(path, owner))
        else:
            relpath = path.relative_to(top) if in_inbox is None else PurePath(path.name)
            _one_file(folder, path, PurePath(relpath), collected)


def _managed_below(config: Config, top: Path) -> list[tuple[Path, str]]:
    """The outboxes, archives and quarantines strictly below ``top``: never walked for inputs."""
    found: list[tuple[Path, str]] = []
    for folder in config.folders:
        for kind, where in (("outbox", folder.outbox), ("archive", folder.archive),
                            ("quarantine", folder.quarantine)):
            if where is not None and where != top and where.is_relative_to(top):
                found.append((where, f"inside the {kind} of folder {folder.name!r}"))
    return found


def _ignored_below(top: Path, top_rel: PurePath, recursive: bool,
                   rules: IgnoreRules) -> Iterator[Skipped]:
    """The entries below ``top`` an ignore rule hides (an ignored folder once, not its files)."""
    for dirpath, dirs, files in os.walk(top):
        here_rel = top_rel / Path(dirpath).relative_to(top)
        kept: list[str] = []
        for name in sorted(dirs + files):
            if name == WORK_DIR_NAME:
                continue
            rule = rules.is_ignored(here_rel / name, parents_checked=True)
            if rule is not None:
                yield Skipped(Path(dirpath, name), rule)
            elif name in dirs:
                kept.append(name)
        dirs[:] = kept if recursive else []


def describe_skipped(item: Skipped) -> str:
    return f"{show_path(item.path)}: {item.why}"
