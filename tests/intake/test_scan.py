"""Scanning real folders: ignored folders, symlinks, FIFOs, deep and wide trees."""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from bgcut_watchd.intake.ignore import IgnoreRules
from bgcut_watchd.intake.scan import is_candidate, looks_like_image, scan_folder


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    outside = tmp_path / "outside"
    _touch(outside / "f.jpg")
    for rel in [
        "a.jpg", "notes.txt", ".hidden.jpg", "x.jpg.part", "Thumbs.db", "sub/c.png",
        "sub/deep/d.webp", "@eaDir/a.jpg", ".bgcut-work/0011/input.jpg",
        "sub/#recycle/e.jpg", "proofs/p.jpg", "sub/raw.cr2",
    ]:
        _touch(inbox / rel)
    (inbox / "linkdir").symlink_to(outside, target_is_directory=True)
    (inbox / "linkdir.jpg").symlink_to(outside, target_is_directory=True)
    (inbox / "link.jpg").symlink_to(inbox / "a.jpg")
    (inbox / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (inbox / "link-no-ext").symlink_to(inbox / "a.jpg")
    os.mkfifo(inbox / "pipe.jpg")
    os.mkfifo(inbox / "pipe")
    return inbox


def _rel(inbox: Path, paths: object) -> set[str]:
    assert isinstance(paths, types.GeneratorType)
    return {p.relative_to(inbox).as_posix() for p in paths}


def test_recursive_scan_yields_candidates_only(tree: Path) -> None:
    found = _rel(tree, scan_folder(tree, True, IgnoreRules(("proofs",))))
    assert found == {
        "a.jpg", "notes.txt", "sub/c.png", "sub/deep/d.webp", "sub/raw.cr2",
        "link.jpg", "linkdir.jpg", "dangling.png", "pipe.jpg",
    }


def test_flat_scan_stays_at_the_top(tree: Path) -> None:
    found = _rel(tree, scan_folder(tree, False, IgnoreRules()))
    assert found == {
        "a.jpg", "notes.txt", "link.jpg", "linkdir.jpg", "dangling.png", "pipe.jpg",
    }


def test_scan_from_a_subfolder(tree: Path) -> None:
    rules = IgnoreRules()
    assert _rel(tree, scan_folder(tree, True, rules, tree / "sub")) == {
        "sub/c.png", "sub/deep/d.webp", "sub/raw.cr2",
    }
    assert _rel(tree, scan_folder(tree, True, rules, tree / "@eaDir")) == set()
    assert _rel(tree, scan_folder(tree, False, rules, tree / "sub")) == set()
    with pytest.raises(ValueError):
        list(scan_folder(tree, True, rules, tree.parent / "outside"))


def test_missing_inbox_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(scan_folder(tmp_path / "nope", True, IgnoreRules()))


def test_a_subfolder_vanishing_mid_scan_is_skipped(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    _touch(inbox / "a.jpg")
    _touch(inbox / "gone" / "b.jpg")
    scan = scan_folder(inbox, True, IgnoreRules())
    first = next(scan)  # the top folder is listed; "gone" waits on the stack
    (inbox / "gone" / "b.jpg").unlink()
    (inbox / "gone").rmdir()
    assert {first, *scan} == {inbox / "a.jpg"}


def test_deep_tree_beyond_the_recursion_limit(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    levels = [inbox]
    for _ in range(1200):  # built and removed level by level: pathlib and rmtree recurse
        levels[-1].mkdir()
        levels.append(levels[-1] / "d")
    bottom = _touch(levels[-2] / "bottom.jpg")
    try:
        assert list(scan_folder(inbox, True, IgnoreRules())) == [bottom]
    finally:
        bottom.unlink()
        for level in reversed(levels[:-1]):
            level.rmdir()


def test_twenty_thousand_files(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    for d in range(20):
        folder = inbox / f"batch{d:02}"
        folder.mkdir(parents=True)
        for i in range(1000):
            os.mknod(folder / f"img{i:04}.jpg")
    _touch(inbox / ".bgcut-work" / "job" / "input.jpg")
    assert sum(1 for _ in scan_folder(inbox, True, IgnoreRules())) == 20_000


@pytest.mark.parametrize(
    ("name", "image"),
    [("a.jpg", True), ("A.JPEG", True), ("b.Png", True), ("c.webp", True), ("d.avif", True),
     ("e.gif", False), ("jpg", False), ("f.jpg.txt", False)],
)
def test_looks_like_image(name: str, image: bool) -> None:
    assert looks_like_image(name) is image


def test_is_candidate_by_mode(tree: Path) -> None:
    assert is_candidate("notes.txt", (tree / "notes.txt").lstat().st_mode)
    assert not is_candidate("sub", (tree / "sub").lstat().st_mode)
    assert is_candidate("pipe.jpg", (tree / "pipe.jpg").lstat().st_mode)
    assert not is_candidate("pipe", (tree / "pipe").lstat().st_mode)
