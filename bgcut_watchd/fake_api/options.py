"""The emulator's knobs: one frozen value, validated on construction, updated by copy.

The same names are used by the constructor, the CLI flags (``--fail-5xx`` is ``fail_5xx``) and
the control endpoint (``POST /_control/`` with a JSON object of the fields to change).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_EXPIRY_S = 7200.0
DEFAULT_QUOTA_BYTES = 10 * 1024**3

SHARE_FIELDS = ("fail_5xx", "fail_429", "fail_reset", "fail_truncate", "fail_404_after_upload",
                "fail_html_200", "fail_cut_body")
LATENCY_FIELDS = ("latency_upload_s", "latency_process_s", "latency_download_s")
DRIBBLE_FIELDS = ("dribble_upload_bytes_per_s", "dribble_process_bytes_per_s",
                  "dribble_download_bytes_per_s")
PRICE_FIELDS = ("price_first_min", "price_first_max", "price_extra_variant", "price_autocrop")


@dataclass(frozen=True)
class FakeApiOptions:
    """Behaviour of the emulator; every field can also be changed while it runs.

    Shares are probabilities in 0..1 drawn per API request from ``random.Random(seed)``;
    0 never and 1 always injects the fault. ``fail_html_200`` answers a download 200 with a small
    HTML page (a maintenance page, captive portal or CDN error); ``fail_cut_body`` sends a
    download's first half with a Content-Length that matches it (the cut cannot be seen at the
    HTTP level). ``dribble_<endpoint>_bytes_per_s`` > 0 sends that endpoint's answer body at that
    rate (0: at once); with ``dribble_headers`` the status line and headers are dribbled too.

    Benchmark knobs: ``prerendered`` renders each variant once per input size and serves those
    bytes for every later input of that size (``fake_api.prerender``: valid outputs of the right
    format and size at almost no CPU; inputs are then checked by their header only). ``nagle``
    leaves Nagle's algorithm on for connections accepted from then on (no ``TCP_NODELAY``), as
    a server that never sets it does.

    Raises:
        ValueError: on construction, when a field is out of range or of the wrong type.
    """

    latency_upload_s: float = 0.0
    latency_process_s: float = 0.0
    latency_download_s: float = 0.0
    fail_5xx: float = 0.0
    fail_429: float = 0.0
    retry_after_s: int = 1
    fail_reset: float = 0.0
    fail_truncate: float = 0.0
    fail_404_after_upload: float = 0.0
    fail_html_200: float = 0.0
    fail_cut_body: float = 0.0
    dribble_upload_bytes_per_s: float = 0.0
    dribble_process_bytes_per_s: float = 0.0
    dribble_download_bytes_per_s: float = 0.0
    dribble_headers: bool = False
    auth_fail: bool = False
    credits_exhausted: bool = False
    prerendered: bool = False
    nagle: bool = False
    seed: int | None = None
    request_log: Path | None = None
    max_upload_bytes: int | None = None
    expiry_s: float = DEFAULT_EXPIRY_S
    quota_bytes: int = DEFAULT_QUOTA_BYTES
    credits_balance: float | None = None  # None: unlimited; changing it sets the balance
    price_first_min: float = 0.5
    price_first_max: float = 1.1
    price_full_at_pixels: int = 25_000_000
    price_extra_variant: float = 0.25
    price_autocrop: float = 0.5

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("invalid fake-api options: " + "; ".join(problems))

    def with_changes(self, changes: Mapping[str, Any]) -> FakeApiOptions:
        """Return a copy with ``changes`` applied (JSON-friendly values accepted).

        Raises:
            ValueError: for an unknown field name or an invalid value.
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(unknown)}")
        coerced = {name: _coerce(name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **coerced)

    def to_json(self) -> dict[str, Any]:
        """The options as a JSON-serialisable dict (paths as strings)."""
        data = dataclasses.asdict(self)
        data["request_log"] = None if self.request_log is None else str(self.request_log)
        return data


def _coerce(name: str, value: Any) -> Any:
    """Turn a JSON value into the field's Python type where that is lossless."""
    if name == "request_log" and isinstance(value, str):
        return Path(value)
    numbers = (SHARE_FIELDS + LATENCY_FIELDS + DRIBBLE_FIELDS + PRICE_FIELDS
               + ("expiry_s", "credits_balance"))
    if name in numbers and _is_int(value):
        return float(value)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _problems(options: FakeApiOptions) -> list[str]:
    """Every problem with ``options``, one line each (empty when valid)."""
    problems: list[str] = []
    for name in SHARE_FIELDS:
        value = getattr(options, name)
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            problems.append(f"{name} must be a number in 0..1, got {value!r}")
    for name in LATENCY_FIELDS + DRIBBLE_FIELDS:
        value = getattr(options, name)
        if not _is_number(value) or value < 0:
            problems.append(f"{name} must be a number >= 0, got {value!r}")
    for name in ("auth_fail", "credits_exhausted", "dribble_headers", "prerendered", "nagle"):
        if not isinstance(getattr(options, name), bool):
            problems.append(f"{name} must be a boolean")
    problems.extend(_scalar_problems(options))
    problems.extend(_price_problems(options))
    return problems


def _price_problems(options: FakeApiOptions) -> list[str]:
    problems = [f"{name} must be a number >= 0, got {getattr(options, name)!r}"
                for name in PRICE_FIELDS
                if not _is_number(getattr(options, name)) or getattr(options, name) < 0]
    balance = options.credits_balance
    if balance is not None and (not _is_number(balance) or balance < 0):
        problems.append(f"credits_balance must be a number >= 0 or null, got {balance!r}")
    pixels = options.price_full_at_pixels
    if not _is_int(pixels) or pixels < 1:
        problems.append(f"price_full_at_pixels must be an integer >= 1, got {pixels!r}")
    return problems


def _scalar_problems(options: FakeApiOptions) -> list[str]:
    problems: list[str] = []
    if not _is_int(options.retry_after_s) or options.retry_after_s < 0:
        problems.append(f"retry_after_s must be an integer >= 0, got {options.retry_after_s!r}")
    if options.seed is not None and not _is_int(options.seed):
        problems.append(f"seed must be an integer or null, got {options.seed!r}")
    if options.request_log is not None and not isinstance(options.request_log, Path):
        problems.append("request_log must be a path or null")
    limit = options.max_upload_bytes
    if limit is not None and (not _is_int(limit) or limit < 1):
        problems.append(f"max_upload_bytes must be an integer >= 1 or null, got {limit!r}")
    if not _is_number(options.expiry_s) or options.expiry_s <= 0:
        problems.append(f"expiry_s must be a number > 0, got {options.expiry_s!r}")
    if not _is_int(options.quota_bytes) or options.quota_bytes < 0:
        problems.append(f"quota_bytes must be an integer >= 0, got {options.quota_bytes!r}")
    return problems
