"""A one-screen summary of a valid configuration, for ``check-config``."""

from __future__ import annotations

from bgcut_watchd.config.model import Config, FolderConfig, Variant
from bgcut_watchd.config.reader import quote


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
