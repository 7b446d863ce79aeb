from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd.config.model import Variant, variant_key
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.ledger import LEDGER_NAME, MIGRATIONS, Ledger, PublishedOutput, migrate

KEY = variant_key([Variant("full"), Variant("thumb", format="webp")])


class StepClock:
    """Each call is one second later, so "most recent" is well defined."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.now += timedelta(seconds=1)
            return self.now


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "state", clock=StepClock()) as opened:
        yield opened


def outputs(tmp_path: Path, *names: str) -> list[Path]:
    paths = [tmp_path / name for name in names]
    for path in paths:
        path.write_bytes(b"png")
    return paths


def test_claim_update_and_finish_are_recorded(ledger: Ledger, tmp_path: Path) -> None:
    ledger.record_claim("j1", "studio", "sub/a.jpg", KEY)
    ledger.record_claim("j1", "other", "ignored.jpg", KEY)  # idempotent: first one wins
    assert ledger.update("j1", sha256="ab" * 32, stage="upload", attempts=2)
    assert ledger.finish_done("j1", outputs(tmp_path, "a.full.png"), duration_s=1.5)
    row = sqlite3.connect(ledger.path).execute(
        "SELECT folder, input_name, sha256, outcome, stage, attempts, duration_s, outputs,"
        " created_at < updated_at FROM jobs WHERE job_id = 'j1'").fetchone()
    assert row == ("studio", "sub/a.jpg", "ab" * 32, "done", "dispose", 2, 1.5,
                   f'["{tmp_path}/a.full.png"]', 1)


def test_update_rejects_unknown_columns_and_outcomes(ledger: Ledger) -> None:
    ledger.record_claim("j1", "studio", "a.jpg", KEY)
    with pytest.raises(ValueError):
        ledger.update("j1", job_id="evil")
    with pytest.raises(ValueError):
        ledger.update("j1", outcome="exploded")
    assert ledger.update("missing", stage="upload") is False


def test_folder_stats_count_each_outcome(ledger: Ledger, tmp_path: Path) -> None:
    for n in range(3):
        ledger.record_claim(f"s{n}", "studio", f"{n}.jpg", KEY)
    ledger.finish_done("s0", outputs(tmp_path, "0.png"), 1.0)
    ledger.finish_quarantined("s1", "validate", "invalid_image", "not an image", None)
    ledger.record_claim("w1", "web", "w.jpg", KEY)
    ledger.update("w1", outcome="failed")
    assert ledger.folder_stats() == {
        "studio": {"in_progress": 1, "done": 1, "quarantined": 1, "failed": 0},
        "web": {"in_progress": 0, "done": 0, "quarantined": 0, "failed": 1},
    }


def test_recent_errors_newest_first(ledger: Ledger) -> None:
    for n in range(4):
        ledger.record_claim(f"j{n}", "studio", f"{n}.jpg", KEY)
    ledger.update("j0", last_error="HTTP 503", stage="process", attempts=1)
    ledger.finish_quarantined("j2", "upload", "rejected_by_api", "HTTP 400: bad", 400)
    errors = ledger.recent_errors(limit=5)
    assert [(e.job_id, e.outcome, e.stage, e.reason, e.http_status, e.last_error)
            for e in errors] == [
        ("j2", "quarantined", "upload", "rejected_by_api", 400, "HTTP 400: bad"),
        ("j0", "in_progress", "process", None, None, "HTTP 503"),
    ]
    assert len(ledger.recent_errors(limit=1)) == 1


def recorded(paths: list[Path]) -> list[PublishedOutput]:
    return [PublishedOutput(p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]


def test_earlier_outputs_newest_first_with_their_hashes(ledger: Ledger, tmp_path: Path) -> None:
    old = outputs(tmp_path, "old.full.png", "old.thumb.webp")
    new = outputs(tmp_path, "new.full.png", "new.thumb.webp")
    for job_id, paths in (("old", old), ("new", new)):
        ledger.record_claim(job_id, "studio", "a.jpg", KEY, sha256="c" * 64)
        ledger.finish_done(job_id, paths, 1.0, sha256s=[o.sha256 for o in recorded(paths)])
    ledger.record_claim("q", "studio", "a.jpg", KEY, sha256="c" * 64)
    ledger.finish_quarantined("q", "process", "x", "y", 400)
    assert ledger.earlier_outputs("c" * 64, KEY) == [recorded(new), recorded(old)]
    assert ledger.earlier_outputs("c" * 64, variant_key([Variant("full")])) == []
    assert ledger.earlier_outputs("d" * 64, KEY) == []


def test_a_job_done_without_hashes_is_never_offered(ledger: Ledger, tmp_path: Path) -> None:
    ledger.record_claim("j", "studio", "a.jpg", KEY, sha256="c" * 64)
    ledger.finish_done("j", outputs(tmp_path, "a.full.png"), 1.0)
    assert ledger.earlier_outputs("c" * 64, KEY) == []
    with pytest.raises(ValueError, match="2 hashes for 1 outputs"):
        ledger.finish_done("j", outputs(tmp_path, "a.full.png"), 1.0, sha256s=["a", "b"])


def test_names_that_are_invalid_utf8_survive(ledger: Ledger, tmp_path: Path) -> None:
    odd = os.fsdecode(b"caf\xe9.jpg")
    [published] = outputs(tmp_path, os.fsdecode(b"caf\xe9.full.png"))
    ledger.record_claim("j", "studio", odd, KEY, sha256="e" * 64)
    ledger.finish_done("j", [published], 0.1, sha256s=["f" * 64])
    ledger.update("j", last_error=f"cannot read {odd}")
    assert ledger.earlier_outputs("e" * 64, KEY) == [[PublishedOutput(published, "f" * 64)]]
    [error] = ledger.recent_errors()
    assert (error.input_name, error.last_error) == ("caf\\udce9.jpg", "cannot read caf\\udce9.jpg")


def test_variant_key_is_order_insensitive_and_field_sensitive() -> None:
    full, thumb = Variant("full"), Variant("thumb", format="webp")
    assert variant_key([full, thumb]) == variant_key([thumb, full])
    assert variant_key([full]) != variant_key([Variant("full", quality="low")])
    assert variant_key([full]) != variant_key([Variant("full", autocrop=True)])
    assert variant_key([full]) == variant_key([Variant("full")])


def test_eight_threads_write_concurrently(ledger: Ledger, tmp_path: Path) -> None:
    [published] = outputs(tmp_path, "p.png")
    failures: list[BaseException] = []

    def worker(thread_no: int) -> None:
        try:
            for n in range(200):
                job_id = f"t{thread_no}-{n}"
                ledger.record_claim(job_id, f"f{thread_no % 2}", "a.jpg", KEY)
                ledger.update(job_id, stage="upload", attempts=1)
                if n % 2:
                    ledger.finish_done(job_id, [published], 0.5)
                ledger.folder_stats()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert ledger.folder_stats() == {
        "f0": {"in_progress": 400, "done": 400, "quarantined": 0, "failed": 0},
        "f1": {"in_progress": 400, "done": 400, "quarantined": 0, "failed": 0},
    }


def test_wal_and_normal_sync_and_data_survive_reopening(tmp_path: Path) -> None:
    with Ledger(tmp_path) as first:
        first.record_claim("j", "studio", "a.jpg", KEY)
        assert first._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert first._conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    with Ledger(tmp_path) as second:
        assert second.folder_stats()["studio"]["in_progress"] == 1


def test_twenty_thousand_claims_are_quick(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        started = time.perf_counter()
        for n in range(20_000):
            ledger.record_claim(f"j{n}", "studio", f"{n}.jpg", KEY, sha256=f"{n:064x}")
        elapsed_s = time.perf_counter() - started
        assert ledger.folder_stats()["studio"]["in_progress"] == 20_000
    assert elapsed_s < 10.0, f"{20_000 / elapsed_s:.0f} inserts/s"


def open_raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_a_fresh_file_gets_the_current_schema_version(tmp_path: Path) -> None:
    Ledger(tmp_path).close()
    conn = open_raw(tmp_path / LEDGER_NAME)
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"jobs_by_content", "jobs_by_folder"} <= indexes


def test_migrate_applies_only_the_missing_steps(tmp_path: Path) -> None:
    Ledger(tmp_path).close()
    calls: list[int] = []

    def add_note_column(conn: sqlite3.Connection) -> None:
        calls.append(1)
        conn.execute("ALTER TABLE jobs ADD COLUMN note TEXT")

    conn = open_raw(tmp_path / LEDGER_NAME)
    steps = (*MIGRATIONS, add_note_column)
    assert migrate(conn, steps) == len(MIGRATIONS) + 1
    assert migrate(conn, steps) == len(MIGRATIONS) + 1  # nothing left to do
    assert calls == [1]
    assert "note" in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS) + 1,)


def test_a_failing_step_rolls_back_and_keeps_the_version(tmp_path: Path) -> None:
    Ledger(tmp_path).close()

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE jobs ADD COLUMN note TEXT")
        raise sqlite3.OperationalError("disk I/O error")

    conn = open_raw(tmp_path / LEDGER_NAME)
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, (*MIGRATIONS, half_done))
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert "note" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    Ledger(tmp_path).close()
    open_raw(tmp_path / LEDGER_NAME).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    with pytest.raises(ConfigError, match=r"daemon\.state_dir"):
        Ledger(tmp_path)


def test_a_version_1_ledger_is_migrated_and_its_done_jobs_are_never_reused(
    tmp_path: Path,
) -> None:
    """A ledger written before output hashes were recorded keeps working: its history counts,
    its done jobs are not offered for reuse (nothing says their files still hold their bytes),
    and new jobs are recorded with hashes."""
    tmp_path.joinpath("state").mkdir()
    conn = open_raw(tmp_path / "state" / LEDGER_NAME)
    assert migrate(conn, MIGRATIONS[:1]) == 1
    [old_output] = outputs(tmp_path, "old.full.png")
    conn.execute(  # exactly what version 1's finish_done left behind
        "INSERT INTO jobs (job_id, folder, input_name, sha256, variant_key, outcome, stage,"
        " attempts, created_at, updated_at, duration_s, outputs) VALUES ('old', 'studio',"
        " 'a.jpg', ?, ?, 'done', 'dispose', 0, '2024-01-01T00:00:00+00:00',"
        " '2024-01-01T00:00:00+00:00', 1.0, ?)", ("c" * 64, KEY, f'["{old_output}"]'))
    conn.close()

    with Ledger(tmp_path / "state", clock=StepClock()) as ledger:
        assert ledger.folder_stats()["studio"]["done"] == 1
        assert ledger.earlier_outputs("c" * 64, KEY) == []
        [new_output] = outputs(tmp_path, "new.full.png")
        ledger.record_claim("new", "studio", "a.jpg", KEY, sha256="c" * 64)
        ledger.finish_done("new", [new_output], 1.0, sha256s=["d" * 64])
        assert ledger.earlier_outputs("c" * 64, KEY) == [[PublishedOutput(new_output, "d" * 64)]]
    version = open_raw(tmp_path / "state" / LEDGER_NAME).execute("PRAGMA user_version")
    assert version.fetchone() == (len(MIGRATIONS),) == (3,)


def _open_ledger(state_dir: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        Ledger(Path(state_dir)).close()
        results.put("ok")
    except Exception as exc:  # reported to the test, which fails on it
        results.put(f"{type(exc).__name__}: {exc}")


def test_two_daemons_opening_one_new_ledger_at_once_both_succeed(tmp_path: Path) -> None:
    """Two daemons on one state_dir used to race the schema creation ("table jobs already
    exists", "database is locked") and one exited 78."""
    context = multiprocessing.get_context("fork")
    for trial in range(8):
        state_dir = tmp_path / f"trial-{trial}"
        barrier, results = context.Barrier(2), context.Queue()
        procs = [context.Process(target=_open_ledger, args=(str(state_dir), barrier, results))
                 for _ in range(2)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        assert [results.get(timeout=5) for _ in procs] == ["ok", "ok"]


def test_a_version_2_ledger_gains_the_credits_table_and_keeps_its_jobs(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    conn = open_raw(tmp_path / "state" / LEDGER_NAME)
    assert migrate(conn, MIGRATIONS[:2]) == 2
    conn.execute(
        "INSERT INTO jobs (job_id, folder, input_name, variant_key, outcome, created_at,"
        " updated_at) VALUES ('old', 'studio', 'a.jpg', ?, 'done', '2024-01-01T00:00:00+00:00',"
        " '2024-01-01T00:00:00+00:00')", (KEY,))
    conn.close()
    with Ledger(tmp_path / "state", clock=StepClock()) as ledger:
        assert ledger.folder_stats()["studio"]["done"] == 1
        assert ledger.credits_spent("2026-12-01", "2026-12-31") == {}
        ledger.add_credits("2026-12-01", "studio", 1.5)
        ledger.add_credits("2026-12-01", "studio", 0.75)
        ledger.add_credits("2026-12-02", "other", 1.0)
        ledger.add_credits("2026-11-30", "studio", 9.0)
    with Ledger(tmp_path / "state") as ledger:  # a restart keeps the count
        assert ledger.credits_spent("2026-12-01", "2026-12-01") == {"studio": 2.25}
        assert ledger.credits_spent("2026-12-01", "2026-12-31") == {"studio": 2.25,
                                                                    "other": 1.0}
