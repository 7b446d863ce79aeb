"""Calls per image: what the daemon asks of the API for each kind of input, while nothing fails.

The inbox gets valid images (half present at start-up, half dropped while it runs, among them
the hostile-but-valid names of ``tests/hostile.py``: spaces, a newline, invalid UTF-8, 255
bytes...), files the daemon must ignore (partial downloads, editor and sync leftovers, dot
files, ``@eaDir``), and invalid inputs (the hostile corpus: empty, truncated, wrong format,
symlink, FIFO...), and what devices drop (``tests/devices/corpus.py``): an iPhone-like HEIC
(Display P3, turned a quarter), a 3-page TIFF (each page a job of its own) and a JPEG with an
EXIF orientation, all converted before their upload. Once every valid input is archived, every
page's outputs are in the outbox and every invalid input is quarantined, plus a grace period for
any stray call, the emulator's request log is grouped by job: each processed page (an input of
one page, or one page of the TIFF) must cost exactly one upload, one process call and one
download per variant; ignored and invalid files nothing at all.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.figures import Figure, info
from bench.harness import (
    API_KEY,
    Daemon,
    Emulator,
    Settings,
    count_files,
    make_config,
    wait_quietly,
)
from bench.images import TinyImages
from tests.devices.corpus import heic_phone, jpeg_oriented, tiff_three_pages
from tests.hostile import HOSTILE_CASES, TEST_MAX_BYTES

NAME = "calls"
VARIANTS = 3
GRACE_S = 2.0
IGNORED_NAMES = (".hidden.png", "photo.png.part", "upload.tmp", "big.jpg.crdownload",
                 "shot.jpg.download", "~$lock.jpg", "draft.jpg~", "edit.jpg.swp",
                 ".syncthing.a.jpg.tmp", "~syncthing~b.jpg.tmp", "._mac.jpg", "Thumbs.db",
                 "desktop.ini", ".DS_Store", "@eaDir/thumb.jpg", ".stfolder/x.jpg",
                 "#recycle/old.jpg")
INVALID_CASES = [c for c in HOSTILE_CASES if c.expected is not None
                 and c.name != "directory_named_jpg"]  # a folder: never an input at all
VALID_NAMED_CASES = [c for c in HOSTILE_CASES if c.expected is None]
DEVICE_FILES = ((heic_phone, 1), (tiff_three_pages, 3), (jpeg_oriented(6), 1))  # (make, pages)
DEVICE_PAGES = sum(pages for _, pages in DEVICE_FILES)


def run(settings: Settings) -> list[Figure]:
    plain = settings.pick(40, 10)
    root = settings.workdir / NAME
    with Emulator(root / "emulator") as api:
        config = make_config(root, api.base_url,
                             daemon={"workers": 8, "stability_s": 0.3,
                                     "max_input_bytes": TEST_MAX_BYTES},
                             api={"max_requests_per_minute": 100000})
        inbox = root / "studio" / "inbox"
        tiny = TinyImages()
        tiny.fill(inbox, plain // 2, prefix="early")
        valid = plain + len(VALID_NAMED_CASES) + len(DEVICE_FILES)
        pages = valid - len(DEVICE_FILES) + DEVICE_PAGES
        with Daemon(config, API_KEY) as daemon:
            wait_quietly(lambda: (root / "state" / "status.json").exists(), timeout_s=30)
            ignored = drop_everything(inbox, tiny, plain - plain // 2)
            finished = wait_quietly(lambda: _settled(root, valid, pages), timeout_s=60 + valid)
            time.sleep(GRACE_S)  # a window for any stray call to show up in the log
            daemon.stop()
        log = api.log()
    processed = count_files(root / "studio" / "archive")
    quarantined = _quarantined(root)
    untouched = sum(1 for path, data in ignored.items() if _same(path, data))
    return figures(log, processed, valid, quarantined, untouched, len(ignored), finished,
                   processed - len(DEVICE_FILES) + DEVICE_PAGES)


def drop_everything(inbox: Path, tiny: TinyImages, plain: int) -> dict[Path, bytes]:
    """Drop the live half of the valid images, the ignored files and the invalid inputs.

    Returns the ignored files with their contents (to check they were never touched).
    """
    tiny.fill(inbox, plain, prefix="live", start=100000)
    ignored: dict[Path, bytes] = {}
    for n, name in enumerate(IGNORED_NAMES):
        path = inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ignored[path] = tiny.png_bytes(200000 + n)
        path.write_bytes(ignored[path])
    for case in VALID_NAMED_CASES + INVALID_CASES:
        case.make(inbox)
    for make, _ in DEVICE_FILES:
        make(inbox)
    return ignored


def _settled(root: Path, valid: int, pages: int) -> bool:
    return (count_files(root / "studio" / "archive") >= valid
            and _outputs(root) >= pages * VARIANTS
            and _quarantined(root) >= len(INVALID_CASES))


def _outputs(root: Path) -> int:
    """Published outputs, in the outbox and its subfolders (no temporaries: dot files)."""
    return sum(1 for p in (root / "studio" / "outbox").rglob("*")
               if p.is_file() and not p.name.startswith("."))


def _quarantined(root: Path) -> int:
    folder = root / "studio" / "quarantine"
    if not folder.exists():
        return 0
    return sum(1 for p in folder.iterdir() if not p.name.endswith(".error.json"))


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def per_job(log: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """API calls grouped by job (the job id is the second segment of every stored path)."""
    jobs: dict[str, Counter[str]] = {}
    for entry in log:
        parts = (entry.get("file_path") or "").split("/")
        job = parts[1] if len(parts) > 2 else "?"
        jobs.setdefault(job, Counter())[entry["endpoint"]] += 1
    return jobs


def figures(log: list[dict[str, Any]], processed: int, valid: int, quarantined: int,
            untouched: int, ignored: int, finished: bool, pages: int) -> list[Figure]:
    """The figures; ``pages`` is what ``processed`` inputs make as jobs (a 3-page TIFF: 3)."""
    failed = [e for e in log if e["status"] != 200]
    jobs = per_job(log)
    result = [_per_input(jobs, pages, endpoint, expected)
              for endpoint, expected in (("upload", 1), ("process", 1), ("download", VARIANTS))]
    stray = len(log) - sum(sum(c.values()) for c in jobs.values() if _complete(c))
    result += [
        Figure(NAME, "API calls for ignored and invalid files", stray, "", "== 0", stray == 0,
               note=f"{len(INVALID_CASES)} invalid quarantined of {quarantined}; {ignored} "
                    f"ignored, {untouched} left untouched"),
        Figure(NAME, "valid inputs processed", processed, "", f"== {valid}",
               processed == valid and finished and untouched == ignored
               and quarantined == len(INVALID_CASES),
               note="every input accounted for" if finished else "timed out waiting"),
    ]
    if failed:
        result.append(info(NAME, "failed API calls", len(failed), "",
                           note="the emulator answered errors: counts above are not clean"))
    return result


def _complete(calls: Counter[str]) -> bool:
    return calls["upload"] >= 1


def _per_input(jobs: dict[str, Counter[str]], pages: int, endpoint: str,
               expected: int) -> Figure:
    counts = [c[endpoint] for c in jobs.values() if _complete(c)]
    per_page = sum(counts) / pages if pages else float("nan")
    exact = len(counts) == pages and all(n == expected for n in counts)
    label = {"upload": "uploads", "process": "process calls", "download": "downloads"}[endpoint]
    return Figure(NAME, f"{label} per processed page", per_page, "", f"== {expected} each",
                  exact, note=f"{len(counts)} jobs for {pages} pages (a HEIC, a 3-page TIFF "
                              f"and an oriented JPEG among them), counts "
                              f"{sorted(Counter(counts).items())}")
