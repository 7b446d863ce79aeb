"""The ledger as the job path writes it: a record, not a gate.

The journal in the work area is the truth about a job; the ledger (``ledger.py``) is its history,
read by ``status`` and duplicate detection. So a ledger that cannot be written (``state_dir``
full, read-only, removed, the file locked by another process) must never stop, drop or strand a
job (issue 9, finding 11: each new file was claimed, its ledger write failed with "database or
disk is full", and the ticket was dropped). :class:`JobHistory` is a :class:`~ledger.Ledger`
whose job-path writes never raise:

* a failed write is kept in memory, per job (its claim and the fields it wanted to set, merged),
  and written again, in order, before the next write that works (any job's) and by
  :meth:`JobHistory.catch_up` (the service calls it every second): the history catches up by
  itself once space is freed;
* a job whose row is missing (the ledger file was replaced under us) is recorded again from its
  claim before its fields are set;
* the trouble is logged once when it starts and once when it ends, never once per job, and
  :attr:`JobHistory.problem` tells ``status`` and the systemd status line meanwhile;
* a failed read (duplicate lookup) is "no duplicate known".

Memory is bounded: beyond ``max_pending`` unwritten jobs the oldest record is given up, with a
warning. Reads for ``status`` and ``process`` go through the plain :class:`~ledger.Ledger` API.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgcut_watchd.clock import Clock
from bgcut_watchd.ledger import Ledger, PublishedOutput

log = logging.getLogger("bgcut_watchd.engine")

MAX_PENDING = 10_000  # jobs whose record waits in memory for the ledger to work again
RETRY_S = 1.0  # while the ledger fails, a write is tried at most this often (a locked file
#                costs busy_timeout per try: jobs must not wait for it each time)


@dataclass
class _Unwritten:
    """What one job still owes the ledger: its claim (if known) and the fields to set."""

    claim: tuple[tuple[Any, ...], dict[str, Any]] | None
    fields: dict[str, Any] = field(default_factory=dict)


class JobHistory(Ledger):
    """A ledger whose job-path writes never raise (see the module docstring). Thread-safe."""

    def __init__(self, state_dir: Path, *, max_pending: int = MAX_PENDING,
                 monotonic: Clock = time.monotonic) -> None:
        """Open the ledger like :class:`Ledger`; raises like it (start-up only)."""
        super().__init__(state_dir)
        self._max_pending = max_pending
        self._monotonic = monotonic
        self._next_try_s = 0.0
        self._claims: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}  # live jobs
        self._unwritten: OrderedDict[str, _Unwritten] = OrderedDict()
        self._state = threading.RLock()  # the two dicts and the problem; taken before the ledger's
        self.problem: str | None = None  # why the ledger cannot be written now, for status

    @property
    def unwritten(self) -> int:
        """How many jobs' records wait in memory."""
        with self._state:
            return len(self._unwritten)

    def record_claim(self, job_id: str, *args: Any, **kwargs: Any) -> None:
        """:meth:`Ledger.record_claim`, remembered for the job's lifetime. Raises nothing."""
        with self._state:
            self._claims[job_id] = (args, kwargs)
            self._write(job_id, {})

    def update(self, job_id: str, /, **fields: Any) -> bool:
        """:meth:`Ledger.update`; False when the record had to be kept for later. Raises
        ValueError for an unknown column or outcome (a bug), nothing else."""
        with self._state:
            return self._write(job_id, fields)

    def finish_done(self, job_id: str, *args: Any, **kwargs: Any) -> bool:
        """:meth:`Ledger.finish_done`; the job's claim is forgotten after. Raises nothing."""
        try:
            return super().finish_done(job_id, *args, **kwargs)
        finally:
            self._forget_claim(job_id)

    def finish_quarantined(self, job_id: str, *args: Any, **kwargs: Any) -> bool:
        """:meth:`Ledger.finish_quarantined`; the claim is forgotten after. Raises nothing."""
        try:
            return super().finish_quarantined(job_id, *args, **kwargs)
        finally:
            self._forget_claim(job_id)

    def earlier_outputs(self, sha256: str, variant_key: str) -> list[list[PublishedOutput]]:
        """:meth:`Ledger.earlier_outputs`, or none (no duplicate known) when the ledger cannot
        be read. Raises nothing."""
        try:
            return super().earlier_outputs(sha256, variant_key)
        except sqlite3.Error as exc:
            log.warning("ledger: cannot look for duplicates, processing anew: %s", exc)
            return []

    def catch_up(self) -> int:
        """Write what failed before; how many jobs' records are still waiting. Raises nothing."""
        with self._state:
            if self._unwritten:
                self._flush()
            return len(self._unwritten)

    # -- internals (call with self._state held) ---------------------------------------------

    def _write(self, job_id: str, fields: dict[str, Any]) -> bool:
        if self.problem is not None and self._monotonic() < self._next_try_s:
            self._keep(job_id, fields)  # in trouble: try again at most once a RETRY_S
            return False
        if self._unwritten and not self._flush():
            self._keep(job_id, fields)
            return False
        try:
            self._set(job_id, self._claims.get(job_id), fields)
        except sqlite3.Error as exc:
            self._trouble(exc)
            self._keep(job_id, fields)
            return False
        self._recovered()
        return True

    def _set(self, job_id: str, claim: tuple[tuple[Any, ...], dict[str, Any]] | None,
             fields: dict[str, Any]) -> None:
        """Record the claim if the row is missing, then the fields. Raises sqlite3.Error.

        No transaction around the two: after a failed write SQLite may have ended it already,
        and a row claimed without its fields is caught up like any other."""
        if not fields or not super().update(job_id, **fields):
            if claim is not None:
                super().record_claim(job_id, *claim[0], **claim[1])
            if fields:
                super().update(job_id, **fields)

    def _flush(self) -> bool:
        """Write every kept record, oldest first; True when none is left."""
        while self._unwritten:
            job_id, unwritten = next(iter(self._unwritten.items()))
            try:
                self._set(job_id, unwritten.claim, unwritten.fields)
            except sqlite3.Error as exc:
                self._trouble(exc)
                return False
            del self._unwritten[job_id]
        self._recovered()
        return True

    def _keep(self, job_id: str, fields: dict[str, Any]) -> None:
        unwritten = self._unwritten.get(job_id)
        if unwritten is None:
            unwritten = self._unwritten[job_id] = _Unwritten(self._claims.get(job_id))
        unwritten.fields.update(fields)
        if len(self._unwritten) > self._max_pending:
            lost, _ = self._unwritten.popitem(last=False)
            log.warning("ledger: more than %d unwritten records: job %s's is given up",
                        self._max_pending, lost)

    def _forget_claim(self, job_id: str) -> None:
        with self._state:
            self._claims.pop(job_id, None)

    def _trouble(self, exc: sqlite3.Error) -> None:
        self._next_try_s = self._monotonic() + RETRY_S
        if self.problem is None:
            log.warning("state_dir: cannot write the ledger %s (%s): jobs go on, their history "
                        "is kept in memory and written once it works again", self.path, exc)
        self.problem = f"cannot write the ledger: {exc}"

    def _recovered(self) -> None:
        if self.problem is not None:
            log.warning("state_dir: the ledger %s is written again, its history caught up",
                        self.path)
            self.problem = None
