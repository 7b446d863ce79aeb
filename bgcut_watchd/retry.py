"""Retry policy: how long to wait before the next attempt, and what a failure means.

Two pure pieces, no clock and no I/O:

* :class:`RetryPolicy`, an immutable value built from ``[retry]``: capped exponential backoff with
  full jitter (``uniform(0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1)))``), never shorter
  than a server's ``Retry-After`` (clamped to ``max_delay_s``).
* :func:`classify`, the one place where an exception becomes a :class:`Decision`. It looks at the
  exception's CLASS only (errors.py says who is to blame), never at its message.

Unexpected exceptions (a bug, an unwrapped ``OSError``...) classify as :attr:`Decision.UNEXPECTED`:
the job runner retries them exactly like :attr:`Decision.RETRY`, counted against ``max_attempts``,
so a programming error ends in quarantine (reason ``internal_error``) instead of looping forever.
They get their own member so the runner can log the traceback.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import Enum

from bgcut_watchd.config import RetryConfig
from bgcut_watchd.errors import (
    CreditsError,
    InputError,
    LocalDiskError,
    PauseError,
    TransientError,
)

# 2 ** 64 times any sane base delay is far beyond every cap; bounding the exponent keeps the
# arithmetic in floats (2 ** 1100 * 2.0 raises OverflowError) for absurd attempt numbers.
_MAX_EXPONENT = 64
DEFAULT_FOLDER_PAUSE_S = 60.0


class Decision(Enum):
    """What the job runner does with a failed job, by who is to blame."""

    RETRY = "retry"                  # network or service: retry with backoff, counted
    QUARANTINE = "quarantine"        # the input: quarantine at once
    PAUSE_AUTH = "pause_auth"        # 401: pause all API work, quarantine nothing
    PAUSE_CREDITS = "pause_credits"  # 402: likewise
    PAUSE_FOLDER = "pause_folder"    # local disk: keep the input, pause that folder
    UNEXPECTED = "unexpected"        # not a known failure: retry like RETRY, log the traceback

    @property
    def is_retry(self) -> bool:
        """True for the decisions that spend an attempt and retry (RETRY and UNEXPECTED)."""
        return self in (Decision.RETRY, Decision.UNEXPECTED)

    @property
    def is_pause(self) -> bool:
        """True for the decisions that pause work without spending an attempt."""
        return self in (Decision.PAUSE_AUTH, Decision.PAUSE_CREDITS, Decision.PAUSE_FOLDER)


def classify(exc: BaseException) -> Decision:
    """Map a failure to a :class:`Decision` from its class alone.

    ``ApiInputError`` is both an ``ApiError`` and an ``InputError``: the input is to blame, so it
    quarantines. A bare ``PauseError`` (neither 401 nor 402) pauses like an auth failure, the
    shorter pause. Raises nothing.
    """
    if isinstance(exc, InputError):
        return Decision.QUARANTINE
    if isinstance(exc, CreditsError):
        return Decision.PAUSE_CREDITS
    if isinstance(exc, PauseError):  # AuthError, and any other account/configuration pause
        return Decision.PAUSE_AUTH
    if isinstance(exc, LocalDiskError):
        return Decision.PAUSE_FOLDER
    if isinstance(exc, TransientError):
        return Decision.RETRY
    return Decision.UNEXPECTED


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, plus the pause lengths of ``[retry]``.

    ``attempt`` everywhere is 1-based: the number of attempts already made (the one that just
    failed included). Raises ``ValueError`` on construction when a field is out of range.
    """

    max_attempts: int = 6
    base_delay_s: float = 2.0
    max_delay_s: float = 300.0
    auth_pause_s: float = 300.0
    credits_pause_s: float = 900.0
    folder_pause_s: float = DEFAULT_FOLDER_PAUSE_S

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("invalid retry policy: " + "; ".join(problems))

    @classmethod
    def from_config(cls, config: RetryConfig) -> RetryPolicy:
        """Build the policy from ``[retry]``. Raises ``ValueError`` like the constructor."""
        return cls(
            max_attempts=config.max_attempts,
            base_delay_s=float(config.base_delay_s),
            max_delay_s=float(config.max_delay_s),
            auth_pause_s=float(config.auth_pause_s),
            credits_pause_s=float(config.credits_pause_s),
            folder_pause_s=float(config.disk_pause_s),
        )

    def next_delay_s(
        self, attempt: int, rng: random.Random, retry_after_s: float | None = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Full jitter: uniform in ``[0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1))]``.
        With a ``retry_after_s`` (the server's Retry-After) the delay is at least that value,
        clamped to ``[0, max_delay_s]``; ``NaN`` counts as absent. Draws exactly one number from
        ``rng``. Raises ``ValueError`` when ``attempt < 1``.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        ceiling_s = min(self.max_delay_s, self.base_delay_s * 2.0**exponent)
        delay_s = rng.uniform(0.0, ceiling_s)
        if retry_after_s is not None and not math.isnan(retry_after_s):
            floor_s = min(max(retry_after_s, 0.0), self.max_delay_s)
            delay_s = max(delay_s, floor_s)
        return min(delay_s, self.max_delay_s)

    def should_retry(self, attempt: int) -> bool:
        """True when another attempt is allowed after ``attempt`` attempts have failed."""
        return attempt < self.max_attempts

    def pause_s(self, decision: Decision) -> float:
        """How long ``decision`` pauses work. Raises ``ValueError`` for a non-pause decision."""
        if decision is Decision.PAUSE_AUTH:
            return self.auth_pause_s
        if decision is Decision.PAUSE_CREDITS:
            return self.credits_pause_s
        if decision is Decision.PAUSE_FOLDER:
            return self.folder_pause_s
        raise ValueError(f"{decision} is not a pause decision")


def _problems(policy: RetryPolicy) -> list[str]:
    """Every out-of-range field of ``policy``, named like its ``[retry]`` key."""
    problems: list[str] = []
    if policy.max_attempts < 1:
        problems.append(f"retry.max_attempts must be >= 1, got {policy.max_attempts}")
    for name in ("base_delay_s", "max_delay_s", "auth_pause_s", "credits_pause_s",
                 "folder_pause_s"):
        value = getattr(policy, name)
        if not math.isfinite(value) or value < 0:
            problems.append(f"retry.{name} must be a finite number >= 0, got {value}")
    if not problems and policy.max_delay_s < policy.base_delay_s:
        problems.append(
            f"retry.max_delay_s ({policy.max_delay_s}) must be >= retry.base_delay_s "
            f"({policy.base_delay_s})"
        )
    return problems
