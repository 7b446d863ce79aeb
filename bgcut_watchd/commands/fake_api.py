"""``bgcut-watchd fake-api``: the built-in BackgroundCut v3 emulator (``bgcut_watchd.fake_api``).
"""

from __future__ import annotations

from bgcut_watchd.fake_api.cli import add_arguments, run

__all__ = ["add_arguments", "run"]
