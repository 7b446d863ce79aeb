"""Torture fixtures: the figures each test measured, printed together at the end of the run."""

from __future__ import annotations

import pytest

from tests.torture import SIZES, Report

_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def torture_report(request: pytest.FixtureRequest) -> Report:
    """``report(text)``: print a measured figure now and list it in the run's summary."""
    figures = request.config.stash.setdefault(_FIGURES, [])
    name = request.node.name

    def report(text: str) -> None:
        print(f"\n[torture {SIZES.mode}] {name}: {text}")
        figures.append(f"{name}: {text}")

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    figures = config.stash.get(_FIGURES, [])
    if figures:
        terminalreporter.section(f"torture figures ({SIZES.mode})")
        for line in figures:
            terminalreporter.write_line(line)
