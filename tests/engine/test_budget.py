"""The spend model and the daily budget: the same numbers as the emulator's pricing, the cap
held before a call is sent, answered errors not counted, a resume lifting the cap for the day,
a new day starting afresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bgcut_watchd.config.model import BudgetConfig, Variant
from bgcut_watchd.control.pause import PauseReason, ProbedPause
from bgcut_watchd.engine.budget import DailyBudget
from bgcut_watchd.errors import AmbiguousOutcomeError, BudgetExceededError, CreditsError
from bgcut_watchd.fake_api.credits import Pricing
from bgcut_watchd.fake_api.credits import call_credits as emulator_credits
from bgcut_watchd.job.cost import call_credits
from bgcut_watchd.job.render import master_variant
from bgcut_watchd.ledger import Ledger

EXAMPLE = (Variant("full"), Variant("thumb", format="webp", max_resolution=40_000,
                                    autocrop=True),
           Variant("white", format="jpeg", background_color="#ffffff"))


@pytest.mark.parametrize("pixels", [3_072, 2_000_000, 12_000_000, 24_000_000, 40_000_000])
@pytest.mark.parametrize("variants", [EXAMPLE, (master_variant(EXAMPLE),), EXAMPLE[1:]])
def test_the_daemon_estimates_what_the_emulator_charges(pixels: int,
                                                        variants: tuple[Variant, ...]) -> None:
    pairs = [(v.max_resolution, v.autocrop) for v in variants]
    assert call_credits(BudgetConfig(), pixels, variants) == pytest.approx(
        emulator_credits(Pricing(), pixels, pairs))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def parts(tmp_path: Path) -> tuple[DailyBudget, ProbedPause, Clock, Ledger]:
    clock, pause = Clock(), ProbedPause("API work")
    ledger = Ledger(tmp_path)
    return (DailyBudget(BudgetConfig(max_credits_per_day=2.0), ledger, pause, clock),
            pause, clock, ledger)


def _pay(budget: DailyBudget, variants: tuple[Variant, ...] = (Variant("full"),)) -> None:
    with budget.paying("studio", 3_072, variants):
        pass


def test_the_cap_pauses_before_a_call_crossing_it_and_resume_lifts_it(
        parts: tuple[DailyBudget, ProbedPause, Clock, Ledger]) -> None:
    budget, pause, clock, ledger = parts
    _pay(budget)
    _pay(budget)  # about 1.0 spent
    with pytest.raises(BudgetExceededError) as raised:
        _pay(budget, EXAMPLE)  # about 1.5 more: over 2
    assert pause.state().reason is PauseReason.BUDGET
    assert pause.state().detail == "daily budget of 2 credits reached"
    local_now = clock.now.astimezone()
    midnight = (local_now + timedelta(days=1)).replace(hour=0, minute=0, second=0)
    assert raised.value.pause_s == pytest.approx((midnight - local_now).total_seconds(), abs=2)
    with pytest.raises(BudgetExceededError):
        _pay(budget, EXAMPLE)  # still over: still refused
    pause.resume()  # an operator's resume
    _pay(budget, EXAMPLE)
    day = local_now.date().isoformat()
    assert ledger.credits_spent(day, day)["studio"] > 2.0


def test_answered_errors_are_not_counted_ambiguous_ones_are(
        parts: tuple[DailyBudget, ProbedPause, Clock, Ledger]) -> None:
    budget, _, clock, ledger = parts
    with pytest.raises(CreditsError), budget.paying("studio", 3_072, (Variant("full"),)):
        raise CreditsError("process", "Insufficient credits.", 402)
    day = clock.now.astimezone().date().isoformat()
    assert ledger.credits_spent(day, day) == {}
    with pytest.raises(AmbiguousOutcomeError), budget.paying("studio", 3_072,
                                                             (Variant("full"),)):
        raise AmbiguousOutcomeError("process", "timed out")
    assert ledger.credits_spent(day, day)["studio"] == pytest.approx(0.500074)


def test_a_new_day_starts_afresh(parts: tuple[DailyBudget, ProbedPause, Clock, Ledger]) -> None:
    budget, pause, clock, _ = parts
    _pay(budget, EXAMPLE)
    with pytest.raises(BudgetExceededError):
        _pay(budget, EXAMPLE)
    clock.now += timedelta(days=1)
    pause.resume()  # what the probe at 00:00 does when its call succeeds
    _pay(budget, EXAMPLE)  # a new day: within the cap again, no waiver needed
    with pytest.raises(BudgetExceededError):
        _pay(budget, EXAMPLE)


def test_one_credit_is_singular_and_a_trip_logs_its_pause_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every job that reaches its paid call while the budget pause runs is refused (handed
    back), but the pause is not renewed, so it is logged once, not once per job."""
    pause = ProbedPause("API work")
    budget = DailyBudget(BudgetConfig(max_credits_per_day=1.0), Ledger(tmp_path), pause, Clock())
    _pay(budget)  # about 0.5
    with caplog.at_level("INFO"):
        for _ in range(3):  # three workers' jobs, one after the other
            with pytest.raises(BudgetExceededError):
                _pay(budget, EXAMPLE)
    assert pause.state().detail == "daily budget of 1 credit reached"
    paused = [r.getMessage() for r in caplog.records if "paused" in r.getMessage()]
    assert len(paused) == 1 and paused[0].startswith("API work paused: "), paused
