"""The engine: wiring (``engine``), the claim path (``claim``), the failure policy
(``failures``), recovery of orphaned jobs (``recovery``), single flight of identical content
(``inflight``), the daily spend cap (``budget``), the ledger as jobs write it (``history``) and
what the engine tells its observer (``observe``)."""

from __future__ import annotations

from bgcut_watchd.engine.engine import Engine

__all__ = ["Engine"]
