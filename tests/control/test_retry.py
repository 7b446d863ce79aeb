"""Tests for bgcut_watchd.control.retry: backoff bounds and growth."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgcut_watchd.config.model import RetryConfig
from bgcut_watchd.control.retry import next_delay_s, should_retry

POLICY = RetryConfig(max_attempts=6, base_delay_s=2.0, max_delay_s=300.0)


@given(
    attempt=st.integers(min_value=1, max_value=5000),
    seed=st.integers(min_value=0, max_value=2**32),
    retry_after_s=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_delay_is_within_bounds_and_honours_retry_after(
    attempt: int, seed: int, retry_after_s: float | None
) -> None:
    delay_s = next_delay_s(POLICY, attempt, random.Random(seed), retry_after_s)
    assert 0.0 <= delay_s <= POLICY.max_delay_s
    if retry_after_s is None or math.isnan(retry_after_s):
        assert delay_s <= POLICY.base_delay_s * 2.0 ** min(attempt - 1, 64)
    else:
        assert delay_s >= min(max(retry_after_s, 0.0), POLICY.max_delay_s)


def test_delay_grows_exponentially_with_full_jitter_until_the_cap() -> None:
    rng = random.Random(1234)
    for attempt, ceiling_s in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 64.0), (9, 300.0), (30, 300.0)]:
        draws = [next_delay_s(POLICY, attempt, rng) for _ in range(2000)]
        assert max(draws) <= ceiling_s
        # Full jitter: the draws cover the whole range, from near zero to near the ceiling.
        assert min(draws) < 0.05 * ceiling_s
        assert max(draws) > 0.95 * ceiling_s
        assert 0.4 * ceiling_s < sum(draws) / len(draws) < 0.6 * ceiling_s


def test_delay_is_deterministic_for_a_seeded_rng() -> None:
    first = [next_delay_s(POLICY, a, random.Random(7)) for a in range(1, 10)]
    second = [next_delay_s(POLICY, a, random.Random(7)) for a in range(1, 10)]
    assert first == second


def test_retry_after_sets_a_floor_clamped_to_the_max_delay() -> None:
    rng = random.Random(0)
    assert next_delay_s(POLICY, 1, rng, retry_after_s=30.0) >= 30.0
    assert next_delay_s(POLICY, 1, rng, retry_after_s=3600.0) == 300.0
    assert next_delay_s(POLICY, 1, rng, retry_after_s=-5.0) <= 2.0


def test_attempt_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt"):
        next_delay_s(POLICY, 0, random.Random(0))


def test_should_retry_counts_attempts_up_to_max() -> None:
    retry = RetryConfig(max_attempts=3)
    assert [should_retry(retry, a) for a in (1, 2, 3, 4)] == [True, True, False, False]
