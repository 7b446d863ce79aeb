"""What the scheduler moves around: tickets in, outcomes back, and its statistics.

A :class:`JobTicket` is a cheap queue entry (folder name and path, nothing open), so 100,000
waiting files cost a few tens of megabytes, never threads, open files or decoded images.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum
from pathlib import Path

TicketKey = tuple[str, Path]


@dataclass(frozen=True)
class JobTicket:
    """A cheap queue entry: which folder, which file, which attempt, and the job once claimed."""

    folder: str
    path: Path
    attempt: int = 1
    job_id: str | None = None

    @property
    def key(self) -> TicketKey:
        """The identity used against duplicates: (folder, path)."""
        return (self.folder, self.path)

    def next_attempt(self) -> JobTicket:
        """The same ticket, one attempt further."""
        return replace(self, attempt=self.attempt + 1)


class OutcomeKind(Enum):
    """What ``run_job`` reports; the value is the stats counter it increments."""

    DONE = "done"
    QUARANTINED = "quarantined"
    SKIPPED = "skipped"  # nothing to do: the file vanished or another daemon claimed it
    RETRY = "retried"    # run again after ``delay_s`` as the next attempt
    PAUSED = "paused"    # run again after ``delay_s``, the attempt not counted


@dataclass(frozen=True)
class Outcome:
    """The result of one ``run_job`` call. Build it with the class methods."""

    kind: OutcomeKind
    delay_s: float = 0.0
    ticket: JobTicket | None = None  # what to run again; default: derived from the ticket run
    reason: str | None = None  # a quarantine's reason code (the failure policy's choice)

    @classmethod
    def done(cls) -> Outcome:
        return cls(OutcomeKind.DONE)

    @classmethod
    def quarantined(cls, reason: str) -> Outcome:
        """The input went to quarantine; ``reason`` is its error file's reason code."""
        return cls(OutcomeKind.QUARANTINED, reason=reason)

    @classmethod
    def skipped(cls) -> Outcome:
        return cls(OutcomeKind.SKIPPED)

    @classmethod
    def retry(cls, delay_s: float, ticket: JobTicket | None = None) -> Outcome:
        """Run again after ``delay_s``: ``ticket`` (e.g. with its job_id) or the next attempt."""
        return cls(OutcomeKind.RETRY, delay_s, ticket)

    @classmethod
    def paused(cls, delay_s: float, ticket: JobTicket | None = None) -> Outcome:
        """Run again after ``delay_s``: ``ticket`` or the same one, the attempt not counted."""
        return cls(OutcomeKind.PAUSED, delay_s, ticket)


@dataclass(frozen=True)
class FolderStats:
    """Counters of one folder (the ``finished`` ones since the scheduler was built)."""

    waiting: int = 0
    delayed: int = 0
    in_progress: int = 0
    done: int = 0
    quarantined: int = 0
    skipped: int = 0
    retried: int = 0
    paused: int = 0
    crashed: int = 0  # run_job raised: a bug in the runner, ticket dropped


@dataclass(frozen=True)
class SchedulerStats:
    """A consistent snapshot of the scheduler."""

    folders: dict[str, FolderStats]
    workers: int
    busy: int
    accepting: bool
    last_progress_at_s: float

    @property
    def total(self) -> FolderStats:
        """Every counter summed over the folders."""
        return FolderStats(**{
            f.name: sum(getattr(s, f.name) for s in self.folders.values())
            for f in fields(FolderStats)
        })
