"""Configuration rules that span several keys or folders: pure, on values already read.

``load`` calls them while it reads the file; nothing here touches the filesystem (``folders``
does, and ``describe`` summarises a valid configuration).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bgcut_watchd.config.model import BudgetConfig, FolderConfig, Variant, expand_output_name
from bgcut_watchd.config.reader import Problems, Table, quote


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
            name = expand_output_name(folder.output_name, "{stem}", variant, folder.name)
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
        for key, path in written_paths(folder):
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


def written_paths(folder: FolderConfig) -> list[tuple[str, Path]]:
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


LOCAL_REQUEST = (Variant("cutout"),)  # what render = "local" asks for, as far as its price
# goes: ONE variant, no autocrop (job.render.master_variant; a test holds the two together)


def check_budget_cap(budget: BudgetConfig, folders: Sequence[FolderConfig],
                     problems: Problems) -> None:
    """Refuse a daily cap below the cheapest process call of some folder (its variants, or
    the one cutout of ``render = "local"``, over the smallest input): no call could ever be
    sent, and the daemon would pause every day with nothing done."""
    cap = budget.max_credits_per_day
    if cap <= 0:
        return
    for folder in folders:
        asked = LOCAL_REQUEST if folder.render == "local" else folder.variants
        cheapest = budget.call_credits(1, asked)
        if cap < cheapest - 1e-9:
            problems.error("budget.max_credits_per_day",
                           f"{cap:g} is below the cheapest process call of folder "
                           f"{quote(folder.name)} (about {cheapest:.2f} credits: "
                           f"render = {quote(folder.render)}, {len(asked)} variant(s) per "
                           f"call, a tiny input); no call could ever be sent")
