"""The ignore rules: the built-in table, the folder's own patterns, and their consistency."""

from __future__ import annotations

from pathlib import PurePath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgcut_watchd.intake.ignore import IgnoreRules

BUILTIN_IGNORED = [
    (".hidden.jpg", "hidden name '.hidden.jpg'"),
    (".bgcut-work/0123abcd/input.jpg", "hidden name '.bgcut-work'"),
    ("sub/.git/objects/a.png", "hidden name '.git'"),
    ("a.jpg.part", "'*.part'"),
    ("photo.jpg.partial", "'*.partial'"),  # rclone's temporary name
    ("x.tmp", "'*.tmp'"),
    ("photo.jpg.crdownload", "'*.crdownload'"),
    ("photo.jpg.download", "'*.download'"),
    ("~$report.jpg", "'~$*'"),
    ("a.jpg~", "'*~'"),
    ("a.swp", "'*.swp'"),
    (".syncthing.a.jpg", "'.syncthing.*'"),
    ("~syncthing~a.jpg", "'~syncthing~*'"),
    ("._a.jpg", "'._*'"),
    (".DS_Store", "'.DS_Store'"),
    ("Thumbs.db", "'Thumbs.db'"),
    ("sub/THUMBS.DB", "'Thumbs.db'"),
    ("Desktop.INI", "'desktop.ini'"),
    ("@eaDir/a.jpg", "folder '@eaDir'"),
    ("x/@eaDir/a.jpg/SYNOPHOTO_THUMB_XL.jpg", "folder '@eaDir'"),
    (".stfolder", "folder '.stfolder'"),
    (".stversions/a~20240101.jpg", "folder '.stversions'"),
    ("sub/#recycle/deep/a.jpg", "folder '#recycle'"),
]

BUILTIN_KEPT = [
    "a.jpg", "sub/deep/a.png", "part.jpg", "my~file.jpg", "a.PART.jpg", "thumbs.db.jpg",
    "eaDir/a.jpg", "recycle/a.jpg", "x.tmp.jpg", "a$b.jpg", "syncthing.jpg",
]


@pytest.mark.parametrize(("relpath", "rule"), BUILTIN_IGNORED)
def test_builtin_rules_ignore_and_name_the_rule(relpath: str, rule: str) -> None:
    found = IgnoreRules().is_ignored(PurePath(relpath))
    assert found is not None
    assert rule in found


@pytest.mark.parametrize("relpath", BUILTIN_KEPT)
def test_ordinary_names_are_not_ignored(relpath: str) -> None:
    assert IgnoreRules().is_ignored(PurePath(relpath)) is None


@pytest.mark.parametrize(
    ("patterns", "relpath", "ignored"),
    [
        (("*.raw",), "a.raw", True),
        (("*.raw",), "sub/a.raw", True),
        (("*.raw",), "a.jpg", False),
        (("proofs",), "proofs/a.jpg", True),
        (("proofs",), "x/proofs/y/a.jpg", True),
        (("raw/*",), "raw/a.jpg", True),
        (("raw/*",), "raw/sub/a.jpg", True),
        (("raw/*",), "other/raw/a.jpg", False),
        (("/top.jpg",), "top.jpg", True),
        (("/top.jpg",), "sub/top.jpg", False),
        (("*.RAW",), "a.raw", False),
        (("", "/"), "a.jpg", False),
    ],
)
def test_folder_patterns(patterns: tuple[str, ...], relpath: str, ignored: bool) -> None:
    rule = IgnoreRules(patterns).is_ignored(PurePath(relpath))
    assert (rule is not None) is ignored
    if ignored:
        assert rule is not None and rule.startswith("ignore pattern")


def test_parents_checked_tests_only_the_last_component() -> None:
    rules = IgnoreRules()
    assert rules.is_ignored(PurePath(".work/a.jpg"), parents_checked=True) is None
    assert rules.is_ignored(PurePath(".work/a.jpg")) is not None
    assert rules.is_ignored(PurePath("ok/.a.jpg"), parents_checked=True) is not None


def test_invalid_utf8_names_do_not_break_matching() -> None:
    name = b"caf\xe9.jpg.part".decode("utf-8", "surrogateescape")
    assert IgnoreRules().is_ignored(PurePath(name)) is not None


_component = st.sampled_from(
    ["a.jpg", "sub", ".h", "@eaDir", "x.part", "raw", "Thumbs.db", "b~", "#recycle", "k"]
)


@given(st.lists(_component, min_size=1, max_size=5))
def test_scan_and_event_views_agree(parts: list[str]) -> None:
    """Ignored as a whole path exactly when some prefix is ignored by its last component
    (what a scan checks while descending)."""
    rules = IgnoreRules(("raw/*", "k"))
    whole = rules.is_ignored(PurePath(*parts)) is not None
    by_prefix = any(
        rules.is_ignored(PurePath(*parts[: i + 1]), parents_checked=True) is not None
        for i in range(len(parts))
    )
    assert whole == by_prefix
