"""The torture suite (issue 5): kill -9, API chaos, 401/402 outages, a full disk, hostile inputs
and names, two daemons on one inbox; every test marked ``torture``.

Two sizes, chosen by ``BGCUT_TORTURE``:

* ``quick`` (the default, run by every ``pytest`` and so by CI): a few minutes on two cores;
* ``long``: the issue's full figures, minutes to an hour::

      BGCUT_TORTURE=long python -m pytest -m torture tests/torture -rP

``-rP`` prints each test's measured figures; the summary at the end of the run lists them too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

MODE_VARIABLE = "BGCUT_TORTURE"

Report = Callable[[str], None]
"""The ``torture_report`` fixture: ``report(text)`` prints a measured figure and lists it in
the summary at the end of the run."""


@dataclass(frozen=True)
class TortureSizes:
    """How hard each torture test pushes; ``quick`` or ``long`` (see the module docstring)."""

    mode: str
    kill_rounds: int          # kill -9 rounds while the files stream in
    kill_files: int           # files streamed in during the kill rounds
    kill_moment_scale: float  # scales the random wait before each kill
    chaos_files: int          # inputs sent through the faulty API
    outage_s: float           # how long the 401, then the 402, lasts
    pause_s: float            # retry.auth_pause_s and retry.credits_pause_s meanwhile
    disk_files: int           # inputs dropped while the outbox is full
    name_examples: int        # hypothesis examples of hostile file names...
    names_per_example: int    # ...each this many names
    twin_files: int           # files dropped into the inbox two daemons share
    timeout_s: float          # per test (pytest-timeout)


QUICK = TortureSizes(mode="quick", kill_rounds=30, kill_files=300, kill_moment_scale=1.0,
                     chaos_files=80, outage_s=3.0, pause_s=1.0, disk_files=12,
                     name_examples=12, names_per_example=6, twin_files=100, timeout_s=240.0)
LONG = TortureSizes(mode="long", kill_rounds=200, kill_files=300, kill_moment_scale=1.0,
                    chaos_files=300, outage_s=30.0, pause_s=5.0, disk_files=60,
                    name_examples=100, names_per_example=8, twin_files=300, timeout_s=1800.0)


def torture_sizes(environ: dict[str, str] | None = None) -> TortureSizes:
    """The sizes ``BGCUT_TORTURE`` asks for (unset or empty: quick).

    Raises ValueError for any other value than quick or long.
    """
    mode = (environ if environ is not None else dict(os.environ)).get(MODE_VARIABLE, "") or "quick"
    sizes = {"quick": QUICK, "long": LONG}.get(mode.strip().lower())
    if sizes is None:
        raise ValueError(f"{MODE_VARIABLE} must be 'quick' or 'long', not {mode!r}")
    return sizes


SIZES = torture_sizes()
