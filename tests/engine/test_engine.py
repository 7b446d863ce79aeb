"""The engine used directly (no daemon, no watchers) against the real emulator over loopback:
a settled file handed to :meth:`Engine.submit` ends published and archived or quarantined, a
reload applies to the jobs that start after it, a warm stop waits for the running jobs within
its timeout, and a run that a bug breaks lets go of its job for the next recovery pass."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from bgcut_watchd.config import Config
from bgcut_watchd.control.tickets import JobTicket, Outcome, OutcomeKind
from bgcut_watchd.engine import Engine
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_text_named_jpg, make_valid_jpeg
from tests.support import (
    API_KEY,
    all_requests,
    api_calls_per_job,
    assert_outbox_complete_and_decodable,
    drop_images,
    files_under,
    job_dirs,
    journals,
    load_checked,
    sha256_of,
    visible_files,
    wait_for,
    write_config,
)

FOLDER = "studio"


class EngineRun:
    """A started engine with what its callbacks heard; drained and closed by the fixture."""

    def __init__(self, config: Config,
                 on_path_released: Callable[[str, Path], None] | None = None) -> None:
        self.outcomes: list[tuple[JobTicket, Outcome]] = []
        self.released: list[tuple[str, Path]] = []
        self.ticket_ended = threading.Event()  # what a draining stop wakes on
        self._on_path_released = on_path_released
        self.engine = Engine(config, API_KEY, cancel=threading.Event(),
                             on_ticket_done=self._ticket_done,
                             on_path_released=self._path_released)
        self.engine.start()

    def _ticket_done(self, ticket: JobTicket, outcome: Outcome) -> None:
        self.outcomes.append((ticket, outcome))
        self.ticket_ended.set()

    def _path_released(self, folder: str, path: Path) -> None:
        self.released.append((folder, path))
        if self._on_path_released is not None:
            self._on_path_released(folder, path)

    def wait_for_outcome(self, kind: OutcomeKind, count: int = 1,
                         timeout_s: float = 10.0) -> None:
        wait_for(lambda: [o.kind for _, o in list(self.outcomes)].count(kind) >= count,
                 timeout_s, what=f"{count} run(s) ending {kind.name}",
                 explain=lambda: f"outcomes so far: {self.outcomes}")

    def drain(self, timeout_s: float, give_up: Callable[[], bool] = lambda: False) -> bool:
        return self.engine.drain(timeout_s, self.ticket_ended, give_up, time.monotonic)

    def stop(self) -> None:
        self.drain(10.0)
        wait_for(lambda: self.engine.scheduler.stats().busy == 0, what="every run ended")
        self.engine.close()


class StartEngine(Protocol):
    def __call__(self, config: Config,
                 on_path_released: Callable[[str, Path], None] | None = None) -> EngineRun: ...


@pytest.fixture
def start_engine() -> Iterator[StartEngine]:
    """Start an engine on a config; each one is drained and closed after the test."""
    runs: list[EngineRun] = []

    def start(config: Config,
              on_path_released: Callable[[str, Path], None] | None = None) -> EngineRun:
        runs.append(EngineRun(config, on_path_released))
        return runs[-1]

    yield start
    for run in runs:
        run.stop()


def config_of(tmp_path: Path, emulator: FakeApiServer, *, workers: int = 4,
              folders: tuple[str, ...] = (FOLDER,),
              variant_names: tuple[str, ...] = ("full", "thumb", "white")) -> Config:
    """The checked configuration of ``write_config`` (its folders created)."""
    return load_checked(write_config(
        tmp_path, emulator.base_url, daemon={"stability_s": 0.1, "workers": workers},
        folders=folders, variant_names=variant_names))


def endpoint_counts(emulator: FakeApiServer) -> Counter[tuple[str, int | None]]:
    return Counter((e.endpoint, e.status) for e in all_requests(emulator))


def in_process_call(emulator: FakeApiServer) -> Callable[[], bool]:
    """True once one upload was answered and the process call after it is being served (a
    job's downloads only start once its process call was answered)."""
    return lambda: ([e.endpoint for e in emulator.requests()] == ["upload"]
                    and emulator.requests_in_progress() == 1)


def test_a_settled_file_is_published_archived_and_paid_once(
    tmp_path: Path, emulator: FakeApiServer, start_engine: StartEngine,
) -> None:
    run = start_engine(config_of(tmp_path, emulator))
    root = tmp_path / FOLDER
    sources = drop_images(root / "inbox", 1)
    source = root / "inbox" / "pic-0.jpg"

    assert run.engine.submit(FOLDER, source)
    run.wait_for_outcome(OutcomeKind.DONE)

    assert [o.kind for _, o in run.outcomes] == [OutcomeKind.DONE]
    assert run.released == [(FOLDER, source)]  # once, right after the claim
    assert_outbox_complete_and_decodable(root / "outbox", ["pic-0.jpg"])
    archived = files_under(root / "archive")
    assert [(p.name, sha256_of(p)) for p in archived] == list(sources.items())
    assert visible_files(root / "inbox") == [] and job_dirs(root / "inbox") == []
    assert endpoint_counts(emulator) == {("upload", 200): 1, ("process", 200): 1,
                                         ("download", 200): 3}
    (job_id,) = api_calls_per_job(emulator.requests())
    end = run.engine.ledger.job_end(job_id)
    assert end is not None and end.outcome == "done"
    assert sorted(Path(p).name for p in end.outputs) == sorted(
        p.name for p in visible_files(root / "outbox"))


def test_a_file_that_is_not_an_image_is_quarantined_with_its_reason_and_no_api_call(
    tmp_path: Path, emulator: FakeApiServer, start_engine: StartEngine,
) -> None:
    run = start_engine(config_of(tmp_path, emulator))
    root = tmp_path / FOLDER
    bad = make_text_named_jpg(root / "inbox")
    content = sha256_of(bad)

    assert run.engine.submit(FOLDER, bad)
    run.wait_for_outcome(OutcomeKind.QUARANTINED)  # maybe after one more settling period

    quarantined = root / "quarantine" / bad.name
    assert sha256_of(quarantined) == content
    error = json.loads((root / "quarantine" / f"{bad.name}.error.json").read_text("utf-8"))
    assert (error["reason"], error["stage"]) == ("invalid_image", "validate")
    assert all_requests(emulator) == []
    assert files_under(root / "outbox") == [] and files_under(root / "archive") == []
    assert job_dirs(root / "inbox") == [] and not bad.exists()


def test_a_reload_applies_to_jobs_claimed_after_it_not_to_one_claimed_before(
    tmp_path: Path, emulator: FakeApiServer, start_engine: StartEngine,
) -> None:
    run = start_engine(config_of(tmp_path, emulator))
    root = tmp_path / FOLDER
    drop_images(root / "inbox", 2)
    before = run.engine.claim(FOLDER, root / "inbox" / "pic-0.jpg")
    assert before is not None

    fewer = config_of(tmp_path, emulator, variant_names=("full", "thumb"))
    run.engine.apply_config(fewer)
    assert run.engine.config is fewer
    assert run.engine.submit_claimed(before)
    assert run.engine.submit(FOLDER, root / "inbox" / "pic-1.jpg")
    run.wait_for_outcome(OutcomeKind.DONE, count=2)

    names = sorted(p.name for p in visible_files(root / "outbox"))
    assert names == ["pic-0.full.png", "pic-0.thumb.webp", "pic-0.white.jpg",
                     "pic-1.full.png", "pic-1.thumb.webp"]
    assert endpoint_counts(emulator)[("process", 200)] == 2


def test_a_file_of_a_folder_a_reload_removed_is_left_in_its_inbox(
    tmp_path: Path, emulator: FakeApiServer, start_engine: StartEngine,
) -> None:
    run = start_engine(config_of(tmp_path, emulator, folders=(FOLDER, "shop")))
    run.engine.apply_config(config_of(tmp_path, emulator, folders=(FOLDER,)))
    source = make_valid_jpeg(tmp_path / "shop" / "inbox", "late.jpg")

    assert run.engine.submit("shop", source)
    run.wait_for_outcome(OutcomeKind.SKIPPED)

    assert source.is_file() and job_dirs(tmp_path / "shop" / "inbox") == []
    assert run.released == [("shop", source)]  # the intake may offer the path again
    assert all_requests(emulator) == []


def test_drain_lets_the_running_job_finish_and_starts_no_api_work_for_the_waiting_one(
    tmp_path: Path, emulator: FakeApiServer, start_engine: StartEngine,
) -> None:
    run = start_engine(config_of(tmp_path, emulator, workers=1))
    root = tmp_path / FOLDER
    inbox = root / "inbox"
    drop_images(inbox, 2)
    emulator.update(latency_process_s=0.5)
    assert run.engine.submit(FOLDER, inbox / "pic-0.jpg")
    wait_for(in_process_call(emulator), what="the first job's process call under way")
    assert run.engine.submit(FOLDER, inbox / "pic-1.jpg")  # one API slot: it waits for it
    wait_for(lambda: len(job_dirs(inbox)) == 2, what="the second file claimed")

    started = time.monotonic()
    assert run.drain(timeout_s=5.0) is True
    assert time.monotonic() - started < 4.0

    assert [p.name for p in files_under(root / "archive")] == ["pic-0.jpg"]
    assert_outbox_complete_and_decodable(root / "outbox", ["pic-0.jpg"])
    assert [r["original_relpath"] for r in journals(inbox)] == ["pic-1.jpg"]  # resumable
    assert endpoint_counts(emulator)[("upload", 200)] == 1  # nothing sent for the second
    make_valid_jpeg(inbox, "late.jpg")
    assert run.engine.submit(FOLDER, inbox / "late.jpg") is False  # a drained engine takes none


@pytest.mark.parametrize(("timeout_s", "give_up"), [(0.3, False), (30.0, True)],
                         ids=["timeout", "second-signal"])
def test_drain_stops_waiting_at_its_timeout_or_when_told_to_give_up(
    tmp_path: Path, emulator: FakeApiServer, start_engine: StartEngine,
    timeout_s: float, give_up: bool,
) -> None:
    run = start_engine(config_of(tmp_path, emulator, workers=1))
    root = tmp_path / FOLDER
    drop_images(root / "inbox", 1)
    emulator.update(latency_process_s=2.0)
    assert run.engine.submit(FOLDER, root / "inbox" / "pic-0.jpg")
    wait_for(in_process_call(emulator), what="the process call under way")

    started = time.monotonic()
    finished = run.drain(timeout_s, give_up=lambda: give_up)
    waited_s = time.monotonic() - started

    assert finished is False
    assert (0.0 if give_up else timeout_s) <= waited_s < 1.5  # well before the call's answer
    assert run.engine.cancel.is_set()  # what still waits at a gate gives up now
    wait_for(lambda: run.engine.scheduler.stats().busy == 0, what="the cut-off run ended")
    assert [o.kind for _, o in run.outcomes] == [OutcomeKind.PAUSED]  # handed back, not failed
    assert files_under(root / "archive") == [] and visible_files(root / "outbox") == []
    assert [r["original_relpath"] for r in journals(root / "inbox")] == ["pic-0.jpg"]


def test_a_job_whose_run_a_bug_broke_is_let_go_for_the_next_recovery_pass(
    tmp_path: Path, emulator: FakeApiServer, start_engine: StartEngine,
) -> None:
    failures: list[Path] = []

    def buggy_callback(folder: str, path: Path) -> None:  # a bug of the engine's caller
        if not failures:
            failures.append(path)
            raise RuntimeError("a bug outside the failure policy's reach")

    run = start_engine(config_of(tmp_path, emulator), on_path_released=buggy_callback)
    root = tmp_path / FOLDER
    drop_images(root / "inbox", 1)

    assert run.engine.submit(FOLDER, root / "inbox" / "pic-0.jpg")
    run.wait_for_outcome(OutcomeKind.SKIPPED)
    assert failures == [root / "inbox" / "pic-0.jpg"]
    assert [r["original_relpath"] for r in journals(root / "inbox")] == ["pic-0.jpg"]
    assert emulator.requests() == []

    # Held, the recovery would leave it alone; let go, the next pass adopts it.
    assert run.engine.recover(adopt=True) == 1
    run.wait_for_outcome(OutcomeKind.DONE)
    assert [p.name for p in files_under(root / "archive")] == ["pic-0.jpg"]
    assert_outbox_complete_and_decodable(root / "outbox", ["pic-0.jpg"])
    assert [dict(c) for c in api_calls_per_job(all_requests(emulator)).values()] == [
        {"upload": 1, "process": 1}]
