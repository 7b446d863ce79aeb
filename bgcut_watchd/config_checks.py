"""Configuration rules that span several keys or folders, the folder check, and the summary.

``check_folders`` is the only function here with side effects: it creates the folders the daemon
needs and proves each is writable. Everything else reads values already parsed by ``config``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bgcut_watchd.config_validate import Problems, Table, quote

if TYPE_CHECKING:
    from bgcut_watchd.config import Config, FolderConfig, Variant

_CHECK_FILE_PREFIX = ".bgcut-watchd-check-"  # a dot file: the intake ignores it


def output_name(folder: FolderConfig, stem: str, variant: Variant) -> str:
    """The file name ``variant`` of input ``stem`` gets in ``folder``'s outbox."""
    return folder.output_name.format(
        stem=stem, variant=variant.name, ext=variant.ext, folder=folder.name
    )


def folder_variants(table: Table, variants: Mapping[str, Variant]) -> tuple[Variant, ...] | None:
    """The folder's known variants in order; None when the list is missing or invalid."""
    if not table.has("variants"):
        table.error("variants", "missing required key")
        return None
    items = table.strings("variants")
    if items is None:
        return None
    if not items:
        table.error("variants", "must name at least one variant")
        return None
    chosen: dict[str, Variant] = {}
    known = ", ".join(sorted(variants)) or "none"
    for key, name in items:
        if name in chosen:
            table.problems.error(key, f"variant {quote(name)} is listed twice")
        elif name not in variants:
            table.problems.error(key, f"unknown variant {quote(name)} (known: {known})")
        else:
            chosen[name] = variants[name]
    return tuple(chosen.values())


def check_folder(table: Table, folder: FolderConfig, broken: set[str]) -> None:
    """Rules within one folder: distinct output names, and an archive that is used."""
    if not {variant.name for variant in folder.variants} & broken:
        seen: dict[str, str] = {}
        for variant in folder.variants:
            name = output_name(folder, "{stem}", variant)
            # casefold: outboxes are often SMB shares, where "A.png" and "a.png" are one file
            other = seen.setdefault(name.casefold(), variant.name)
            if other != variant.name:
                table.error(
                    "output_name",
                    f"variants {quote(other)} and {quote(variant.name)} would both be written"
                    f" as {quote(name)}",
                )
    if folder.on_success == "delete" and folder.archive is not None:
        table.problems.warn(table.key("archive"), 'ignored because on_success = "delete"')


def warn_about_variant(table: Table, variant: Variant) -> None:
    """Warnings (not errors) about settings that will surprise: JPEG has no transparency."""
    if variant.ext == "jpg" and variant.background_color is None:
        table.problems.warn(
            table.prefix,
            f"format {quote(variant.format)} without background_color: JPEG cannot be"
            " transparent: the output will have a white background",
        )
    if variant.format == "png" and table.has("output_compression"):
        table.problems.warn(table.key("output_compression"), "has no effect on PNG")


def warn_unused_variants(
    variants: Mapping[str, Variant], folders: Sequence[FolderConfig], problems: Problems
) -> None:
    used = {variant.name for folder in folders for variant in folder.variants}
    for name in variants:
        if name not in used:
            problems.warn(f"variants.{name}", "not used by any folder")


def _canonical(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the path as written
        return path


def check_folder_paths(
    folders: Sequence[tuple[int, FolderConfig]], state_dir: Path, problems: Problems
) -> None:
    """Rules across folders: unique names and inboxes, nothing written inside any inbox."""
    inboxes = [(f"folders[{i}].inbox", f.inbox, _canonical(f.inbox)) for i, f in folders]
    names: dict[str, int] = {}
    for position, (index, folder) in enumerate(folders):
        first = names.setdefault(folder.name, index)
        if first != index:
            problems.error(
                f"folders[{index}].name",
                f"duplicate folder name {quote(folder.name)} (also folders[{first}].name)",
            )
        _check_inbox_overlap(inboxes[position], inboxes[:position], problems)
        for key, path in _written_paths(folder):
            written_key = f"folders[{index}].{key}"
            _check_outside_inboxes(written_key, path, inboxes, "it would loop", problems)
    _check_outside_inboxes(
        "daemon.state_dir", state_dir, inboxes, "the daemon would process its own state", problems
    )


def _check_inbox_overlap(
    inbox: tuple[str, Path, Path], earlier: Sequence[tuple[str, Path, Path]], problems: Problems
) -> None:
    key, _, canonical = inbox
    for other_key, other_path, other_canonical in earlier:
        if canonical == other_canonical:
            problems.error(key, f"same inbox as {other_key} ({other_path})")
        elif canonical.is_relative_to(other_canonical):
            problems.error(key, f"inside {other_key} ({other_path})")
        elif other_canonical.is_relative_to(canonical):
            problems.error(key, f"contains {other_key} ({other_path})")


def _written_paths(folder: FolderConfig) -> list[tuple[str, Path]]:
    paths = [("outbox", folder.outbox), ("quarantine", folder.quarantine)]
    if folder.archive is not None and folder.on_success == "archive":
        paths.append(("archive", folder.archive))
    return paths


def _check_outside_inboxes(
    key: str, path: Path, inboxes: Sequence[tuple[str, Path, Path]], why: str, problems: Problems
) -> None:
    canonical = _canonical(path)
    for inbox_key, inbox_path, inbox_canonical in inboxes:
        if canonical.is_relative_to(inbox_canonical):
            relation = "same as" if canonical == inbox_canonical else "inside"
            problems.error(key, f"{relation} {inbox_key} ({inbox_path}); {why}")
            return


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
        dirs.extend((f"folders[{index}].{key}", path) for key, path in _written_paths(folder))
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


def describe(config: Config) -> str:
    """A one-screen summary of a valid configuration, for ``check-config``.

    Leaves out ``config.warnings``: the caller prints those (to stderr).
    """
    api, daemon = config.api, config.daemon
    lines = [
        f"Configuration: {config.source or '(not from a file)'}",
        f"API: {api.base_url}, at most {api.max_requests_per_minute} requests/min,"
        f" upload prefix {quote(api.upload_prefix)}",
        f"Daemon: {daemon.workers} workers, state in {daemon.state_dir},"
        f" stability {daemon.stability_s:g} s, rescan every {daemon.rescan_interval_s:g} s",
        "Variants:",
    ]
    width = max((len(name) for name in config.variants), default=0)
    lines += [f"  {name:<{width}}  {_describe_variant(v)}" for name, v in config.variants.items()]
    lines.append("Folders:")
    for folder in config.folders:
        lines += _describe_folder(folder)
    return "\n".join(lines)


def _describe_variant(variant: Variant) -> str:
    parts = [variant.format, f"max {variant.max_resolution} px", f"quality {variant.quality}"]
    if variant.format != "png":
        parts.append(f"compression {variant.output_compression}")
    if variant.background_color is not None:
        parts.append(f"background {variant.background_color}")
    if variant.autocrop:
        parts.append("autocrop")
    return ", ".join(parts)


def _describe_folder(folder: FolderConfig) -> list[str]:
    disposal = f"archive to {folder.archive}" if folder.on_success == "archive" else "delete"
    watch = folder.watch if folder.watch == "inotify" else f"{folder.watch}, poll every"
    if folder.watch != "inotify":
        watch += f" {folder.poll_interval_s:g} s"
    return [
        f"  {folder.name}: {folder.inbox} -> {folder.outbox}",
        f"    variants {', '.join(v.name for v in folder.variants)}; output {folder.output_name}"
        f" (on conflict: {folder.on_conflict})",
        f"    on success: {disposal}; failures to {folder.quarantine}",
        f"    watch: {watch}; {'recursive' if folder.recursive else 'top level only'}",
    ]
