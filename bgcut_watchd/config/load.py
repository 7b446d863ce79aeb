"""Reading the configuration: TOML into the frozen dataclasses of ``model``.

Every problem is reported with its key path, all at once, in one ``ConfigError``. Nothing here
touches the filesystem beyond reading the file (``folders`` checks and creates folders).

Over 300 lines on purpose: one small parser per table of the file, in the order of
``config.example.toml``, so a key is found where the example documents it.
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

from bgcut_watchd.config.model import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    FORMAT_EXTENSIONS,
    QUALITIES,
    RAW_FILES_CHOICES,
    RENDER_MODES,
    ApiConfig,
    BudgetConfig,
    Config,
    DaemonConfig,
    FolderConfig,
    HttpConfig,
    NotifyConfig,
    RetryConfig,
    Variant,
    is_loopback,
    split_listen,
)
from bgcut_watchd.config.reader import (
    Problems,
    Table,
    check_base_url,
    check_color,
    check_glob,
    check_name,
    check_output_name,
    check_upload_prefix,
    check_webhook_url,
    type_name,
)
from bgcut_watchd.config.rules import (
    check_budget_cap,
    check_folder,
    check_folder_paths,
    folder_variants,
    warn_about_variant,
    warn_unused_variants,
)
from bgcut_watchd.errors import ConfigError

_TOP_LEVEL_KEYS = ("api", "daemon", "retry", "http", "notify", "budget", "variants",
                   "folders")
_REQUIRED_PATHS = ("inbox", "outbox", "quarantine")


def _keys(cls: type, *skip: str) -> tuple[str, ...]:
    """The TOML keys of a section: its dataclass fields, so docs and code cannot drift."""
    return tuple(f.name for f in fields(cls) if f.name not in skip)


def resolve_config_path(cli_value: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    """The config file to use: ``-c`` beats ``$BGCUT_WATCHD_CONFIG`` beats the default path."""
    for candidate in (cli_value, environ.get(CONFIG_ENV)):
        if candidate:
            return Path(candidate).expanduser()
    return DEFAULT_CONFIG_PATH


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at ``path``; creates nothing.

    Raises ConfigError listing every problem (unreadable file, invalid TOML, invalid values).
    """
    source = path.absolute()
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not valid UTF-8: {exc.reason}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: invalid TOML: {exc}"]) from exc
    return parse_config(data, source)


def parse_config(data: Mapping[str, object], source: Path | None = None) -> Config:
    """Validate parsed TOML into a ``Config``; relative paths resolve against ``source``'s folder.

    Raises ConfigError listing every problem, each as ``"<key path>: <problem>"``.
    """
    problems = Problems()
    base = source.absolute().parent if source is not None else Path.cwd()
    root = Table(data, "", problems)
    root.reject_unknown(_TOP_LEVEL_KEYS)
    api = _parse_api(root.table("api"), base)
    daemon = _parse_daemon(root.table("daemon"), base)
    retry = _parse_retry(root.table("retry"))
    http = _parse_http(root.table("http"), base)
    notify = _parse_notify(root.table("notify"))
    budget = _parse_budget(root.table("budget"))
    variants, broken = _parse_variants(root)
    folders = _parse_folders(root, variants, broken, base)
    check_folder_paths(folders, daemon.state_dir, problems)
    warn_unused_variants(variants, [folder for _, folder in folders], problems)
    check_budget_cap(budget, [folder for _, folder in folders], problems)
    if problems.errors:
        raise ConfigError(problems.errors)
    return Config(
        api=api, daemon=daemon, retry=retry, variants=variants,
        folders=tuple(folder for _, folder in folders), http=http, notify=notify, source=source,
        warnings=tuple(problems.warnings), budget=budget,
    )


def _parse_api(table: Table, base: Path) -> ApiConfig:
    table.reject_unknown(_keys(ApiConfig))
    d = ApiConfig
    return ApiConfig(
        base_url=table.string("base_url", d.base_url, check_base_url).rstrip("/"),
        api_key_file=table.path("api_key_file", base),
        connect_timeout_s=table.number("connect_timeout_s", d.connect_timeout_s),
        upload_timeout_s=table.number("upload_timeout_s", d.upload_timeout_s),
        process_timeout_s=table.number("process_timeout_s", d.process_timeout_s),
        download_timeout_s=table.number("download_timeout_s", d.download_timeout_s),
        max_requests_per_minute=table.integer(
            "max_requests_per_minute", d.max_requests_per_minute, minimum=1
        ),
        upload_prefix=table.string("upload_prefix", d.upload_prefix, check_upload_prefix),
    )


def _parse_daemon(table: Table, base: Path) -> DaemonConfig:
    table.reject_unknown(_keys(DaemonConfig))
    d = DaemonConfig
    return DaemonConfig(
        workers=table.integer("workers", d.workers, minimum=1),
        state_dir=table.path("state_dir", base) or d.state_dir,
        stability_s=table.number("stability_s", d.stability_s, exclusive=False),
        rescan_interval_s=table.number("rescan_interval_s", d.rescan_interval_s),
        shutdown_timeout_s=table.number("shutdown_timeout_s", d.shutdown_timeout_s),
        max_input_bytes=table.integer("max_input_bytes", d.max_input_bytes, minimum=1),
        max_input_pixels=table.integer("max_input_pixels", d.max_input_pixels, minimum=1),
    )


def _parse_retry(table: Table) -> RetryConfig:
    table.reject_unknown(_keys(RetryConfig))
    d = RetryConfig
    errors_before = len(table.problems.errors)
    retry = RetryConfig(
        max_attempts=table.integer("max_attempts", d.max_attempts, minimum=1),
        base_delay_s=table.number("base_delay_s", d.base_delay_s, exclusive=False),
        max_delay_s=table.number("max_delay_s", d.max_delay_s, exclusive=False),
        auth_pause_s=table.number("auth_pause_s", d.auth_pause_s),
        credits_pause_s=table.number("credits_pause_s", d.credits_pause_s),
        disk_pause_s=table.number("disk_pause_s", d.disk_pause_s),
    )
    if len(table.problems.errors) == errors_before and retry.base_delay_s > retry.max_delay_s:
        limit = f"{table.key('max_delay_s')} ({retry.max_delay_s})"
        table.error("base_delay_s", f"must be <= {limit}, got {retry.base_delay_s}")
    return retry


def _parse_http(table: Table, base: Path) -> HttpConfig:
    """``[http]``: ``listen`` is "" (off) or HOST:PORT; off loopback a token is required."""
    table.reject_unknown(_keys(HttpConfig))
    listen = table.string("listen", HttpConfig.listen, _check_listen)
    token_file = table.path("token_file", base) if table.data.get("token_file") else None
    if listen and token_file is None and not is_loopback(split_listen(listen)[0]):
        table.error("token_file", f"required when http.listen is not a loopback address "
                    f"(got {listen!r}): clients must send Authorization: Bearer <token>")
    return HttpConfig(listen=listen, token_file=token_file)


def _check_listen(text: str) -> str | None:
    if not text:
        return None
    try:
        split_listen(text)
    except ValueError as exc:
        return str(exc)
    return None


def _parse_notify(table: Table) -> NotifyConfig:
    """``[notify]``: a webhook URL ("" for none), Apprise URLs (the ``notify`` extra)."""
    table.reject_unknown(_keys(NotifyConfig))
    d = NotifyConfig
    webhook_url = table.string("webhook_url", d.webhook_url, check_webhook_url)
    apprise_urls = tuple(url for _, url in table.strings("apprise_urls", check_glob) or ())
    if apprise_urls and importlib.util.find_spec("apprise") is None:
        table.error("apprise_urls", "needs Apprise: install the optional extra "
                    "bgcut-watchd[notify] (pip install 'bgcut-watchd[notify]')")
    digest_s = table.number("digest_s", d.digest_s, exclusive=False)
    return NotifyConfig(webhook_url=webhook_url, apprise_urls=apprise_urls, digest_s=digest_s)


def _parse_budget(table: Table) -> BudgetConfig:
    table.reject_unknown(_keys(BudgetConfig))
    d = BudgetConfig
    return BudgetConfig(
        first_variant_min_credits=table.number(
            "first_variant_min_credits", d.first_variant_min_credits, exclusive=False),
        first_variant_max_credits=table.number(
            "first_variant_max_credits", d.first_variant_max_credits, exclusive=False),
        first_variant_max_at_pixels=table.integer(
            "first_variant_max_at_pixels", d.first_variant_max_at_pixels, minimum=1),
        extra_variant_credits=table.number(
            "extra_variant_credits", d.extra_variant_credits, exclusive=False),
        autocrop_credits=table.number("autocrop_credits", d.autocrop_credits, exclusive=False),
        max_credits_per_day=table.number(
            "max_credits_per_day", d.max_credits_per_day, exclusive=False),
    )


def _parse_variants(root: Table) -> tuple[dict[str, Variant], set[str]]:
    """Every ``[variants.<name>]``, and the names of those that have problems."""
    if root.has("variants") and not isinstance(root.data["variants"], Mapping):
        kind = type_name(root.data["variants"])
        root.error("variants", f"expected a table of [variants.<name>] tables, got {kind}")
        return {}, set()
    section = root.table("variants")
    if not section.data:
        root.error("variants", "at least one [variants.<name>] table is required")
    variants: dict[str, Variant] = {}
    broken: set[str] = set()
    for name in section.data:
        errors_before = len(root.problems.errors)
        variants[name] = _parse_variant(section, name)
        if len(root.problems.errors) > errors_before:
            broken.add(name)
    return variants, broken


def _parse_variant(section: Table, name: str) -> Variant:
    problem = check_name(name)
    if problem is not None:
        section.error(name, problem)
    table = section.table(name)
    table.reject_unknown(_keys(Variant, "name"))
    d = Variant
    variant = Variant(
        name=name,
        format=table.choice("format", d.format, tuple(FORMAT_EXTENSIONS)),
        max_resolution=table.integer("max_resolution", d.max_resolution, 4096, 25_000_000),
        quality=table.choice("quality", d.quality, QUALITIES),
        background_color=table.optional_string("background_color", check_color),
        output_compression=table.integer("output_compression", d.output_compression, 1, 100),
        autocrop=table.boolean("autocrop", d.autocrop),
    )
    warn_about_variant(table, variant)
    return variant


def _parse_folders(
    root: Table, variants: Mapping[str, Variant], broken: set[str], base: Path
) -> list[tuple[int, FolderConfig]]:
    """Every ``[[folders]]`` that could be built, with its index in the file."""
    folders: list[tuple[int, FolderConfig]] = []
    for index, table in root.array_of_tables("folders"):
        folder = _parse_folder(table, variants, broken, base)
        if folder is not None:
            folders.append((index, folder))
    return folders


def _parse_folder(
    table: Table, variants: Mapping[str, Variant], broken: set[str], base: Path
) -> FolderConfig | None:
    """One ``[[folders]]`` table; None (its problems reported) when a required key is bad."""
    table.reject_unknown(_keys(FolderConfig))
    d = FolderConfig
    name = table.required_string("name", check_name)
    inbox, outbox, quarantine = (table.required_path(k, base) for k in _REQUIRED_PATHS)
    chosen = folder_variants(table, variants)
    on_success = table.choice("on_success", d.on_success, ("archive", "delete"))
    archive = table.path("archive", base)
    if on_success == "archive" and not table.has("archive"):
        table.error("archive", 'required when on_success = "archive" (the default)')
    recursive = table.boolean("recursive", d.recursive)
    watch = table.choice("watch", d.watch, ("auto", "inotify", "polling"))
    poll_interval_s = table.number("poll_interval_s", d.poll_interval_s)
    network_settle_s = table.number("network_settle_s", d.network_settle_s, exclusive=False)
    output_name = table.string("output_name", d.output_name, check_output_name)
    on_conflict = table.choice("on_conflict", d.on_conflict, ("rename", "overwrite"))
    ignore = table.strings("ignore", check_glob)
    reprocess_duplicates = table.boolean("reprocess_duplicates", d.reprocess_duplicates)
    remove_empty = table.boolean("remove_empty_subfolders", d.remove_empty_subfolders)
    archive_days = table.integer("archive_retention_days", d.archive_retention_days, minimum=0)
    quarantine_days = table.integer("quarantine_retention_days", d.quarantine_retention_days,
                                    minimum=0)
    keep_metadata = table.boolean("keep_metadata", d.keep_metadata)
    raw_files = table.choice("raw_files", d.raw_files, RAW_FILES_CHOICES)
    render = table.choice("render", d.render, RENDER_MODES)
    downscale = table.boolean("downscale_before_upload", d.downscale_before_upload)
    if name is None or inbox is None or outbox is None or quarantine is None or chosen is None:
        return None
    folder = FolderConfig(
        name=name, inbox=inbox, outbox=outbox, quarantine=quarantine, variants=chosen,
        archive=archive, on_success=on_success, recursive=recursive, watch=watch,
        poll_interval_s=poll_interval_s, network_settle_s=network_settle_s,
        output_name=output_name, on_conflict=on_conflict,
        ignore=tuple(item for _, item in ignore or ()), reprocess_duplicates=reprocess_duplicates,
        remove_empty_subfolders=remove_empty, archive_retention_days=archive_days,
        quarantine_retention_days=quarantine_days, keep_metadata=keep_metadata,
        raw_files=raw_files, render=render, downscale_before_upload=downscale,
    )
    check_folder(table, folder, broken)
    return folder
