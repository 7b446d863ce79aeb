"""Figures and their targets, and the small statistics the benchmarks report."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One measured figure; ``met`` is None when the figure has no target (informational)."""

    bench: str
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "info"
        return "met" if self.met else "NOT met"

    def shown_value(self) -> str:
        """The value with 4 significant digits (thousands separated) and its unit."""
        text = f"{self.value:,.0f}" if abs(self.value) >= 10000 else f"{self.value:.4g}"
        return f"{text} {self.unit}".strip()

    def line(self) -> str:
        target = f" (target {self.target})" if self.target else ""
        note = f"  [{self.note}]" if self.note else ""
        return f"{self.bench}: {self.name} = {self.shown_value()}{target}: {self.verdict}{note}"

    def to_json(self) -> dict[str, Any]:
        return {"bench": self.bench, "name": self.name, "value": self.value, "unit": self.unit,
                "target": self.target, "met": self.met, "note": self.note}


def at_least(bench: str, name: str, value: float, unit: str, minimum: float,
             note: str = "") -> Figure:
    return Figure(bench, name, value, unit, f">= {minimum:g} {unit}".strip(),
                  value >= minimum, note)


def at_most(bench: str, name: str, value: float, unit: str, maximum: float,
            note: str = "") -> Figure:
    return Figure(bench, name, value, unit, f"<= {maximum:g} {unit}".strip(),
                  value <= maximum, note)


def info(bench: str, name: str, value: float, unit: str, note: str = "") -> Figure:
    return Figure(bench, name, value, unit, "", None, note)


# -- statistics ------------------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    """The median (raises ValueError on an empty sequence)."""
    if not values:
        raise ValueError("median of nothing")
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (``pct`` in 0..100) of at least one value."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of nothing")
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
