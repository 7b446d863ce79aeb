"""The engine: wiring (``engine``), the claim path (``claim``), the failure policy
(``failures``) and recovery of orphaned jobs (``recovery``)."""

from __future__ import annotations

from bgcut_watchd.engine.engine import Engine

__all__ = ["Engine"]
