"""Intake: the watchers (``watcher``, ``watchset``, ``fstype``), the startup scan and rescan
(``scan``), the ignore rules (``ignore``), settling (``stability``), files still open for writing
(``writers``), file signatures (``sniff``), camera RAW files left in the inbox (``rawfiles``), and
the ``coordinator`` that ties them together for the service."""

from __future__ import annotations

from bgcut_watchd.intake.coordinator import IntakeCoordinator

__all__ = ["IntakeCoordinator"]
