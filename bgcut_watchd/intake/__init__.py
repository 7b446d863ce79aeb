"""Intake: the watchers (``watcher``, ``fstype``), the startup scan and rescan (``scan``), the
ignore rules (``ignore``), settling (``stability``), and the ``coordinator`` that ties them
together for the service."""

from __future__ import annotations

from bgcut_watchd.intake.coordinator import IntakeCoordinator

__all__ = ["IntakeCoordinator"]
