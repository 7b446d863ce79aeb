"""The job journal: one durable JSON record per claimed job, in ``<job dir>/job.json``.

A job moves forward through :class:`JobState` and never back, with one documented exception
(:meth:`JobRecord.restart_remote`, after the API answered 404 for a file it had accepted). Every
write is durable (``fsops.atomic_write_json``: temp file, fsync, rename over ``job.json``, fsync
the job directory), so after ``kill -9`` or a power cut the journal holds the old or the new record.

Format 2 added what makes a job's identity hold under faults (issue 9); format-1 journals are
read with their defaults: ``variants`` (the full definitions the job was claimed with: a reload
applies to new jobs only; empty: the folder's), ``input_fingerprint`` (size, mtime_ns, inode
of the claimed input: it must not change before the job pays or disposes of it),
``extra_settle_used`` (the one more settling period a "truncated" verdict got),
``process_sent_at`` and ``ambiguous_since`` (an unanswered process call: look for its outputs
before paying again), ``remote_round`` (the remote paths' generation, new after a resettle),
``dispose_target`` and ``quarantine_target`` (where the input is being moved, journaled before
the move, so a move interrupted after its copy is finished, not repeated).

File names may be invalid UTF-8: ``original_relpath`` is the ``os.fsdecode`` of the name and may
hold lone surrogates. The JSON is written with ``ensure_ascii=True``, which escapes them as
``\\udcxx`` and reads them back unchanged, so names round-trip byte for byte.

Over 300 lines on purpose: the record, the readers that give older formats their defaults and
the durable file stay together, so a field is added (and read back from old journals) in one place.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bgcut_watchd.clock import WallClock, iso_utc, utc_now
from bgcut_watchd.config.model import Variant
from bgcut_watchd.fsops import atomic_write_json

JOURNAL_NAME = "job.json"
_FORMAT_VERSION = 2

Fingerprint = tuple[int, int, int]
"""What identifies a claimed input's content cheaply: (size, mtime_ns, inode)."""


def fingerprint_of(path: Path) -> Fingerprint | None:
    """``(size, mtime_ns, inode)`` of ``path`` (not followed), or None when it cannot be
    stat-ed (gone: the next step tells why). Raises nothing."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class JobState(StrEnum):
    """The states of a job, in the order it passes them."""

    CLAIMING = "claiming"
    CLAIMED = "claimed"
    UPLOADED = "uploaded"
    PROCESSED = "processed"
    DOWNLOADED = "downloaded"
    PUBLISHED = "published"
    DISPOSED = "disposed"
    QUARANTINED = "quarantined"


_RANK = {state: rank for rank, state in enumerate(JobState)}
TERMINAL_STATES = frozenset({JobState.DISPOSED, JobState.QUARANTINED})
_REMOTE_STATES = frozenset({JobState.UPLOADED, JobState.PROCESSED, JobState.DOWNLOADED})


@dataclass(frozen=True)
class JobRecord:
    """What the journal knows about one job. Paths are ``os.fsdecode``'d strings."""

    job_id: str
    folder: str
    original_relpath: str
    state: JobState
    attempts: int
    first_seen: str
    updated_at: str
    sha256: str | None = None
    remote_input: str | None = None
    remote_outputs: tuple[str, ...] = ()
    temp_outputs: tuple[str, ...] = ()
    output_sha256s: tuple[str, ...] = ()  # of the temp outputs, in their order
    final_outputs: tuple[str, ...] = ()
    last_error: str | None = None
    last_stage: str | None = None
    # A copy made by ``process`` of a file outside the inbox (or of any file with --output):
    # on success the copy is deleted, on failure its error file goes beside the outputs; it is
    # never archived nor quarantined. ``output_dir`` replaces the folder's outbox (--output).
    detached: bool = False
    output_dir: str | None = None
    variants: tuple[Variant, ...] = ()
    input_fingerprint: Fingerprint | None = None
    extra_settle_used: bool = False
    process_sent_at: str | None = None
    ambiguous_since: str | None = None
    remote_round: int = 0
    dispose_target: str | None = None
    quarantine_target: str | None = None
    # Normalisation (job.normalize, job.pages): what is uploaded instead of the input, in
    # words; a multi-page input's page count once its other pages are written; a page job's
    # page number and the relpath of the input it comes from.
    upload_file: str | None = None
    normalized: str | None = None
    pages: int = 1
    page: int = 0
    page_of: str | None = None

    @classmethod
    def start(cls, job_id: str, folder: str, original_relpath: str, now: str,
              variants: tuple[Variant, ...] = ()) -> JobRecord:
        """A new record in state ``claiming``, first seen and updated at ``now``."""
        return cls(job_id, folder, original_relpath, JobState.CLAIMING, 0, now, now,
                   variants=variants)

    def advance(self, state: JobState, /, **changes: Any) -> JobRecord:
        """A copy in ``state`` (the same or a later one) with ``changes`` applied.

        Raises ValueError when ``state`` comes before the current one, when the record is
        already disposed or quarantined (those are final), or when ``changes`` names
        ``state`` or an unknown field.
        """
        if "state" in changes:
            raise ValueError("pass the state as the first argument, not in changes")
        if self.state in TERMINAL_STATES and state is not self.state:
            raise ValueError(f"job {self.job_id} is {self.state}: no transition to {state}")
        if _RANK[state] < _RANK[self.state]:
            raise ValueError(f"job {self.job_id}: {self.state} -> {state} goes backwards")
        return dataclasses.replace(self, state=state, **changes)

    def restart_remote(self, **changes: Any) -> JobRecord:
        """Back to ``claimed`` with no remote input, remote outputs or temp outputs (nor their
        hashes).

        The one allowed backward move: after a 404 for a file the API had accepted (regional
        routing or expiry), the job must upload again. The caller deletes the files named in
        ``temp_outputs`` first, then journals the returned record. Raises ValueError unless
        the record is in ``claimed``, ``uploaded``, ``processed`` or ``downloaded``.
        """
        if self.state is not JobState.CLAIMED and self.state not in _REMOTE_STATES:
            raise ValueError(f"job {self.job_id}: cannot restart remote work from {self.state}")
        cleared = {"remote_input": None, "remote_outputs": (), "temp_outputs": (),
                   "output_sha256s": (), "process_sent_at": None, "ambiguous_since": None}
        return dataclasses.replace(self, state=JobState.CLAIMED, **{**cleared, **changes})

    def resettle(self, fingerprint: Fingerprint) -> JobRecord:
        """Back to ``claimed``, starting over from the claim: the input changed since it was
        fingerprinted (a writer resumed, or rewrote it in place).

        Everything derived from the old content is cleared (hash, remote and local outputs,
        chosen names, the disposal target); the remote paths move to a new round so nothing
        the old content produced can be taken for the new one's. The caller deletes the job's
        temporaries first. Raises ValueError when the record is disposed or quarantined.
        """
        if self.state in TERMINAL_STATES:
            raise ValueError(f"job {self.job_id} is {self.state}: it cannot settle again")
        return dataclasses.replace(
            self, state=JobState.CLAIMED, sha256=None, remote_input=None, remote_outputs=(),
            temp_outputs=(), final_outputs=(), process_sent_at=None, ambiguous_since=None,
            dispose_target=None, extra_settle_used=False, input_fingerprint=fingerprint,
            remote_round=self.remote_round + 1, last_stage="resettle")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (lone surrogates survive ``json.dumps(ensure_ascii=True)``)."""
        # Shallow: every field is a str, int, bool, None or a tuple of str (dataclasses.asdict
        # deep-copies each, a third of a journal write's CPU).
        data = {field.name: getattr(self, field.name) for field in _FIELDS}
        data["state"] = self.state.value
        data["variants"] = [dataclasses.asdict(v) for v in self.variants]
        data["input_fingerprint"] = (None if self.input_fingerprint is None
                                     else list(self.input_fingerprint))
        data["format"] = _FORMAT_VERSION
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobRecord:
        """The record ``to_json`` produced. Raises ValueError when a field is missing or wrong."""
        try:
            return cls(
                job_id=_str(data, "job_id"),
                folder=_str(data, "folder"),
                original_relpath=_str(data, "original_relpath"),
                state=JobState(data["state"]),
                attempts=_int(data, "attempts"),
                first_seen=_str(data, "first_seen"),
                updated_at=_str(data, "updated_at"),
                sha256=_opt_str(data, "sha256"),
                remote_input=_opt_str(data, "remote_input"),
                remote_outputs=_strs(data, "remote_outputs"),
                temp_outputs=_strs(data, "temp_outputs"),
                output_sha256s=_strs(data, "output_sha256s"),
                final_outputs=_strs(data, "final_outputs"),
                last_error=_opt_str(data, "last_error"),
                last_stage=_opt_str(data, "last_stage"),
                detached=data.get("detached", False) is True,
                output_dir=_opt_str(data, "output_dir"),
                **_identity_fields(data),
                upload_file=_opt_str(data, "upload_file"),
                normalized=_opt_str(data, "normalized"),
                pages=_int(data, "pages", 1),
                page=_int(data, "page", 0),
                page_of=_opt_str(data, "page_of"),
            )
        except KeyError as exc:
            raise ValueError(f"journal field missing: {exc}") from exc


def _identity_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The format-2 fields, with their defaults when a format-1 journal lacks them. A format-1
    job found in ``uploaded`` may have sent its process call: it is taken as sent."""
    sent = _opt_str(data, "process_sent_at")
    if data.get("format", 1) == 1 and data.get("state") == JobState.UPLOADED.value:
        sent = _str(data, "updated_at")
    return {
        "variants": _variants(data), "input_fingerprint": _fingerprint(data),
        "extra_settle_used": _bool(data, "extra_settle_used"), "process_sent_at": sent,
        "ambiguous_since": _opt_str(data, "ambiguous_since"),
        "remote_round": _int(data, "remote_round") if "remote_round" in data else 0,
        "dispose_target": _opt_str(data, "dispose_target"),
        "quarantine_target": _opt_str(data, "quarantine_target"),
    }


_VARIANT_FIELDS = frozenset(f.name for f in dataclasses.fields(Variant))


def _variants(data: Mapping[str, Any]) -> tuple[Variant, ...]:
    value = data.get("variants") or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError("journal field 'variants' is not a list of objects")
    try:
        return tuple(Variant(**{k: v for k, v in item.items() if k in _VARIANT_FIELDS})
                     for item in value)
    except TypeError as exc:  # a variant without its name
        raise ValueError(f"journal field 'variants': {exc}") from exc


def _fingerprint(data: Mapping[str, Any]) -> Fingerprint | None:
    value = data.get("input_fingerprint")
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in value)):
        raise ValueError("journal field 'input_fingerprint' is not three integers")
    return (value[0], value[1], value[2])


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"journal field {key!r} is not a boolean")
    return value


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"journal field {key!r} is not a string")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else _str(data, key)


def _int(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    """An integer field; ``default`` when absent (a field later versions added)."""
    value = data[key] if default is None else data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"journal field {key!r} is not an integer")
    return value


def _strs(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"journal field {key!r} is not a list of strings")
    return tuple(value)


_FIELDS = dataclasses.fields(JobRecord)


class Journal:
    """The journal file of one job directory, written with ``fsops.atomic_write_json``."""

    def __init__(self, job_dir: Path, *, clock: WallClock = utc_now) -> None:
        self.job_dir = job_dir
        self.path = job_dir / JOURNAL_NAME
        self._clock = clock

    def read(self) -> JobRecord:
        """The record on disk.

        Raises FileNotFoundError (an OSError) when there is no journal, OSError when it
        cannot be read, ValueError when it is not a valid journal.
        """
        raw = self.path.read_bytes()
        try:
            data = json.loads(raw.decode("ascii"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{self.path}: not an ASCII journal") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{self.path}: not a JSON object")
        return JobRecord.from_json(data)

    def write(self, record: JobRecord) -> JobRecord:
        """Durably replace the journal with ``record`` stamped with the current time.

        Returns the record as written (``updated_at`` set from the clock).
        Raises OSError when the write fails; the previous journal is then intact.
        """
        stamped = dataclasses.replace(record, updated_at=iso_utc(self._clock()))
        # ASCII JSON (surrogates survive), on one line: written ~6 times per job.
        atomic_write_json(self.path, stamped.to_json(), indent=None)
        return stamped
