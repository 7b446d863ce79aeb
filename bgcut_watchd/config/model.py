"""The configuration as data: frozen dataclasses whose fields are the TOML keys.

The shapes below are the public contract of product.md ("Configuration (TOML)"). Defaults here
are the documented defaults; ``config.example.toml`` documents every field (a test checks). This
module only describes values: reading them is ``load``, checking folders on disk ``folders``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CONFIG_PATH = Path("/etc/bgcut-watchd/config.toml")
CONFIG_ENV = "BGCUT_WATCHD_CONFIG"
API_KEY_ENV = "BGCUT_API_KEY"
API_KEY_CREDENTIAL = "api-key"

FORMAT_EXTENSIONS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp", "avif": "avif"}
QUALITIES = ("high", "medium", "low")
RAW_FILES_CHOICES = ("ignore", "quarantine")
RENDER_MODES = ("api", "local")


@dataclass(frozen=True)
class ApiConfig:
    base_url: str = "https://api.backgroundcut.co"
    api_key_file: Path | None = None
    connect_timeout_s: float = 10.0
    upload_timeout_s: float = 60.0
    process_timeout_s: float = 300.0
    download_timeout_s: float = 120.0
    max_requests_per_minute: int = 120
    upload_prefix: str = "bgcut-watchd"


@dataclass(frozen=True)
class DaemonConfig:
    workers: int = 4
    state_dir: Path = Path("/var/lib/bgcut-watchd")
    stability_s: float = 2.0
    rescan_interval_s: float = 300.0
    shutdown_timeout_s: float = 30.0
    max_input_bytes: int = 52_428_800
    max_input_pixels: int = 50_000_000


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 6
    base_delay_s: float = 2.0
    max_delay_s: float = 300.0
    auth_pause_s: float = 300.0
    credits_pause_s: float = 900.0
    disk_pause_s: float = 60.0


@dataclass(frozen=True)
class HttpConfig:
    """The daemon's one HTTP listener (status page, ``/metrics``, ``/api/status``,
    ``/healthz``); ``listen = ""`` (the default) means nothing listens."""

    listen: str = ""
    token_file: Path | None = None


@dataclass(frozen=True)
class NotifyConfig:
    """Where quarantines, pauses and stalls are announced; empty means nowhere."""

    webhook_url: str = ""
    apprise_urls: tuple[str, ...] = ()
    digest_s: float = 300.0


@dataclass(frozen=True)
class BudgetConfig:
    """The spend model (indicative public pricing, api-v3.md "Credits") and the daily cap."""

    first_variant_min_credits: float = 0.5
    first_variant_max_credits: float = 1.1
    first_variant_max_at_pixels: int = 25_000_000
    extra_variant_credits: float = 0.25
    autocrop_credits: float = 0.5
    max_credits_per_day: float = 0.0  # 0: no cap

    def call_credits(self, input_pixels: int, variants: Sequence[Variant]) -> float:
        """The expected credits of one process call asking for ``variants`` over an input of
        ``input_pixels``; 0 for none (``job.cost`` describes the model)."""
        if not variants:
            return 0.0
        pixels = min(input_pixels, max(v.max_resolution for v in variants))
        share = min(1.0, pixels / self.first_variant_max_at_pixels)
        low, high = self.first_variant_min_credits, self.first_variant_max_credits
        extra = self.extra_variant_credits * (len(variants) - 1)
        crops = self.autocrop_credits * sum(1 for v in variants if v.autocrop)
        return round(low + (high - low) * share + extra + crops, 6)


@dataclass(frozen=True)
class Variant:
    """One named output preset; fields take the API's values (api-v3.md)."""

    name: str
    format: str = "png"
    max_resolution: int = 12_000_000
    quality: str = "high"
    background_color: str | None = None
    output_compression: int = 85
    autocrop: bool = False

    @property
    def ext(self) -> str:
        """The usual file extension of this variant's format (``jpeg`` -> ``jpg``)."""
        return FORMAT_EXTENSIONS[self.format]


@dataclass(frozen=True)
class FolderConfig:
    name: str
    inbox: Path
    outbox: Path
    quarantine: Path
    variants: tuple[Variant, ...]
    archive: Path | None = None
    on_success: str = "archive"
    recursive: bool = True
    watch: str = "auto"
    poll_interval_s: float = 5.0
    network_settle_s: float = 30.0  # extra quiet on network filesystems (their caches lag)
    output_name: str = "{stem}.{variant}.{ext}"
    on_conflict: str = "rename"
    ignore: tuple[str, ...] = ()
    reprocess_duplicates: bool = False
    remove_empty_subfolders: bool = True
    archive_retention_days: int = 0
    quarantine_retention_days: int = 0
    keep_metadata: bool = True  # outputs carry the input's copyright, artist, date, caption
    raw_files: str = "ignore"  # camera RAW: "ignore" (left in the inbox) | "quarantine"
    render: str = "api"  # "local": one transparent cutout, variants rendered here (job.render)
    downscale_before_upload: bool = True  # larger than every variant needs: scaled down first


@dataclass(frozen=True)
class Config:
    api: ApiConfig
    daemon: DaemonConfig
    retry: RetryConfig
    variants: dict[str, Variant] = field(hash=False)
    folders: tuple[FolderConfig, ...]
    http: HttpConfig = HttpConfig()
    notify: NotifyConfig = NotifyConfig()
    source: Path | None = None
    warnings: tuple[str, ...] = ()
    budget: BudgetConfig = BudgetConfig()


def expand_output_name(template: str, stem: str, variant: Variant, folder_name: str) -> str:
    """``output_name`` expanded for one variant of input ``stem``: the one place the template's
    placeholders (``{stem}``, ``{variant}``, ``{ext}``, ``{folder}``) get their values.

    Raises KeyError for an unknown placeholder (the loader refuses such templates).
    """
    return template.format_map(
        {"stem": stem, "variant": variant.name, "ext": variant.ext, "folder": folder_name})


def variant_key(variants: Sequence[Variant]) -> str:
    """A stable hash of a folder's variant set: every Variant field, order-insensitive."""
    items = sorted(json.dumps(dataclasses.asdict(v), sort_keys=True) for v in variants)
    return hashlib.sha256(json.dumps(items).encode("ascii")).hexdigest()


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` -> ``("127.0.0.1", 9464)``; ``"[::1]:9464"`` -> ``("::1", 9464)``.

    Port 0 asks the kernel for a free port. Raises ValueError when ``listen`` is not
    ``HOST:PORT`` with a port in 0..65535.
    """
    host, sep, port_text = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or (":" in host and "[" not in listen):
        raise ValueError(f"expected HOST:PORT (an IPv6 address in brackets), got {listen!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
