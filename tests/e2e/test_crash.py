"""``kill -9`` at random moments on a real daemon subprocess: the promises of product.md hold.

Nothing is lost (every input ends in exactly one place), nothing is half-written (every visible
output decodes, every set is complete, no ``-1`` sets), nothing is paid twice (a job whose
outputs were downloaded never calls the API again after a restart).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.fake_api.reqlog import RequestLogEntry
from tests.hostile import make_valid_avif, make_valid_jpeg, make_valid_png, make_valid_webp
from tests.support import DaemonProcess, files_under, visible_files, wait_for, write_config

SEED = 20261125
FILE_COUNT = 60
KILL_ROUNDS = 10
KILL_STATES = ("claimed", "uploaded", "processed", "downloaded", "published")
UPLOAD_PREFIX = "bgcut-watchd"  # the default api.upload_prefix: remote paths are <prefix>/<job>/...
VARIANT_SUFFIXES = ("full.png", "thumb.webp", "white.jpg")
WORK_DIR = ".bgcut-work"

Maker = Callable[[Path, str, tuple[int, int]], Path]
MAKERS: tuple[tuple[Maker, str], ...] = (
    (make_valid_jpeg, "jpg"), (make_valid_png, "png"), (make_valid_webp, "webp"),
    (make_valid_avif, "avif"),
)


# -- helpers ------------------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def poll_until(predicate: Callable[[], object], timeout_s: float) -> bool:
    """Like ``wait_for`` but returns False at the deadline instead of failing."""
    try:
        wait_for(predicate, timeout_s, interval_s=0.005)
    except AssertionError:
        return False
    return True


def journals(inbox: Path) -> list[dict[str, Any]]:
    """Every readable ``job.json`` of the inbox's work area (atomic writes: whole or absent)."""
    records = []
    for path in (inbox / WORK_DIR).glob("*/job.json"):
        try:
            records.append(json.loads(path.read_text("ascii")))
        except (OSError, ValueError):  # finished and removed while we looked
            continue
    return records


def job_dirs(inbox: Path) -> list[Path]:
    work = inbox / WORK_DIR
    return sorted(p for p in work.iterdir() if p.is_dir()) if work.is_dir() else []


def job_of(entry: RequestLogEntry) -> str | None:
    """The job id in a logged request's stored path (``<prefix>/<job id>/...``), if any."""
    parts = (entry.file_path or "").split("/")
    return parts[1] if len(parts) > 2 and parts[0] == UPLOAD_PREFIX else None


def disposed_inputs(root: Path) -> list[Path]:
    """Inputs in the archive or the quarantine (error files left out)."""
    quarantine = files_under(root / "quarantine")
    return files_under(root / "archive") + [p for p in quarantine
                                            if not p.name.endswith(".error.json")]


class InboxWriter:
    """Streams distinct valid images into an inbox from a thread, the way real senders do.

    Each file is made with a ``tests.hostile`` maker in a staging folder, hashed, then either
    written in place, renamed from a hidden name inside the inbox (ignored until renamed), or
    moved in from outside. Every fifth file goes to the ``batch/`` subfolder.
    """

    MODES = ("write", "rename_hidden", "move_in")

    def __init__(self, inbox: Path, staging: Path, count: int, seed: int) -> None:
        self.inbox, self.staging, self.count = inbox, staging, count
        self.hashes: dict[str, str] = {}  # relative path in the inbox -> sha256
        self.modes: Counter[str] = Counter()
        self.error: BaseException | None = None
        self._rng = random.Random(seed)
        self._pace = threading.Event()  # never set: its wait() paces the stream
        self._thread = threading.Thread(target=self._run, daemon=True, name="inbox-writer")

    def start(self) -> InboxWriter:
        self.staging.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def join(self, timeout_s: float = 30.0) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the writer did not finish"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            for index in range(self.count):
                self._write_one(index)
                self._pace.wait(self._rng.uniform(0.0, 0.05))  # sender pacing, not a wait
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def _write_one(self, index: int) -> None:
        maker, ext = self._rng.choice(MAKERS)
        name = f"img-{index:03d}.{ext}"
        relpath = f"batch/{name}" if index % 5 == 4 else name
        staged = maker(self.staging, name, (48 + index, 40))  # distinct sizes: distinct hashes
        self.hashes[relpath] = sha256_of(staged)
        target = self.inbox / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = self._rng.choice(self.MODES)
        self.modes[mode] += 1
        if mode == "write":
            target.write_bytes(staged.read_bytes())
            staged.unlink()
        elif mode == "rename_hidden":
            hidden = target.with_name(f".{name}.part")
            hidden.write_bytes(staged.read_bytes())
            staged.unlink()
            hidden.rename(target)
        else:
            staged.rename(target)


# -- the random kill -9 test --------------------------------------------------------------------

def check_after_kill(root: Path, sources: dict[str, str]) -> int:
    """Nothing half-written is visible; returns how many visible output sets are incomplete.

    Every visible output decodes fully and every archived input is intact. A set can be
    incomplete only when the kill fell between the renames of one publication.
    """
    outbox = root / "outbox"
    sets: Counter[str] = Counter()
    for path in visible_files(outbox):
        with Image.open(path) as image:
            image.load()
        sets[str(path.relative_to(outbox)).split(".")[0]] += 1
    intact = set(sources.values())
    assert all(sha256_of(p) in intact for p in files_under(root / "archive"))
    return sum(1 for count in sets.values() if count != len(VARIANT_SUFFIXES))


def wait_for_kill_moment(rng: random.Random, inbox: Path, emulator: FakeApiServer) -> str:
    """Wait for a random (seeded) moment; return what it was.

    Once some more API requests were logged, after a delay (measured with a deadline loop),
    or as soon as some job's journal shows a given state; at worst until a short deadline.
    """
    trigger = rng.choice(("requests", "delay", "state"))
    if trigger == "requests":
        target = len(emulator.requests()) + rng.randint(1, 25)
        poll_until(lambda: len(emulator.requests()) >= target, timeout_s=3.0)
    elif trigger == "delay":
        due = time.monotonic() + rng.uniform(0.2, 1.2)
        poll_until(lambda: time.monotonic() >= due, timeout_s=5.0)
    else:
        trigger = rng.choice(KILL_STATES)
        poll_until(lambda: trigger in {r["state"] for r in journals(inbox)}, timeout_s=1.5)
    return trigger


def kill_at_random_moments(config: Path, root: Path, emulator: FakeApiServer,
                           writer: InboxWriter, rng: random.Random, rounds: int) -> list[str]:
    """Start the daemon and SIGKILL it ``rounds`` times; describe each kill.

    The description names the moment, the request count, the journal states the dead daemon
    left behind and the incomplete output sets visible then.
    """
    kills: list[str] = []
    for _ in range(rounds):
        daemon = DaemonProcess(config).start()
        try:
            trigger = wait_for_kill_moment(rng, root / "inbox", emulator)
            assert daemon.proc is not None and daemon.proc.poll() is None, "daemon died by itself"
        finally:
            daemon.kill9()
        left = Counter(r["state"] for r in journals(root / "inbox"))
        partial = check_after_kill(root, dict(writer.hashes))
        kills.append(f"{trigger}@{len(emulator.requests())}:{dict(sorted(left.items()))}"
                     + (f" +{partial} incomplete set(s)" if partial else ""))
    return kills


def api_calls_per_job(entries: list[RequestLogEntry]) -> dict[str, Counter[str]]:
    """Successful upload/process calls per job id."""
    calls: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in entries:
        job = job_of(entry)
        if job is not None and entry.status == 200 and entry.endpoint in ("upload", "process"):
            calls[job][entry.endpoint] += 1
    return calls


def calls_after_full_download(entries: list[RequestLogEntry]) -> list[str]:
    """Upload/process requests made for a job after all its outputs were downloaded once."""
    downloaded: dict[str, set[str]] = defaultdict(set)
    done: set[str] = set()
    late = []
    for entry in entries:
        job = job_of(entry)
        if job is None:
            continue
        if entry.endpoint in ("upload", "process") and job in done:
            late.append(f"{entry.endpoint} for job {job}")
        if entry.endpoint == "download" and entry.status == 200 and entry.file_path:
            downloaded[job].add(entry.file_path)
            if len(downloaded[job]) == len(VARIANT_SUFFIXES):
                done.add(job)
    return late


def expected_outputs(relpaths: list[str]) -> list[str]:
    names: list[str] = []
    for relpath in relpaths:
        stem = relpath.rsplit(".", 1)[0]
        names.extend(f"{stem}.{suffix}" for suffix in VARIANT_SUFFIXES)
    return sorted(names)


def assert_outbox_complete_and_decodable(outbox: Path, relpaths: list[str]) -> None:
    assert [p for p in files_under(outbox) if p.name.endswith(".part")] == [], "temps left"
    visible = sorted(str(p.relative_to(outbox)) for p in visible_files(outbox))
    assert visible == expected_outputs(relpaths)  # one complete set per input, no -1 sets
    for path in visible_files(outbox):
        with Image.open(path) as image:
            image.load()  # raises on a truncated or partial file


def test_kill_9_at_random_moments_loses_nothing_and_publishes_every_set_once(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    emulator.update(latency_process_s=0.05, latency_download_s=0.02, latency_upload_s=0.01)
    config = write_config(tmp_path, emulator.base_url,
                          daemon={"stability_s": 0.1, "shutdown_timeout_s": 5})
    root = tmp_path / "studio"
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    rng = random.Random(SEED)
    started = time.monotonic()
    writer = InboxWriter(inbox, tmp_path / "staging", FILE_COUNT, SEED).start()

    kills = kill_at_random_moments(config, root, emulator, writer, rng, KILL_ROUNDS)
    writer.join()
    with DaemonProcess(config) as final:
        wait_for(lambda: len(disposed_inputs(root)) >= FILE_COUNT and not job_dirs(inbox)
                 and not visible_files(inbox), timeout_s=30, what="every input disposed")
        assert final.terminate(timeout_s=15) == 0
    elapsed_s = time.monotonic() - started

    assert len(set(writer.hashes.values())) == FILE_COUNT  # the inputs really are distinct
    placed = Counter(sha256_of(p) for p in disposed_inputs(root))
    assert placed == Counter(writer.hashes.values())  # each input in exactly one place
    assert files_under(root / "quarantine") == []  # valid images, no faults: none quarantined
    assert sorted(str(p.relative_to(root / "archive")) for p in files_under(root / "archive")) \
        == sorted(writer.hashes)
    assert visible_files(inbox) == [] and job_dirs(inbox) == []
    assert_outbox_complete_and_decodable(root / "outbox", sorted(writer.hashes))

    entries = emulator.requests()
    assert calls_after_full_download(entries) == []
    calls = api_calls_per_job(entries)
    assert len(calls) >= FILE_COUNT
    paid_twice = sorted(job for job, c in calls.items() if c["process"] > 1)
    uploaded_twice = sorted(job for job, c in calls.items() if c["upload"] > 1)
    print(f"\nkill -9: {KILL_ROUNDS} rounds: {kills}, "
          f"{len(entries)} requests, writer modes {dict(writer.modes)}, jobs processed "
          f"twice {len(paid_twice)}/{len(calls)}, uploaded twice (not charged) "
          f"{len(uploaded_twice)}/{len(calls)}, {elapsed_s:.1f}s")
    # A kill during a process call the server still completes is the one way to pay twice;
    # the restart looks for the outputs first, so only a call still running then pays again.
    assert len(paid_twice) <= 1, paid_twice


# -- a kill right after the downloads: the restart makes no API call at all ---------------------

def block_publishing(root: Path) -> Callable[[], None]:
    """A directory where the first output must go: publishing fails with a disk error."""
    blocker = root / "outbox" / "sub" / "shot.full.png"
    blocker.mkdir(parents=True)
    (blocker / "keep").write_bytes(b"x")
    return lambda: shutil.rmtree(blocker)


def block_archiving(root: Path) -> Callable[[], None]:
    """A file where the archive subfolder must go: disposal fails with a disk error."""
    blocker = root / "archive" / "sub"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"x")
    return blocker.unlink


@pytest.mark.parametrize(("state", "block"), [("downloaded", block_publishing),
                                              ("published", block_archiving)])
def test_a_job_killed_after_its_downloads_resumes_without_any_api_call(
    tmp_path: Path, emulator: FakeApiServer, state: str,
    block: Callable[[Path], Callable[[], None]],
) -> None:
    emulator.update(latency_process_s=0.05, latency_download_s=0.02)
    config = write_config(tmp_path, emulator.base_url, folder={"on_conflict": "overwrite"})
    root = tmp_path / "studio"
    inbox = root / "inbox"
    (inbox / "sub").mkdir(parents=True)
    unblock = block(root)
    source_hash = sha256_of(make_valid_jpeg(inbox / "sub", "shot.jpg"))

    with DaemonProcess(config) as first:
        wait_for(lambda: [r["state"] for r in journals(inbox)] == [state], timeout_s=10,
                 what=f"the job journaled as {state}")
        first.kill9()
    calls_before = len(emulator.requests())
    assert [e.endpoint for e in emulator.requests()] == ["upload", "process"] + ["download"] * 3
    unblock()

    with DaemonProcess(config) as second:
        wait_for(lambda: len(files_under(root / "archive")) == 1 and not job_dirs(inbox),
                 timeout_s=10, what="the resumed job archived")
        assert second.terminate() == 0
    assert emulator.requests()[calls_before:] == []  # nothing uploaded, processed or fetched
    assert "1 unfinished job(s) resumed" in second.log_text()
    assert [sha256_of(p) for p in files_under(root / "archive")] == [source_hash]
    assert_outbox_complete_and_decodable(root / "outbox", ["sub/shot.jpg"])
