from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bgcut_watchd.config.model import Variant
from bgcut_watchd.job.journal import JobRecord, JobState, Journal, fingerprint_of

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
# Invalid UTF-8 (a lone surrogate after fsdecode), a newline and a non-ASCII letter.
ODD_NAME = os.fsdecode(b"sub dir/caf\xe9\nphoto \xc3\xa9.JPG")


class StepClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def full_record() -> JobRecord:
    return JobRecord(
        job_id="a" * 32, folder="studio", original_relpath=ODD_NAME,
        state=JobState.DOWNLOADED, attempts=2, first_seen="2025-01-01T00:00:00+00:00",
        updated_at="2025-01-01T00:00:01+00:00", sha256="f" * 64,
        remote_input="bgcut-watchd/aaa/input.jpg", remote_outputs=("r/full.png", "r/thumb.webp"),
        temp_outputs=(f"/out/{ODD_NAME}.part", "/out/.bgcut-x-1.part"),
        output_sha256s=("1" * 64, "2" * 64),
        final_outputs=(), last_error="HTTP 503\nretry", last_stage="download",
    )


def test_round_trip_keeps_surrogates_and_newlines(tmp_path: Path) -> None:
    journal = Journal(tmp_path, clock=StepClock())
    written = journal.write(full_record())
    assert journal.read() == written
    assert written.original_relpath == ODD_NAME
    assert os.fsencode(journal.read().original_relpath) == b"sub dir/caf\xe9\nphoto \xc3\xa9.JPG"
    journal.path.read_bytes().decode("ascii")  # the file is pure ASCII


def test_write_stamps_updated_at_from_the_clock(tmp_path: Path) -> None:
    written = Journal(tmp_path, clock=StepClock()).write(full_record())
    assert written.updated_at == "2025-01-02T03:04:06.000000+00:00"


def test_the_original_relpath_keeps_the_original_bytes(tmp_path: Path) -> None:
    journal = Journal(tmp_path, clock=StepClock())
    journal.write(full_record())
    path = tmp_path / journal.read().original_relpath
    assert os.fsencode(path) == os.fsencode(tmp_path) + b"/sub dir/caf\xe9\nphoto \xc3\xa9.JPG"


def test_advance_moves_forward_and_applies_changes() -> None:
    record = JobRecord.start("j", "studio", "a.jpg", "t0")
    uploaded = record.advance(JobState.CLAIMED).advance(JobState.UPLOADED, remote_input="r/in")
    assert (uploaded.state, uploaded.remote_input) == (JobState.UPLOADED, "r/in")
    assert record.state is JobState.CLAIMING  # frozen: the original is unchanged
    same = uploaded.advance(JobState.UPLOADED, attempts=3)
    assert same.attempts == 3


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobState.CLAIMED, JobState.CLAIMING),
        (JobState.PROCESSED, JobState.UPLOADED),
        (JobState.PUBLISHED, JobState.DOWNLOADED),
        (JobState.DISPOSED, JobState.QUARANTINED),
        (JobState.QUARANTINED, JobState.DISPOSED),
    ],
)
def test_advance_refuses_backwards_and_out_of_final_states(
    current: JobState, target: JobState,
) -> None:
    record = dataclass_with_state(current)
    with pytest.raises(ValueError):
        record.advance(target)


def test_advance_refuses_state_in_changes() -> None:
    with pytest.raises(ValueError):
        dataclass_with_state(JobState.CLAIMED).advance(JobState.UPLOADED, state=JobState.CLAIMED)


def test_quarantine_is_reachable_from_any_unfinished_state() -> None:
    for state in (JobState.CLAIMED, JobState.UPLOADED, JobState.DOWNLOADED, JobState.PUBLISHED):
        quarantined = dataclass_with_state(state).advance(JobState.QUARANTINED)
        assert quarantined.state is JobState.QUARANTINED


def test_a_journal_written_before_output_hashes_reads_without_them() -> None:
    data = json.loads(json.dumps(full_record().to_json()))
    del data["output_sha256s"]
    assert JobRecord.from_json(data).output_sha256s == ()


def test_restart_remote_clears_remote_work_and_goes_back_to_claimed() -> None:
    restarted = full_record().restart_remote(attempts=3, last_error="404")
    assert restarted.state is JobState.CLAIMED
    assert (restarted.remote_input, restarted.remote_outputs, restarted.temp_outputs,
            restarted.output_sha256s) == (None, (), (), ())
    assert (restarted.attempts, restarted.last_error, restarted.sha256) == (3, "404", "f" * 64)


@pytest.mark.parametrize("state", [JobState.PUBLISHED, JobState.DISPOSED, JobState.QUARANTINED])
def test_restart_remote_refused_after_download(state: JobState) -> None:
    with pytest.raises(ValueError):
        dataclass_with_state(state).restart_remote()


def dataclass_with_state(state: JobState) -> JobRecord:
    return JobRecord.start("j", "f", "a.jpg", "t").advance(state)


def test_repeated_writes_leave_only_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    record = full_record()
    for attempts in range(5):
        journal.write(record.advance(record.state, attempts=attempts))
    assert sorted(os.listdir(tmp_path)) == ["job.json"]
    assert journal.read().attempts == 4


def test_failed_write_keeps_the_previous_journal_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal = Journal(tmp_path)
    before = journal.write(full_record())

    def broken_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken_sync)  # the temp file's flush fails
    with pytest.raises(OSError):
        journal.write(before.advance(JobState.PUBLISHED))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["job.json"]
    assert journal.read() == before


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[1, 2]", b'{"job_id": "x"}', "{\"é\": 1}".encode(),
     json.dumps({**full_record().to_json(), "attempts": "2"}).encode(),
     json.dumps({**full_record().to_json(), "state": "exploded"}).encode()],
)
def test_unreadable_journal_raises_value_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "job.json").write_bytes(content)
    with pytest.raises(ValueError):
        Journal(tmp_path).read()


def test_missing_journal_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Journal(tmp_path).read()


# -- format 2: the job's identity (issue 9) ---------------------------------------------------

VARIANTS = (Variant("full"), Variant("thumb", format="webp", max_resolution=250_000,
                                     quality="medium", autocrop=True),
            Variant("white", format="jpeg", background_color="#ffffff"))


def identity_record() -> JobRecord:
    return dataclasses.replace(
        full_record(), state=JobState.PUBLISHED, variants=VARIANTS,
        input_fingerprint=(1234, 1_700_000_000_123_456_789, 42), extra_settle_used=True,
        process_sent_at="2025-01-01T00:00:02+00:00", ambiguous_since="2025-01-01T00:00:03+00:00",
        remote_round=2, dispose_target=f"/archive/{ODD_NAME}", quarantine_target=None,
        final_outputs=("/out/a.full.png", "/out/a.thumb.webp", "/out/a.white.jpg"))


def test_the_identity_fields_round_trip(tmp_path: Path) -> None:
    journal = Journal(tmp_path, clock=StepClock())
    written = journal.write(identity_record())
    assert journal.read() == written
    assert json.loads(journal.path.read_text("ascii"))["format"] == 2


def test_a_format_1_journal_is_read_with_the_defaults(tmp_path: Path) -> None:
    old = {key: value for key, value in full_record().to_json().items()
           if key in FORMAT_1_FIELDS}
    (tmp_path / "job.json").write_text(json.dumps({**old, "format": 1}), "ascii")
    record = Journal(tmp_path).read()
    assert record == full_record()  # every new field at its default
    assert (record.variants, record.input_fingerprint, record.remote_round) == ((), None, 0)


def test_a_format_1_journal_in_uploaded_is_taken_as_having_sent_its_call(
        tmp_path: Path) -> None:
    old = {key: value for key, value in full_record().to_json().items()
           if key in FORMAT_1_FIELDS}
    old.update(state="uploaded", format=1)
    (tmp_path / "job.json").write_text(json.dumps(old), "ascii")
    assert Journal(tmp_path).read().process_sent_at == old["updated_at"]


@pytest.mark.parametrize("bad", [
    {"variants": [{"format": "png"}]}, {"variants": "full"},
    {"input_fingerprint": [1, 2]}, {"input_fingerprint": [1, 2, "3"]},
    {"extra_settle_used": "yes"}, {"remote_round": "1"},
])
def test_wrong_identity_fields_are_refused(tmp_path: Path, bad: dict[str, object]) -> None:
    (tmp_path / "job.json").write_text(json.dumps({**identity_record().to_json(), **bad}))
    with pytest.raises(ValueError):
        Journal(tmp_path).read()


def test_resettle_starts_over_from_the_claim_in_a_new_remote_round() -> None:
    again = identity_record().resettle((2468, 1_700_000_001_000_000_000, 42))
    assert again.state is JobState.CLAIMED
    assert again.input_fingerprint == (2468, 1_700_000_001_000_000_000, 42)
    assert (again.sha256, again.remote_input, again.remote_outputs, again.temp_outputs,
            again.final_outputs, again.dispose_target) == (None, None, (), (), (), None)
    assert (again.process_sent_at, again.ambiguous_since, again.extra_settle_used) == (
        None, None, False)
    assert again.remote_round == 3 and again.variants == VARIANTS  # the job keeps its set
    with pytest.raises(ValueError):
        again.advance(JobState.QUARANTINED).resettle((1, 2, 3))


def test_restart_remote_forgets_a_process_call_sent() -> None:
    restarted = dataclasses.replace(identity_record(), state=JobState.UPLOADED).restart_remote()
    assert (restarted.process_sent_at, restarted.ambiguous_since) == (None, None)


def test_fingerprint_of_is_size_mtime_and_inode(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(b"12345")
    os.utime(path, ns=(1, 2_000_000_123))
    assert fingerprint_of(path) == (5, 2_000_000_123, path.stat().st_ino)
    assert fingerprint_of(tmp_path / "gone.jpg") is None


FORMAT_1_FIELDS = frozenset({
    "job_id", "folder", "original_relpath", "state", "attempts", "first_seen", "updated_at",
    "sha256", "remote_input", "remote_outputs", "temp_outputs", "final_outputs", "last_error",
    "last_stage", "output_sha256s",  # the last written by a version with format 1
})
