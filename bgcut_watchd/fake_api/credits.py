"""What a process call costs and the account it is charged to: the public pricing of
api-v3.md ("Credits"), with the emulator's own numbers as options.

The first variant costs between ``price_first_min`` and ``price_first_max`` credits, linear in
the megapixels rendered (the input's pixels, capped at the largest ``max_resolution`` asked
for) up to ``price_full_at_pixels``; every further variant ``price_extra_variant``; every
``autocrop`` variant ``price_autocrop`` more. The daemon's ``[budget]`` uses the same formula
(``bgcut_watchd.job.cost``): the emulator imports nothing of the daemon, so it is written twice
and a test holds the two to the same numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Pricing:
    """The pricing numbers (indicative, from the public page)."""

    first_min: float = 0.5
    first_max: float = 1.1
    full_at_pixels: int = 25_000_000
    extra_variant: float = 0.25
    autocrop: float = 0.5


def call_credits(pricing: Pricing, input_pixels: int,
                 variants: Sequence[tuple[int, bool]]) -> float:
    """Credits of one process call over an input of ``input_pixels`` asking for ``variants``
    given as ``(max_resolution, autocrop)`` pairs; 0 for no variant."""
    if not variants:
        return 0.0
    pixels = min(input_pixels, max(max_res for max_res, _ in variants))
    share = min(1.0, pixels / pricing.full_at_pixels)
    first = pricing.first_min + (pricing.first_max - pricing.first_min) * share
    extra = pricing.extra_variant * (len(variants) - 1)
    crops = pricing.autocrop * sum(1 for _, crop in variants if crop)
    return round(first + extra + crops, 6)


class CreditAccount:
    """The emulator's balance (None: unlimited) and what it charged. Thread-safe."""

    def __init__(self, balance: float | None) -> None:
        self._lock = threading.Lock()
        self._balance = balance
        self._charged = 0.0
        self._calls = 0

    def set_balance(self, balance: float | None) -> None:
        """A new balance (a top-up, or ``POST /_control/ {"credits_balance": ...}``)."""
        with self._lock:
            self._balance = balance

    def charge(self, credits: float) -> bool:
        """Take ``credits``; False (nothing taken) when the balance is short."""
        with self._lock:
            if self._balance is not None and self._balance + 1e-9 < credits:
                return False
            if self._balance is not None:
                self._balance = round(self._balance - credits, 6)
            self._charged = round(self._charged + credits, 6)
            self._calls += 1
            return True

    def refund(self, credits: float) -> None:
        """Give back a ``charge`` of ``credits`` for a call answered 400 after all (api-v3.md:
        "A 400 is not charged")."""
        with self._lock:
            if self._balance is not None:
                self._balance = round(self._balance + credits, 6)
            self._charged = round(self._charged - credits, 6)
            self._calls -= 1

    def snapshot(self) -> dict[str, float | int | None]:
        """The ``usage`` fields: ``credits_balance`` (null: unlimited), ``credits_charged``
        and ``charged_calls`` since the emulator started."""
        with self._lock:
            return {"credits_balance": self._balance, "credits_charged": self._charged,
                    "charged_calls": self._calls}
