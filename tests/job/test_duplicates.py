"""Duplicate reuse by content (real folders, a real ledger): an earlier output is copied only
while the file at its recorded path still holds the bytes the ledger recorded."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.config.model import Variant, variant_key
from bgcut_watchd.job import naming
from bgcut_watchd.job.duplicates import copy_earlier_outputs, intact_earlier_outputs
from bgcut_watchd.ledger import Ledger

JOB = "0123456789abcdef0123456789abcdef"
VARIANTS = (Variant("full"), Variant("thumb", format="webp"))
KEY = variant_key(VARIANTS)
CONTENT = "c" * 64


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "state") as opened:
        yield opened


def publish_earlier(ledger: Ledger, folder: Path, job_id: str, stem: str) -> list[Path]:
    """A done job of CONTENT whose two outputs hold bytes naming ``stem``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.full.png", folder / f"{stem}.thumb.webp"]
    for path in paths:
        path.write_bytes(f"{stem} {path.suffix}".encode())
    ledger.record_claim(job_id, "studio", f"{stem}.jpg", KEY, sha256=CONTENT)
    ledger.finish_done(job_id, paths, 1.0, sha256s=[
        hashlib.sha256(p.read_bytes()).hexdigest() for p in paths])
    return paths


def copy(ledger: Ledger, out_dir: Path) -> list[bytes] | None:
    copied = copy_earlier_outputs(ledger, CONTENT, KEY, VARIANTS, out_dir, JOB)
    if copied is None:
        return None
    data = [Path(t).read_bytes() for t in copied.temps]
    assert list(copied.sha256s) == [hashlib.sha256(d).hexdigest() for d in data]
    assert copied.temps == tuple(os.fsdecode(naming.temp_path_for(out_dir, JOB, i))
                                 for i in range(2))
    return data


def test_an_intact_set_is_copied_with_its_hashes(ledger: Ledger, tmp_path: Path) -> None:
    publish_earlier(ledger, tmp_path / "outbox", "first", "first")
    assert copy(ledger, tmp_path / "new") == [b"first .png", b"first .webp"]
    assert intact_earlier_outputs(ledger, CONTENT, KEY, 2) == [
        tmp_path / "outbox" / "first.full.png", tmp_path / "outbox" / "first.thumb.webp"]


def test_a_set_whose_file_holds_other_bytes_is_passed_over_for_an_older_intact_one(
    ledger: Ledger, tmp_path: Path,
) -> None:
    """The importer moved the newer set away and another image took its names."""
    publish_earlier(ledger, tmp_path / "old", "old", "photo")
    newer = publish_earlier(ledger, tmp_path / "outbox", "new", "photo")
    newer[1].write_bytes(b"another image's thumbnail")
    out_dir = tmp_path / "outbox"
    assert copy(ledger, out_dir) == [b"photo .png", b"photo .webp"]
    assert intact_earlier_outputs(ledger, CONTENT, KEY, 2) == [
        tmp_path / "old" / "photo.full.png", tmp_path / "old" / "photo.thumb.webp"]


@pytest.mark.parametrize("damage", ["other bytes", "gone", "symlink", "directory"])
def test_nothing_is_copied_when_no_set_is_intact(
    ledger: Ledger, tmp_path: Path, damage: str,
) -> None:
    [_, thumb] = publish_earlier(ledger, tmp_path / "outbox", "first", "first")
    thumb.unlink()
    if damage == "other bytes":
        thumb.write_bytes(b"B's bytes")
    elif damage == "symlink":
        (tmp_path / "lookalike").write_bytes(b"first .webp")  # even the right bytes, via a link
        thumb.symlink_to(tmp_path / "lookalike")
    elif damage == "directory":
        thumb.mkdir()
    out_dir = tmp_path / "outbox"
    assert copy(ledger, out_dir) is None
    assert intact_earlier_outputs(ledger, CONTENT, KEY, 2) is None
    assert not [n for n in os.listdir(out_dir) if naming.is_job_temp(n, JOB)]  # no copies left


def test_a_set_recorded_without_hashes_is_never_copied(ledger: Ledger, tmp_path: Path) -> None:
    paths = publish_earlier(ledger, tmp_path / "outbox", "first", "first")
    ledger.update("first", output_sha256s=None)  # what a version-1 ledger row looks like
    assert all(p.is_file() for p in paths)
    assert copy(ledger, tmp_path / "new") is None
