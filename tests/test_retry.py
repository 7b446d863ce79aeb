"""Tests for bgcut_watchd.retry: backoff bounds and growth, and the classification table."""

from __future__ import annotations

import inspect
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgcut_watchd import errors
from bgcut_watchd.config import RetryConfig
from bgcut_watchd.retry import Decision, RetryPolicy, classify

POLICY = RetryPolicy(max_attempts=6, base_delay_s=2.0, max_delay_s=300.0)


@given(
    attempt=st.integers(min_value=1, max_value=5000),
    seed=st.integers(min_value=0, max_value=2**32),
    retry_after_s=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_delay_is_within_bounds_and_honours_retry_after(
    attempt: int, seed: int, retry_after_s: float | None
) -> None:
    delay_s = POLICY.next_delay_s(attempt, random.Random(seed), retry_after_s)
    assert 0.0 <= delay_s <= POLICY.max_delay_s
    if retry_after_s is None or math.isnan(retry_after_s):
        assert delay_s <= POLICY.base_delay_s * 2.0 ** min(attempt - 1, 64)
    else:
        assert delay_s >= min(max(retry_after_s, 0.0), POLICY.max_delay_s)


def test_delay_grows_exponentially_with_full_jitter_until_the_cap() -> None:
    rng = random.Random(1234)
    for attempt, ceiling_s in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 64.0), (9, 300.0), (30, 300.0)]:
        draws = [POLICY.next_delay_s(attempt, rng) for _ in range(2000)]
        assert max(draws) <= ceiling_s
        # Full jitter: the draws cover the whole range, from near zero to near the ceiling.
        assert min(draws) < 0.05 * ceiling_s
        assert max(draws) > 0.95 * ceiling_s
        assert 0.4 * ceiling_s < sum(draws) / len(draws) < 0.6 * ceiling_s


def test_delay_is_deterministic_for_a_seeded_rng() -> None:
    first = [POLICY.next_delay_s(a, random.Random(7)) for a in range(1, 10)]
    second = [POLICY.next_delay_s(a, random.Random(7)) for a in range(1, 10)]
    assert first == second


def test_retry_after_sets_a_floor_clamped_to_the_max_delay() -> None:
    rng = random.Random(0)
    assert POLICY.next_delay_s(1, rng, retry_after_s=30.0) >= 30.0
    assert POLICY.next_delay_s(1, rng, retry_after_s=3600.0) == 300.0
    assert POLICY.next_delay_s(1, rng, retry_after_s=-5.0) <= 2.0


def test_attempt_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt"):
        POLICY.next_delay_s(0, random.Random(0))


def test_should_retry_counts_attempts_up_to_max() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.should_retry(a) for a in (1, 2, 3, 4)] == [True, True, False, False]


def test_from_config_copies_every_retry_key() -> None:
    config = RetryConfig(max_attempts=4, base_delay_s=1.5, max_delay_s=60.0,
                         auth_pause_s=120.0, credits_pause_s=600.0, disk_pause_s=30.0)
    policy = RetryPolicy.from_config(config)
    assert policy == RetryPolicy(4, 1.5, 60.0, 120.0, 600.0, 30.0)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"base_delay_s": -1.0}, "retry.base_delay_s"),
        ({"max_delay_s": math.nan}, "retry.max_delay_s"),
        ({"base_delay_s": 10.0, "max_delay_s": 5.0}, "retry.max_delay_s"),
        ({"auth_pause_s": math.inf}, "retry.auth_pause_s"),
    ],
)
def test_invalid_policy_names_the_key(kwargs: dict[str, float], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_pause_lengths_per_decision() -> None:
    policy = RetryPolicy(auth_pause_s=1.0, credits_pause_s=2.0, folder_pause_s=3.0)
    assert policy.pause_s(Decision.PAUSE_AUTH) == 1.0
    assert policy.pause_s(Decision.PAUSE_CREDITS) == 2.0
    assert policy.pause_s(Decision.PAUSE_FOLDER) == 3.0
    with pytest.raises(ValueError):
        policy.pause_s(Decision.RETRY)


# Every exception class of errors.py must appear here: a new class fails this test until
# someone decides, on purpose, what it means.
EXPECTED = {
    "BgcutError": Decision.UNEXPECTED,
    "ConfigError": Decision.UNEXPECTED,
    "InputError": Decision.QUARANTINE,
    "LocalInputError": Decision.QUARANTINE,
    "ApiError": Decision.UNEXPECTED,
    "ApiInputError": Decision.QUARANTINE,
    "TransientError": Decision.RETRY,
    "ServiceError": Decision.RETRY,
    "AmbiguousOutcomeError": Decision.RETRY,  # the runner looks for outputs before re-sending
    "RateLimitedError": Decision.RETRY,
    "RemoteFileMissingError": Decision.RETRY,
    "PauseError": Decision.PAUSE_AUTH,
    "AuthError": Decision.PAUSE_AUTH,
    "CreditsError": Decision.PAUSE_CREDITS,
    "LocalDiskError": Decision.PAUSE_FOLDER,
}


def _error_classes() -> dict[str, type[BaseException]]:
    return {
        name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }


def test_the_table_covers_every_class_of_errors_py() -> None:
    assert set(_error_classes()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_classify_by_class(name: str) -> None:
    cls = _error_classes()[name]
    # No __init__: classify must not depend on the message or any attribute.
    assert classify(cls.__new__(cls)) is EXPECTED[name]


def test_classify_ignores_the_message() -> None:
    assert classify(errors.ServiceError("upload", "401 invalid api key", 503)) is Decision.RETRY
    assert classify(errors.AuthError("upload", "server error, retry", 401)) is Decision.PAUSE_AUTH


@pytest.mark.parametrize("exc", [ValueError("bug"), OSError(5, "EIO"), KeyError("x"),
                                 SystemExit(1)])
def test_unexpected_exceptions_retry_and_are_counted(exc: BaseException) -> None:
    decision = classify(exc)
    assert decision is Decision.UNEXPECTED
    assert decision.is_retry and not decision.is_pause


def test_decision_families() -> None:
    assert {d for d in Decision if d.is_retry} == {Decision.RETRY, Decision.UNEXPECTED}
    assert {d for d in Decision if d.is_pause} == {
        Decision.PAUSE_AUTH, Decision.PAUSE_CREDITS, Decision.PAUSE_FOLDER}
