"""The ledger: the SQLite history of every job, at ``<state_dir>/ledger.sqlite3``.

It answers ``status`` (per-folder counts, last errors) and duplicate detection (content already
processed with the same variants: the outputs of a done job and the sha256 of each, so a reuse
can check that the file at a recorded path still holds the recorded bytes). It is a history, not
the source of truth for resuming: that is the job journal in the work area. So
``synchronous=NORMAL`` in WAL mode is enough: a power cut may lose the last few commits, never
corrupt the file.

Concurrency: ONE connection (``check_same_thread=False``) guarded by an ``RLock``. SQLite
serialises writers anyway, the daemon writes a handful of rows per job, and a single
connection avoids ``database is locked`` between our own threads. Other processes (``status``)
read concurrently thanks to WAL; ``busy_timeout`` covers a second writer process.

Schema versions live in ``PRAGMA user_version``; :func:`migrate` brings a file up to date, one
transaction per step. Text that may hold lone surrogates (names that were invalid UTF-8) is
stored with the surrogates spelled ``\\udcxx``; output paths are stored as ASCII JSON, which
round-trips them exactly.

Over 300 lines on purpose: the schema, its migrations and every query stay in one file, so a
change of the schema is seen next to everything that reads it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bgcut_watchd.errors import ConfigError

LEDGER_NAME = "ledger.sqlite3"
OUTCOMES = ("in_progress", "done", "quarantined", "failed")
_UPDATABLE = frozenset({
    "sha256", "outcome", "stage", "attempts", "duration_s", "last_error", "outputs",
    "output_sha256s", "http_status", "reason",
})
_JSON_LISTS = frozenset({"outputs", "output_sha256s"})
_DUPLICATE_CANDIDATES = 20

Migration = Callable[[sqlite3.Connection], None]


def _create_v1(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE jobs (
            job_id      TEXT PRIMARY KEY,
            folder      TEXT NOT NULL,
            input_name  TEXT NOT NULL,
            sha256      TEXT,
            variant_key TEXT NOT NULL,
            outcome     TEXT NOT NULL
                        CHECK (outcome IN ('in_progress', 'done', 'quarantined', 'failed')),
            stage       TEXT,
            attempts    INTEGER NOT NULL DEFAULT 0,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            duration_s  REAL,
            last_error  TEXT,
            outputs     TEXT NOT NULL DEFAULT '[]',
            http_status INTEGER,
            reason      TEXT
        )"""
    )
    conn.execute("CREATE INDEX jobs_by_content ON jobs (sha256, variant_key, outcome)")
    conn.execute("CREATE INDEX jobs_by_folder ON jobs (folder, outcome)")
    conn.execute("CREATE INDEX jobs_by_update ON jobs (updated_at)")


def _add_output_sha256s_v2(conn: sqlite3.Connection) -> None:
    """The sha256 of each output, aligned with ``outputs`` (JSON list). Rows written before
    (NULL) are never offered for reuse: nothing says their files still hold their bytes."""
    conn.execute("ALTER TABLE jobs ADD COLUMN output_sha256s TEXT")


def _add_credits_v3(conn: sqlite3.Connection) -> None:
    """Credits spent per local day (``YYYY-MM-DD``) and folder: the daily budget's count
    survives a restart, and ``status`` shows today's and this month's."""
    conn.execute(
        """CREATE TABLE credits (
            day     TEXT NOT NULL,
            folder  TEXT NOT NULL,
            credits REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (day, folder)
        )"""
    )


#: MIGRATIONS[n] takes a file from user_version n to n + 1.
MIGRATIONS: tuple[Migration, ...] = (_create_v1, _add_output_sha256s_v2, _add_credits_v3)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the missing steps of ``migrations``, each in its own transaction; the new version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises ConfigError when
    the file is newer than this code (``daemon.state_dir`` holds a later version's ledger);
    sqlite3.Error when a step fails (that step is rolled back).
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(migrations):
        raise ConfigError([
            f"daemon.state_dir: the ledger has schema version {version}, newer than the "
            f"{len(migrations)} this bgcut-watchd knows; upgrade bgcut-watchd"
        ])
    for step in range(version, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: a second daemon opening the same fresh ledger
            # may have applied this step since the first read ("table jobs already exists").
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) <= step:
                migrations[step](conn)
                conn.execute(f"PRAGMA user_version = {step + 1:d}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return len(migrations)


def _enable_wal(conn: sqlite3.Connection, tries: int = 50) -> None:
    """Switch to WAL. The switch can answer "database is locked" at once, without waiting
    for busy_timeout, while another daemon opens the same new ledger: try again briefly."""
    for attempt in range(tries):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.1)  # another process holds the lock for a moment; nothing to poll


def _connect(path: Path) -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode, migrated. Raises sqlite3.Error,
    ConfigError (a newer schema)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_read_only(path: Path | None) -> sqlite3.Connection:
    """``path`` opened read-only (sqlite's ``mode=ro``), or for None an empty history in memory.
    Raises sqlite3.Error."""
    if path is None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        migrate(conn)
        return conn
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                           isolation_level=None, check_same_thread=False, timeout=5.0)


def _no_history_yet(state_dir: Path) -> bool:
    """No ledger in a state_dir that is a folder or does not exist (one that is a file, or
    that cannot be looked into, is for the open to report). Raises nothing."""
    try:
        return not (state_dir / LEDGER_NAME).exists() and (state_dir.is_dir()
                                                           or not state_dir.exists())
    except OSError:
        return False


def _text(value: str) -> str:
    """``value`` with lone surrogates spelled ``\\udcxx`` (SQLite text must be valid UTF-8)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class PublishedOutput:
    """One output of a done job as recorded: its path and the sha256 of the bytes published."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class JobEnd:
    """How one job ended, as the ledger recorded it."""

    outcome: str
    outputs: tuple[str, ...]
    reason: str | None
    last_error: str | None


@dataclass(frozen=True)
class ErrorEntry:
    """One job's last error, for ``status``."""

    job_id: str
    folder: str
    input_name: str
    outcome: str
    stage: str | None
    reason: str | None
    http_status: int | None
    last_error: str
    updated_at: str


@dataclass(frozen=True)
class FinishedEntry:
    """A job that ended, as the history has it (for the status page after a restart)."""

    job_id: str
    folder: str
    input_name: str
    outcome: str
    outputs: tuple[Path, ...]   # a quarantined job's one "output" is its quarantined input
    finished_at: datetime
    sha256: str | None = None   # the input's


class Ledger:
    """The job history of one daemon. Thread-safe (one connection behind a lock)."""

    def __init__(
        self, state_dir: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        read_only: bool = False,
    ) -> None:
        """Open (creating and migrating) ``<state_dir>/ledger.sqlite3``; with ``read_only``
        (``status``) open it for reading only, creating and migrating nothing, and read an
        empty history when there is none yet (``history_exists`` False).

        Raises OSError when ``state_dir`` cannot be created, sqlite3.Error when the file
        cannot be opened, ConfigError when it is from a newer version.
        """
        self.path = state_dir / LEDGER_NAME
        self._clock = clock
        self._lock = threading.RLock()
        self.history_exists = not read_only or not _no_history_yet(state_dir)
        if read_only:
            self._conn = _connect_read_only(self.path if self.history_exists else None)
            return
        state_dir.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(self.path)

    def reopen(self) -> None:
        """Open the file at ``path`` again, creating its folder: the one we had was removed or
        replaced under us (``rm -rf state_dir``). Later calls use the new file.

        Raises like the constructor; the old connection is kept then.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        with self._lock:
            old, self._conn = self._conn, conn
        old.close()

    def close(self) -> None:
        """Close the connection. Raises sqlite3.Error if it fails."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def record_claim(
        self, job_id: str, folder: str, input_name: str, variant_key: str,
        *, sha256: str | None = None, attempts: int = 0,
    ) -> None:
        """Record a newly claimed job as ``in_progress``; a job already recorded is kept as is.

        Raises sqlite3.Error when the write fails.
        """
        now = self._now()
        self._execute(
            "INSERT INTO jobs (job_id, folder, input_name, sha256, variant_key, outcome,"
            " stage, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'in_progress',"
            " 'claim', ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            (job_id, _text(folder), _text(input_name), sha256, variant_key, attempts, now, now),
        )

    def update(self, job_id: str, /, **fields: Any) -> bool:
        """Set ``fields`` (columns: sha256, outcome, stage, attempts, duration_s, last_error,
        outputs, output_sha256s, http_status, reason) and ``updated_at``; False when the job is
        unknown.

        ``outputs`` takes a sequence of paths, ``output_sha256s`` one of hex digests (or None).
        Raises ValueError for an unknown column or outcome, sqlite3.Error when the write fails.
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not ledger columns: {sorted(unknown)}")
        if "outcome" in fields and fields["outcome"] not in OUTCOMES:
            raise ValueError(f"unknown outcome {fields['outcome']!r}")
        values = {name: _column_value(name, value) for name, value in fields.items()}
        values["updated_at"] = self._now()
        assignments = ", ".join(f"{name} = ?" for name in values)  # names come from _UPDATABLE
        cursor = self._execute(
            f"UPDATE jobs SET {assignments} WHERE job_id = ?",  # noqa: S608 (whitelisted names)
            (*values.values(), job_id),
        )
        return cursor.rowcount > 0

    def finish_done(self, job_id: str, outputs: Sequence[Path | str], duration_s: float,
                    *, sha256s: Sequence[str] | None = None) -> bool:
        """Mark the job done with its published ``outputs`` and, aligned with them, the sha256
        of each (None: unknown, so never reused). Raises ValueError when the two lengths
        differ, sqlite3.Error when the write fails."""
        if sha256s is not None and len(sha256s) != len(outputs):
            raise ValueError(f"{len(sha256s)} hashes for {len(outputs)} outputs")
        return self.update(
            job_id, outcome="done", stage="dispose", outputs=outputs, duration_s=duration_s,
            output_sha256s=sha256s,
        )

    def finish_quarantined(
        self, job_id: str, stage: str, reason: str, detail: str, http_status: int | None,
        where: Path | None = None,
    ) -> bool:
        """Mark the job quarantined at ``stage`` for ``reason``; ``where`` (recorded as its one
        output) is the quarantined input, or a detached job's error file. Raises sqlite3.Error.
        """
        return self.update(
            job_id, outcome="quarantined", stage=stage, reason=reason, last_error=detail,
            http_status=http_status, outputs=[] if where is None else [where],
        )

    def earlier_outputs(self, sha256: str, variant_key: str) -> list[list[PublishedOutput]]:
        """The recorded outputs of the most recent done jobs with this content and variant set,
        newest first (at most 20 jobs); jobs recorded without output hashes are left out.
        Whether the files still hold those bytes is the caller's to check. Raises sqlite3.Error.
        """
        rows = self._fetch(
            "SELECT outputs, output_sha256s FROM jobs WHERE sha256 = ? AND variant_key = ?"
            " AND outcome = 'done' AND output_sha256s IS NOT NULL"
            " ORDER BY updated_at DESC, rowid DESC LIMIT ?",
            (sha256, variant_key, _DUPLICATE_CANDIDATES),
        )
        found = [_published(outputs_json, hashes_json) for outputs_json, hashes_json in rows]
        return [outputs for outputs in found if outputs]

    def job_end(self, job_id: str) -> JobEnd | None:
        """How job ``job_id`` ended (outcome, outputs, reason, error), or None when unknown.
        Raises sqlite3.Error."""
        rows = self._fetch("SELECT outcome, outputs, reason, last_error FROM jobs"
                           " WHERE job_id = ?", (job_id,))
        if not rows:
            return None
        outcome, outputs_json, reason, last_error = rows[0]
        return JobEnd(outcome, tuple(json.loads(outputs_json or "[]")), reason, last_error)

    def folder_stats(self) -> dict[str, dict[str, int]]:
        """Per folder, how many jobs have each outcome (every outcome present, maybe 0).

        ``waiting`` is not here: only the service knows what sits in the inboxes.
        Raises sqlite3.Error.
        """
        stats: dict[str, dict[str, int]] = {}
        for folder, outcome, count in self._fetch(
            "SELECT folder, outcome, COUNT(*) FROM jobs GROUP BY folder, outcome", (),
        ):
            stats.setdefault(folder, dict.fromkeys(OUTCOMES, 0))[outcome] = count
        return stats

    def add_credits(self, day: str, folder: str, credits: float) -> None:
        """Count ``credits`` spent by ``folder`` on local ``day`` (``YYYY-MM-DD``).
        Raises sqlite3.Error."""
        self._execute(
            "INSERT INTO credits (day, folder, credits) VALUES (?, ?, ?) ON CONFLICT"
            " (day, folder) DO UPDATE SET credits = credits + excluded.credits",
            (day, _text(folder), credits),
        )

    def credits_spent(self, first_day: str, last_day: str) -> dict[str, float]:
        """Credits spent per folder from ``first_day`` to ``last_day`` included (ISO dates).
        Raises sqlite3.Error."""
        rows = self._fetch("SELECT folder, SUM(credits) FROM credits WHERE day BETWEEN ? AND ?"
                           " GROUP BY folder", (first_day, last_day))
        return {folder: float(total) for folder, total in rows}

    def recent_errors(self, limit: int = 10) -> list[ErrorEntry]:
        """The ``limit`` most recently updated jobs that carry an error. Raises sqlite3.Error."""
        rows = self._fetch(
            "SELECT job_id, folder, input_name, outcome, stage, reason, http_status,"
            " last_error, updated_at FROM jobs WHERE last_error IS NOT NULL"
            " ORDER BY updated_at DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return [ErrorEntry(*row) for row in rows]

    def done_since(self, since: datetime) -> dict[str, int]:
        """Per folder, the jobs done since ``since`` (an aware datetime). Raises sqlite3.Error."""
        rows = self._fetch(
            "SELECT folder, COUNT(*) FROM jobs WHERE outcome = 'done' AND updated_at >= ?"
            " GROUP BY folder", (since.astimezone(UTC).isoformat(timespec="microseconds"),))
        return {folder: count for folder, count in rows}

    def last_done_at(self) -> dict[str, datetime]:
        """Per folder, when its last job was done. Raises sqlite3.Error."""
        rows = self._fetch("SELECT folder, MAX(updated_at) FROM jobs WHERE outcome = 'done'"
                           " GROUP BY folder", ())
        return {folder: datetime.fromisoformat(at) for folder, at in rows}

    def recent_finished(self, limit: int) -> list[FinishedEntry]:
        """The ``limit`` jobs done or quarantined last, newest first. Raises sqlite3.Error."""
        rows = self._fetch(
            "SELECT job_id, folder, input_name, outcome, outputs, updated_at, sha256 FROM jobs"
            " WHERE outcome IN ('done', 'quarantined') ORDER BY updated_at DESC, rowid DESC"
            " LIMIT ?", (limit,))
        return [FinishedEntry(job_id, folder, name, outcome,
                              tuple(Path(p) for p in json.loads(outputs)),
                              datetime.fromisoformat(at), sha256)
                for job_id, folder, name, outcome, outputs, at, sha256 in rows]

    def _execute(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, params)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="microseconds")


def _published(outputs_json: str, hashes_json: str) -> list[PublishedOutput]:
    """A row's outputs paired with their hashes; empty when the two do not match up."""
    paths, hashes = json.loads(outputs_json), json.loads(hashes_json)
    if not isinstance(hashes, list) or len(hashes) != len(paths):
        return []
    return [PublishedOutput(Path(p), str(h)) for p, h in zip(paths, hashes, strict=True)]


def _column_value(name: str, value: Any) -> Any:
    if name in _JSON_LISTS:
        return None if value is None else json.dumps([str(v) for v in value], ensure_ascii=True)
    if isinstance(value, str):
        return _text(value)
    return value
