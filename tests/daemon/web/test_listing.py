"""``daemon.web.listing``: the quarantine as the page lists it, scanned again only when one of
its folders changed (an open tab and Prometheus ask every few seconds; a quarantine may hold
thousands of files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bgcut_watchd.daemon.web import listing
from bgcut_watchd.daemon.web.listing import QuarantineIndex


def _quarantine(folder: Path, name: str, reason: str = "not_an_image") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"x")
    (folder / (name + ".error.json")).write_text(f'{{"reason": "{reason}"}}', "utf-8")


def _age(*folders: Path) -> None:
    """Date the folders 10 s back: past the racy window, as a quarantine left alone is."""
    old_s = time.time() - 10
    for folder in folders:
        os.utime(folder, (old_s, old_s))


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders each scan listed (in order)."""
    seen: list[str] = []
    real = listing._error_files

    def counting(folder: str, subfolders: list[str]) -> list[tuple[int, str]]:
        seen.append(folder)
        return real(folder, subfolders)

    monkeypatch.setattr(listing, "_error_files", counting)
    return seen


def test_an_unchanged_quarantine_is_not_scanned_again(tmp_path: Path,
                                                      scans: list[str]) -> None:
    root = tmp_path / "quarantine"
    for n in range(30):
        _quarantine(root, f"bad{n:02d}.png")
    _quarantine(root / "sub", "deep.png")
    _age(root, root / "sub")
    index = QuarantineIndex(root)
    first = index.get(10)
    assert (first.total, len(first.files)) == (31, 10)
    for _ in range(20):
        assert index.get(10) == first
    assert len(scans) == 2  # the root and "sub", once


def test_a_change_is_seen_at_once_even_within_one_timestamp_tick(tmp_path: Path,
                                                                 scans: list[str]) -> None:
    root = tmp_path / "quarantine"
    _quarantine(root, "a.png")
    index = QuarantineIndex(root)
    assert index.get(10).total == 1
    _quarantine(root, "b.png")  # right after the scan: the folder's mtime may not move
    assert index.get(10).total == 2
    _quarantine(root / "sub", "c.png")
    _age(root, root / "sub")
    assert index.get(10).total == 3
    assert index.get(10).files[0].relpath == "sub/c.png"
    (root / "a.png.error.json").unlink()   # requeued: the error file goes first
    (root / "a.png").unlink()
    listed = index.get(10)
    assert (listed.total, {f.relpath for f in listed.files}) == (2, {"b.png", "sub/c.png"})


def test_only_the_files_shown_have_their_error_file_read(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "quarantine"
    for n in range(50):
        _quarantine(root, f"bad{n:02d}.png")
    read: list[Path] = []
    real = listing.read_error_record

    def counting(error_file: Path) -> dict[str, object]:
        read.append(error_file)
        return real(error_file)

    monkeypatch.setattr(listing, "read_error_record", counting)
    listed = QuarantineIndex(root).get(5)
    assert (listed.total, len(listed.files), len(read)) == (50, 5, 5)
    assert {f.reason for f in listed.files} == {"not_an_image"}
