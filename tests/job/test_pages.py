"""Multi-page inputs: every page a job of its own, and kill -9 at any point of the split loses no
page and processes none twice.

Each crash test runs the split as the upload step does (claim, local check, ``write_pages``,
``hand_over_pages``) in a child process that SIGKILLs itself at one precise point, then lets a
real daemon (in-process, against the emulator) recover the work area and finish. Whatever the
point, the outbox must hold exactly one output set per page, the TIFF be archived once, and
every page job have uploaded and processed once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.naming import page_relpath
from bgcut_watchd.job.normalize import Limits
from bgcut_watchd.job.pages import hand_over_pages, write_pages
from bgcut_watchd.job.validate import validate_input
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea
from tests.devices.corpus import scene
from tests.support import (
    REPO,
    InProcessDaemon,
    api_calls_per_job,
    files_under,
    job_dirs,
    visible_files,
    wait_for,
    write_config,
)

PAGES = 4
LIMITS = Limits(max_bytes=10**7, max_pixels=10**7)
PATCHES = ((200, 40, 60), (40, 90, 200), (30, 150, 60), (150, 60, 160))

_CHILD = r'''
import os, signal, sys
from pathlib import Path
from bgcut_watchd.job import pages, workarea, journal
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.normalize import Limits
from bgcut_watchd.job.validate import validate_input

inbox, point = Path(sys.argv[1]), sys.argv[2]
calls = {"write": 0, "spawn": 0}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

real_write_within = pages.write_within
def write_within(*args, **kwargs):
    calls["write"] += 1
    if point == "between-pages" and calls["write"] == 2:
        die()  # page 2 written, page 3 not
    return real_write_within(*args, **kwargs)
pages.write_within = write_within

real_save = workarea.ClaimedJob.save
def save(self, record):
    if point == "before-journal-pages" and record.pages > 1:
        die()
    written = real_save(self, record)
    if point == "after-journal-pages" and record.pages > 1:
        die()
    return written
workarea.ClaimedJob.save = save

real_claimed = workarea._claimed
def claimed(record, input_path):
    if point == "moved-not-claimed" and record.page == 2:
        die()  # the page file is in its new dir, journaled "claiming" (the journal stays so
        # until the page's job writes again)
    return real_claimed(record, input_path)
workarea._claimed = claimed

real_write = journal.Journal.write
def write(self, record):
    written = real_write(self, record)
    if point == "claiming-not-moved" and record.page == 2 and record.state is JobState.CLAIMING:
        die()  # the new dir is journaled, the page file not moved yet
    return written
journal.Journal.write = write

def spawn(job):
    calls["spawn"] += 1
    if point == "one-handed-over":
        die()

area = workarea.WorkArea(inbox)
job = area.claim("studio", inbox / "letters.tif")
checked = validate_input(job.input_path, max_bytes=10**7, max_pixels=10**7)
job.save(job.record.advance(JobState.CLAIMED, sha256=checked.sha256))
pages.write_pages(job, checked, Limits(10**7, 10**7), True, print)
pages.hand_over_pages(job, area, spawn)
if point == "end":
    die()  # the whole split done, the process killed before the upload
sys.exit(3)  # the crash point was never reached: the test would prove nothing
'''

CRASH_POINTS = ("between-pages", "before-journal-pages", "after-journal-pages",
                "claiming-not-moved", "moved-not-claimed", "one-handed-over", "end")


def make_letters(inbox: Path) -> Path:
    """A 4-page TIFF, each page its own patch colour."""
    inbox.mkdir(parents=True, exist_ok=True)
    pages = [scene(patch) for patch in PATCHES]
    path = inbox / "letters.tif"
    pages[0].save(path, "TIFF", compression="tiff_lzw", save_all=True, append_images=pages[1:])
    return path


def _patch_of(path: Path) -> tuple[int, int, int]:
    with Image.open(path) as image:
        rgb = image.convert("RGB").getpixel((48, 32))
    assert isinstance(rgb, tuple)
    return rgb[0], rgb[1], rgb[2]


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_9_anywhere_in_the_split_loses_no_page_and_doubles_none(
    tmp_path: Path, emulator: FakeApiServer, point: str,
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon={"workers": 2})
    studio = tmp_path / "studio"
    make_letters(studio / "inbox")
    child = subprocess.run([sys.executable, "-c", _CHILD, str(studio / "inbox"), point],
                           cwd=REPO, capture_output=True, timeout=60, check=False)
    assert child.returncode == -9, child.stderr.decode()

    with InProcessDaemon(config):
        wait_for(lambda: len(visible_files(studio / "outbox")) >= 3 * PAGES
                 and not job_dirs(studio / "inbox"), timeout_s=30,
                 what="every page processed, the work area empty")
    names = sorted(p.name for p in visible_files(studio / "outbox"))
    assert names == sorted(f"letters-p{page}.{suffix}" for page in range(1, PAGES + 1)
                           for suffix in ("full.png", "thumb.webp", "white.jpg"))
    for page, patch in enumerate(PATCHES, start=1):
        got = _patch_of(studio / "outbox" / f"letters-p{page}.full.png")
        assert max(abs(a - b) for a, b in zip(got, patch, strict=True)) <= 2, (page, got)
    assert [p.name for p in files_under(studio / "archive")] == ["letters.tif"]
    assert files_under(studio / "quarantine") == []
    calls = api_calls_per_job(emulator.requests())
    assert len(calls) == PAGES
    assert all(c == {"upload": 1, "process": 1} for c in calls.values()), calls


def test_pages_become_jobs_with_their_page_in_the_journal(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    source = make_letters(inbox)
    area = WorkArea(inbox)
    job = area.claim("studio", source)
    assert job is not None
    checked = validate_input(job.input_path, max_bytes=10**7, max_pixels=10**7)
    spawned: list[ClaimedJob] = []
    said: list[str] = []

    write_pages(job, checked, LIMITS, True, said.append)
    assert job.record.pages == PAGES
    assert sorted(p.name for p in job.job_dir.iterdir() if p.name.startswith("page-")) == [
        "page-2.png", "page-3.png", "page-4.png"]
    assert hand_over_pages(job, area, spawned.append) == PAGES - 1
    assert hand_over_pages(job, area, spawned.append) == 0  # idempotent: nothing left
    assert [(j.record.page, j.record.page_of, j.record.original_relpath, j.record.state)
            for j in sorted(spawned, key=lambda j: j.record.page)] == [
        (page, "letters.tif", page_relpath("letters.tif", page, "png"), JobState.CLAIMED)
        for page in range(2, PAGES + 1)]
    for new_job, patch in zip(sorted(spawned, key=lambda j: j.record.page), PATCHES[1:],
                              strict=True):
        assert _patch_of(new_job.input_path) == patch
    assert said == ["4 pages: page 1 stays with this job, pages 2-4 become jobs of their own"]


def test_a_page_that_does_not_decode_quarantines_the_whole_input_before_any_page_leaves(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    source = make_letters(inbox)
    data = bytearray(source.read_bytes())
    with Image.open(source) as image:  # where page 3's strip starts: damage it
        image.seek(2)
        offset = image.tag_v2[273][0]  # type: ignore[attr-defined]
    data[offset:offset + 40] = b"\xff" * 40
    source.write_bytes(bytes(data))
    area = WorkArea(inbox)
    job = area.claim("studio", source)
    assert job is not None
    checked = validate_input(job.input_path, max_bytes=10**7, max_pixels=10**7)
    from bgcut_watchd.errors import LocalInputError

    with pytest.raises(LocalInputError) as raised:
        write_pages(job, checked, LIMITS, True, lambda _: None)
    assert raised.value.reason == "invalid_image"
    assert raised.value.detail.startswith("page 3 of 4: a TIFF file that does not decode: ")
    assert job.record.pages == 1  # nothing committed: the quarantine takes the TIFF whole
