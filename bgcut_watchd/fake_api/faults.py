"""Which fault, if any, a request gets: seeded dice over the shares in ``FakeApiOptions``.

Every API request draws the same number of random numbers, whatever its endpoint and whichever
shares are set, so a seed gives the same sequence of draws however the shares are changed. The
faults of the answer's content (an HTML page, a cut body) are drawn from a second generator of
the same seed, so adding them left every earlier seed's sequence of transport faults unchanged.
Dribbling is no share: ``dribble_<endpoint>_bytes_per_s`` slows every answer of that endpoint.
"""

from __future__ import annotations

import random
import threading

from werkzeug.exceptions import NotFound, ServiceUnavailable, TooManyRequests

from bgcut_watchd.fake_api.options import FakeApiOptions

FAULT_RESET = "reset"
FAULT_5XX = "5xx"
FAULT_429 = "429"
FAULT_TRUNCATE = "truncate"
FAULT_404 = "404"
FAULT_AUTH = "auth_fail"
FAULT_CREDITS = "credits_exhausted"
FAULT_HTML_200 = "html_200"
FAULT_CUT_BODY = "cut_body"
FAULT_DRIBBLE = "dribble"

# What a maintenance page, captive portal or CDN error looks like to a download: 200, text/html.
HTML_PAGE = (b"<!DOCTYPE html>\n<html><body><h1>Down for maintenance</h1></body></html>\n")

ENDPOINTS = ("upload", "process", "download", "usage")
_SHARE_FIELD = {
    FAULT_RESET: "fail_reset",
    FAULT_5XX: "fail_5xx",
    FAULT_429: "fail_429",
    FAULT_TRUNCATE: "fail_truncate",
    FAULT_404: "fail_404_after_upload",
}
_DRAW_ORDER = tuple(_SHARE_FIELD)
_CONTENT_SHARE_FIELD = {FAULT_HTML_200: "fail_html_200", FAULT_CUT_BODY: "fail_cut_body"}
_CONTENT_SEED_OFFSET = 0x5EED  # the content dice's seed: the same seed, shifted
_APPLICABLE = {
    "upload": (FAULT_RESET, FAULT_5XX, FAULT_429),
    "process": (FAULT_RESET, FAULT_5XX, FAULT_429, FAULT_404),
    "download": (FAULT_RESET, FAULT_5XX, FAULT_429, FAULT_TRUNCATE, FAULT_404, FAULT_HTML_200,
                 FAULT_CUT_BODY),
    "usage": (FAULT_RESET, FAULT_5XX, FAULT_429),
}
_LATENCY_FIELD = {
    "upload": "latency_upload_s",
    "process": "latency_process_s",
    "download": "latency_download_s",
}
_DRIBBLE_FIELD = {
    "upload": "dribble_upload_bytes_per_s",
    "process": "dribble_process_bytes_per_s",
    "download": "dribble_download_bytes_per_s",
}


class FaultDice:
    """Thread-safe seeded dice; ``seed=None`` seeds from the operating system."""

    def __init__(self, seed: int | None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._content_rng = random.Random(_content_seed(seed))

    def reseed(self, seed: int | None) -> None:
        """Restart the sequence of draws from ``seed``."""
        with self._lock:
            self._rng.seed(seed)
            self._content_rng.seed(_content_seed(seed))

    def roll(self, endpoint: str, options: FakeApiOptions) -> str | None:
        """The fault to inject into one request to ``endpoint`` (first hit wins), or None."""
        with self._lock:
            draws = {fault: self._rng.random() for fault in _DRAW_ORDER}
            draws |= {fault: self._content_rng.random() for fault in _CONTENT_SHARE_FIELD}
        shares = _SHARE_FIELD | _CONTENT_SHARE_FIELD
        for fault in _APPLICABLE.get(endpoint, ()):
            share: float = getattr(options, shares[fault])
            if draws[fault] < share:
                return fault
        return None


def _content_seed(seed: int | None) -> int | None:
    return None if seed is None else seed + _CONTENT_SEED_OFFSET


def latency_s(endpoint: str, options: FakeApiOptions) -> float:
    """The configured extra delay before answering ``endpoint`` (0 for usage)."""
    field = _LATENCY_FIELD.get(endpoint)
    return 0.0 if field is None else float(getattr(options, field))


def dribble_bytes_per_s(endpoint: str, options: FakeApiOptions) -> float:
    """The rate at which answers of ``endpoint`` are sent (0: at once, as usual)."""
    field = _DRIBBLE_FIELD.get(endpoint)
    return 0.0 if field is None else float(getattr(options, field))


def raise_fault(fault: str | None, options: FakeApiOptions) -> None:
    """Raise the HTTP answer of an answered fault (5xx, 429, 404); others are left to the caller.

    Raises:
        ServiceUnavailable: for ``5xx``.
        TooManyRequests: for ``429``, with ``retry_after`` from the options.
        NotFound: for ``404`` (a file in "another region").
    """
    if fault == FAULT_5XX:
        raise ServiceUnavailable(description="Service temporarily unavailable.")
    if fault == FAULT_429:
        raise TooManyRequests(
            description="Rate limit exceeded. Please slow down.", retry_after=options.retry_after_s
        )
    if fault == FAULT_404:
        raise NotFound(description="File not found.")
