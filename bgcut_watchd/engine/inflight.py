"""Single flight: which content is being paid for right now, and by which job.

One registry per engine, shared by every worker and every folder (a key names the content and
the variant set, so two folders with the same variants share it, as they share duplicate
reuse). A job begins its key before it pays (``job.duplicates``); a second job with the same
key is told no and waits outside the pool, handed back to the scheduler, until the first one's
run ends, whatever its outcome: done (the second copies its outputs), retrying or quarantined
(the second begins the key itself and pays).

Memory only, on purpose: a restart forgets every flight, and the journal still drives each job;
the worst a restart costs is one more paid call for content that was in flight at that moment.
"""

from __future__ import annotations

import threading


class InFlight:
    """Keys held by running jobs; a job holds at most one. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder_of: dict[str, str] = {}  # key -> job id
        self._key_of: dict[str, str] = {}     # job id -> key

    def begin(self, key: str, job_id: str) -> bool:
        """Hold ``key`` for ``job_id`` (letting go of another key it held); False, holding
        nothing new, when another job holds ``key``. Raises nothing."""
        with self._lock:
            holder = self._holder_of.get(key)
            if holder is not None and holder != job_id:
                return False
            self._drop(job_id)
            self._holder_of[key] = job_id
            self._key_of[job_id] = key
            return True

    def busy(self, key: str, job_id: str) -> bool:
        """Whether a job other than ``job_id`` holds ``key``. Raises nothing."""
        with self._lock:
            return self._holder_of.get(key, job_id) != job_id

    def end(self, job_id: str) -> None:
        """Let go of the key ``job_id`` holds, if any. Raises nothing."""
        with self._lock:
            self._drop(job_id)

    def held(self) -> int:
        """How many keys are held now."""
        with self._lock:
            return len(self._holder_of)

    def _drop(self, job_id: str) -> None:
        key = self._key_of.pop(job_id, None)
        if key is not None:
            del self._holder_of[key]
