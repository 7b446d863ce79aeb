"""Torture 5: hostile inputs (``tests.hostile.HOSTILE_CASES``) and hypothesis-generated file
names (raw bytes, newlines, 255 bytes, NFD) dropped on a running daemon subprocess.

Each input is quarantined with its reason, ignored (left untouched) or processed, as specified;
the daemon stays alive; each quarantine is exactly one WARNING line naming its job, each
success one ``done`` line, and no name ever splits a log line (names are shown escaped).
Which names are ignored comes from ``intake.ignore.IgnoreRules`` (its own tests check it
against product.md's list); this test checks the daemon honours it for every generated name.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import unicodedata
from collections import Counter
from pathlib import Path, PurePath

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.intake.ignore import IgnoreRules
from tests.hostile import (
    HOSTILE_CASES,
    TEST_MAX_BYTES,
    TEST_MAX_PIXELS,
    make_valid_jpeg,
    make_valid_png,
)
from tests.support import (
    VARIANT_SUFFIXES,
    DaemonProcess,
    files_under,
    sha256_of,
    visible_files,
    wait_for,
    write_config,
)
from tests.torture import SIZES, Report

pytestmark = [pytest.mark.torture, pytest.mark.timeout(SIZES.timeout_s)]

LIMITS = {"stability_s": 0.1, "max_input_bytes": TEST_MAX_BYTES,
          "max_input_pixels": TEST_MAX_PIXELS}
NOT_A_FILE = "directory_named_jpg"  # a folder is walked into, never taken: nothing happens
RECORD = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\S* (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                    r"bgcut_watchd[\w.]*: ")
QUARANTINED = re.compile(r" WARNING bgcut_watchd\.job: job (\w+) \[studio\] (.*): quarantined at ")
PY_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning: ")


def show(relpath: str) -> str:
    """How the daemon's log lines show a path (``fsops.show_path``: the escaped repr)."""
    return repr(relpath)


def stray_lines(log_text: str) -> list[str]:
    """Log lines that are neither a record nor part of a Python warning (its message line and
    the indented source line below it): a name that broke a line would show up here."""
    stray, after_warning = [], False
    for line in log_text.splitlines():
        if RECORD.match(line) or PY_WARNING.match(line):
            after_warning = PY_WARNING.match(line) is not None
            continue
        if not (after_warning and line.startswith("  ")):
            stray.append(line)
        after_warning = False
    return stray


def quarantine_lines(log_text: str) -> dict[str, list[str]]:
    """The shown input path of every quarantine WARNING line -> the job ids of those lines."""
    found: dict[str, list[str]] = {}
    for line in log_text.splitlines():
        match = QUARANTINED.search(line)
        if match:
            found.setdefault(match.group(2), []).append(match.group(1))
    return found


def warning_count_per_job(log_text: str, job_ids: list[str]) -> dict[str, int]:
    lines = [ln for ln in log_text.splitlines() if " WARNING " in ln or " ERROR " in ln]
    return {job: sum(job in ln for ln in lines) for job in job_ids}


def reason_of(quarantine: Path, name: str) -> str | None:
    error_file = quarantine / f"{name}.error.json"
    if not os.path.lexists(quarantine / name) or not error_file.exists():
        return None
    return str(json.loads(error_file.read_text("utf-8"))["reason"])


def test_hostile_inputs_are_quarantined_once_each_with_one_log_line_and_the_daemon_lives_on(
    tmp_path: Path, emulator: FakeApiServer, torture_report: Report,
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon=LIMITS)
    studio = tmp_path / "studio"
    inbox, quarantine = studio / "inbox", studio / "quarantine"
    inbox.mkdir(parents=True, exist_ok=True)
    bad = [c for c in HOSTILE_CASES if c.expected is not None and c.name != NOT_A_FILE]
    good = [c for c in HOSTILE_CASES if c.expected is None]
    with DaemonProcess(config) as daemon:
        made = {case.name: case.make(inbox) for case in HOSTILE_CASES}
        wait_for(lambda: all(reason_of(quarantine, made[c.name].name) for c in bad)
                 and len(files_under(studio / "archive")) == len(good),
                 timeout_s=30, what="every bad input quarantined, every good one archived")
        assert daemon.proc is not None and daemon.proc.poll() is None
        make_valid_png(inbox, "after.png")  # still alive: the next file is processed
        wait_for(lambda: len(files_under(studio / "archive")) == len(good) + 1,
                 what="a valid file dropped afterwards archived")
        assert daemon.terminate() == 0
    log_text = daemon.log_text()

    assert {c.name: reason_of(quarantine, made[c.name].name) for c in bad} \
        == {c.name: c.expected for c in bad}
    assert made[NOT_A_FILE].is_dir() and not os.path.lexists(quarantine / "folder.jpg")
    lines = quarantine_lines(log_text)
    assert sorted(lines) == sorted(show(made[c.name].name) for c in bad)  # one line per input
    job_ids = [job for jobs in lines.values() for job in jobs]
    assert all(len(jobs) == 1 for jobs in lines.values()), lines
    assert len(set(job_ids)) == len(bad)
    assert warning_count_per_job(log_text, job_ids) == dict.fromkeys(job_ids, 1)
    for case in good:
        assert log_text.count(f"{show(made[case.name].name)}: done, ") == 1, case.name
    assert stray_lines(log_text) == []
    torture_report(f"{len(bad)} hostile inputs quarantined with their reasons, one WARNING line "
                   f"each; {len(good)} hostile names processed; 1 directory left alone; "
                   f"daemon alive and exiting 0")


# -- hypothesis: hostile file names -----------------------------------------------------------

def is_valid_name(name: bytes) -> bool:
    return 0 < len(name) <= 255 and name not in (b".", b"..") and b"/" not in name \
        and b"\0" not in name


NAME_TEXT = st.characters(codec="utf-8", exclude_characters="/\0")
ACCENTED = "aeiouAEIOU\u00e9\u00e8\u00e0\u00fc\u00f6\u00e7\u00f1\u00c5\u00f8\u1e31\u01d6 .-_"
RAW_NAMES = st.binary(min_size=1, max_size=60)
TEXT_NAMES = st.text(NAME_TEXT, min_size=1, max_size=40).map(os.fsencode)
NFD_NAMES = st.text(st.sampled_from(ACCENTED), min_size=1, max_size=30).map(
    lambda text: unicodedata.normalize("NFD", text + ".jpg").encode("utf-8"))
NEWLINE_NAMES = st.tuples(st.text(NAME_TEXT, max_size=10), st.text(NAME_TEXT, max_size=10)).map(
    lambda parts: os.fsencode(f"{parts[0]}\n{parts[1]}.png"))
LONG_NAMES = st.tuples(st.binary(min_size=1, max_size=8), st.sampled_from([b".jpg", b"", b"."])) \
    .map(lambda p: (p[0] * 255)[: 255 - len(p[1])] + p[1])
# Names shaped like product.md's ignore list (hidden, partial downloads, editor and NAS files).
IGNORE_SHAPES = [".{}", "{}.part", "{}.tmp", "{}.crdownload", "{}.download", "~${}", "{}~",
                 "{}.swp", "._{}", ".syncthing.{}", "~syncthing~{}"]
IGNORABLE_NAMES = st.one_of(
    st.tuples(st.sampled_from(IGNORE_SHAPES), st.text(NAME_TEXT, min_size=1, max_size=12))
    .map(lambda p: os.fsencode(p[0].format(p[1]))),
    st.sampled_from([b"Thumbs.db", b"tHuMbS.dB", b"DESKTOP.INI", b".DS_Store"]),
)
NAMES = st.one_of(RAW_NAMES, TEXT_NAMES, NFD_NAMES, NEWLINE_NAMES, LONG_NAMES,
                  IGNORABLE_NAMES).filter(is_valid_name)


class NameRun:
    """Drops each example's names into their own subfolders of a running daemon's inbox."""

    def __init__(self, studio: Path) -> None:
        self.studio = studio
        self.rules = IgnoreRules()
        self.examples = itertools.count()
        self.ignored: dict[Path, tuple[str, int]] = {}  # path -> (sha256, mtime_ns)
        self.processed: list[str] = []  # relative paths in the inbox, sentinels included
        self.sentinels = 0
        self.names: Counter[str] = Counter()

    def run_example(self, names: list[bytes]) -> None:
        example_dir = f"ex-{next(self.examples)}"
        expected: list[str] = []
        for index, raw in enumerate(names):
            relpath = f"{example_dir}/{index}/{os.fsdecode(raw)}"
            folder = self.studio / "inbox" / example_dir / str(index)
            folder.mkdir(parents=True)
            path = make_valid_jpeg(folder, os.fsdecode(raw), (40 + len(self.processed) % 90,
                                                              30 + len(self.ignored) % 90))
            self.names[self.kind(raw)] += 1
            if self.rules.is_ignored(PurePath(relpath)):
                self.ignored[path] = (sha256_of(path), path.stat().st_mtime_ns)
            else:
                expected.append(relpath)
        sentinel = f"{example_dir}/sentinel.png"  # always something to wait for, dropped last
        make_valid_png(self.studio / "inbox" / example_dir, "sentinel.png")
        expected.append(sentinel)
        self.sentinels += 1
        wait_for(lambda: all(os.path.lexists(self.studio / "archive" / r) for r in expected),
                 timeout_s=20, what=f"the names of {example_dir} processed")
        self.processed += expected
        for relpath in expected:
            self.check_outputs(relpath)

    def check_outputs(self, relpath: str) -> None:
        """Three outputs beside where the input was, one stem (a prefix of the input's)."""
        out_dir = self.studio / "outbox" / os.path.dirname(relpath)
        outputs = sorted(os.fsencode(p.name) for p in out_dir.iterdir() if p.is_file())
        suffixes = sorted(b"." + s.encode() for s in VARIANT_SUFFIXES)
        stems = {o[: -len(s)] for o, s in zip(outputs, suffixes, strict=False) if o.endswith(s)}
        assert len(outputs) == 3 and len(stems) == 1, (relpath, outputs)
        assert os.fsencode(os.path.basename(relpath)).startswith(stems.pop()), (relpath, outputs)
        for name in outputs:
            with Image.open(out_dir / os.fsdecode(name)) as image:
                image.load()

    @staticmethod
    def kind(raw: bytes) -> str:
        if len(raw) == 255:
            return "255 bytes"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "not UTF-8"
        if "\n" in text:
            return "newline"
        return "NFD" if unicodedata.normalize("NFC", text) != text else "other"


def test_generated_file_names_are_processed_or_ignored_and_never_break_a_log_line(
    tmp_path: Path, emulator: FakeApiServer, torture_report: Report,
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon=LIMITS)
    run = NameRun(tmp_path / "studio")
    (run.studio / "inbox").mkdir(parents=True, exist_ok=True)

    @settings(max_examples=SIZES.name_examples, deadline=None, database=None, derandomize=True,
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(st.lists(NAMES, min_size=1, max_size=SIZES.names_per_example))
    @example([b"line\nbreak.jpg", b"\n", b"n" * 251 + b".jpg", b"bad\xff\xfename.jpg"])
    @example([unicodedata.normalize("NFD", "caf\u00e9 \u00c5ngstr\u00f6m.jpg").encode(),
              b"...", b"-rf --help.jpg", b" ", b"x.jpg.part", b"\xc3"])
    def drop_names(names: list[bytes]) -> None:
        run.run_example(names)

    with DaemonProcess(config) as daemon:
        drop_names()
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert daemon.terminate() == 0
    log_text = daemon.log_text()

    assert files_under(run.studio / "quarantine") == []
    assert {p: (sha256_of(p), p.stat().st_mtime_ns) for p in run.ignored} == run.ignored
    inbox_left = {p for p in visible_files(run.studio / "inbox")}
    assert inbox_left <= set(run.ignored)  # nothing else left behind
    for relpath in run.processed:
        assert log_text.count(f"{show(relpath)}: done, ") == 1, relpath
    assert stray_lines(log_text) == []
    torture_report(f"{len(run.processed) - run.sentinels} generated names processed and "
                   f"{len(run.ignored)} ignored over {run.sentinels} examples (2 explicit); kinds "
                   f"{dict(run.names)}; one done line each; no log line broken")
