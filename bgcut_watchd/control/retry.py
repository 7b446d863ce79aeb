"""The retry policy: the ``[retry]`` value itself (``config.model.RetryConfig``) and two pure
functions over it, no clock and no I/O.

Capped exponential backoff with full jitter: after failed attempt ``n`` (1-based) wait
``uniform(0, min(max_delay_s, base_delay_s * 2 ** (n - 1)))``, never less than a server's
``Retry-After`` (clamped to ``max_delay_s``). The randomness is injected. Which failures are
retried at all is the failure policy's decision (``engine.failures``).
"""

from __future__ import annotations

import math
import random

from bgcut_watchd.config.model import RetryConfig

# 2 ** 64 times any sane base delay is far beyond every cap; bounding the exponent keeps the
# arithmetic in floats (2 ** 1100 * 2.0 raises OverflowError) for absurd attempt numbers.
_MAX_EXPONENT = 64


def next_delay_s(
    retry: RetryConfig, attempt: int, rng: random.Random, retry_after_s: float | None = None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Full jitter: uniform in ``[0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1))]``. With a
    ``retry_after_s`` (the server's Retry-After) the delay is at least that value, clamped to
    ``[0, max_delay_s]``; ``NaN`` counts as absent. Draws exactly one number from ``rng``.
    Raises ``ValueError`` when ``attempt < 1``.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    exponent = min(attempt - 1, _MAX_EXPONENT)
    ceiling_s = min(retry.max_delay_s, retry.base_delay_s * 2.0**exponent)
    delay_s = rng.uniform(0.0, ceiling_s)
    if retry_after_s is not None and not math.isnan(retry_after_s):
        floor_s = min(max(retry_after_s, 0.0), retry.max_delay_s)
        delay_s = max(delay_s, floor_s)
    return min(delay_s, retry.max_delay_s)


def should_retry(retry: RetryConfig, attempt: int) -> bool:
    """True when another attempt is allowed after ``attempt`` consecutive failures."""
    return attempt < retry.max_attempts
