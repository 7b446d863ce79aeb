"""The one place where HTTP answers and transport failures become exceptions.

Statuses map to the tree of :mod:`bgcut_watchd.errors` by who is to blame::

    2xx                     no error
    400 413 415 422         ApiInputError          the input (413: reason "too_large")
    401 403                 AuthError              the API key
    402                     CreditsError           the account
    404 410                 RemoteFileMissingError expiry or regional routing
    429                     RateLimitedError       with Retry-After clamped to [0, 3600] s, or None
    502 504                 AmbiguousOutcomeError  a gateway gave up: the call may have run
    other 5xx, 408, others  ServiceError

Transport failures (timeouts, resets, truncated or malformed bodies) are ``ServiceError``
(``UnreachableError`` when no connection was made: refused, DNS, connect timeout);
those that happen once the request may have reached the server are the subclass
``AmbiguousOutcomeError``, so the job layer can check for a process call's outputs before
paying for it twice (api-v3.md, "Credits"). A call aborted at its total deadline
(``api.deadline``) is one of these too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

import requests
from urllib3.exceptions import NewConnectionError

from bgcut_watchd.errors import (
    AmbiguousOutcomeError,
    ApiError,
    ApiInputError,
    AuthError,
    CreditsError,
    RateLimitedError,
    RemoteFileMissingError,
    ServiceError,
    UnreachableError,
)

RETRY_AFTER_MAX_S = 3600.0
DETAIL_MAX_CHARS = 300

_INPUT_STATUSES = frozenset({400, 413, 415, 422})
_AUTH_STATUSES = frozenset({401, 403})
_MISSING_STATUSES = frozenset({404, 410})
_AMBIGUOUS_STATUSES = frozenset({502, 504})
_NEVER_SENT: tuple[type[Exception], ...] = (
    requests.ConnectTimeout,
    requests.exceptions.SSLError,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)


def truncate(text: str, max_chars: int = DETAIL_MAX_CHARS) -> str:
    """Collapse whitespace and cut ``text`` to ``max_chars`` characters (with an ellipsis)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…"


def detail_from_body(body: bytes) -> str:
    """The server's ``detail`` from an error body, else the body text, truncated."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed: object = json.loads(text)
    except ValueError:
        return truncate(text) or "(empty body)"
    if isinstance(parsed, dict) and "detail" in parsed:
        detail = parsed["detail"]
        return truncate(detail if isinstance(detail, str) else json.dumps(detail))
    return truncate(text)


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), clamped.

    ``now_s`` is the current wall-clock time (epoch seconds) for the HTTP-date form.
    Returns None when the header is absent or unreadable. Never raises.
    """
    if value is None or not value.strip():
        return None
    seconds = _delay_seconds(value.strip())
    if seconds is None:
        seconds = _seconds_until_date(value.strip(), now_s)
    if seconds is None:
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def _delay_seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _seconds_until_date(value: str, now_s: float) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now_s


def error_for_status(
    endpoint: str, status: int, body: bytes, retry_after: str | None, now_s: float
) -> ApiError | None:
    """The exception for an HTTP answer, or None for a 2xx.

    ``body`` must already be free of secrets (the client redacts it); only the ``detail``
    of it, truncated, reaches the message. ``now_s`` is wall-clock epoch seconds.
    """
    if 200 <= status < 300:
        return None
    detail = detail_from_body(body)
    if status in _INPUT_STATUSES:
        return ApiInputError(endpoint, detail, status)
    if status in _AUTH_STATUSES:
        return AuthError(endpoint, detail, status)
    if status == 402:
        return CreditsError(endpoint, detail, status)
    if status in _MISSING_STATUSES:
        return RemoteFileMissingError(endpoint, detail, status)
    if status == 429:
        return RateLimitedError(endpoint, detail, status, parse_retry_after(retry_after, now_s))
    if status in _AMBIGUOUS_STATUSES:
        return AmbiguousOutcomeError(endpoint, detail, status)
    if status >= 500:
        return ServiceError(endpoint, detail, status)
    return ServiceError(endpoint, f"unexpected status: {detail}", status)


def transport_error(
    endpoint: str, exc: Exception, redact: Callable[[str], str]
) -> ServiceError:
    """The exception for a request that got no complete answer (timeout, reset, truncation).

    ``redact`` scrubs secrets from the underlying error's text before it is quoted.
    """
    what = truncate(redact(f"{type(exc).__name__}: {exc}"))
    if not _may_have_been_sent(exc):
        return UnreachableError(endpoint, f"request not sent: {what}")
    if isinstance(exc, requests.Timeout):
        return AmbiguousOutcomeError(endpoint, f"timed out waiting for the answer: {what}")
    return AmbiguousOutcomeError(endpoint, f"connection lost: {what}")


def deadline_error(endpoint: str, budget_s: float, ambiguous: bool) -> ServiceError:
    """The exception for a call aborted at its total deadline (connect + endpoint timeout).

    ``ambiguous``: the call may have run (an answer that never completed, a JSON body); a
    download's broken body is a plain ``ServiceError``, as when it breaks off by itself.
    """
    detail = f"no complete answer within {budget_s:g} s, the call's total deadline: aborted"
    error_class = AmbiguousOutcomeError if ambiguous else ServiceError
    return error_class(endpoint, detail)


def _may_have_been_sent(exc: Exception) -> bool:
    """False only when the connection was never established (the server saw nothing)."""
    if isinstance(exc, _NEVER_SENT):
        return False
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError):
            return False
        reason = getattr(current, "reason", None)
        nested = current.args[0] if current.args else None
        current = (
            reason if isinstance(reason, BaseException)
            else nested if isinstance(nested, BaseException)
            else current.__cause__ or current.__context__
        )
    return True
