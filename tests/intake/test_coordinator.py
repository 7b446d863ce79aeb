"""IntakeCoordinator end to end on real folders: events, scans, stability, in-flight set."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.observers.api import BaseObserver

from bgcut_watchd.config import FolderConfig, Variant
from bgcut_watchd.intake import IntakeCoordinator
from bgcut_watchd.intake.fstype import WatchMode
from bgcut_watchd.intake.watcher import default_observer_factory

from .conftest import WAIT_S, wait_for

STABILITY_S = 0.3


def _folder(root: Path, name: str = "studio", **overrides: object) -> FolderConfig:
    inbox = root / name / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    fields: dict[str, object] = {
        "name": name, "inbox": inbox, "outbox": root / name / "out",
        "quarantine": root / name / "q", "variants": (Variant("full"),), "watch": "inotify",
        "poll_interval_s": 0.1,
    }
    fields.update(overrides)
    return FolderConfig(**fields)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def coordinators() -> Iterator[list[IntakeCoordinator]]:
    made: list[IntakeCoordinator] = []
    yield made
    for coordinator in made:
        coordinator.stop_watching()


def _live(made: list[IntakeCoordinator], *folders: FolderConfig,
          factory: Callable[[WatchMode, float], BaseObserver] = default_observer_factory,
          ) -> IntakeCoordinator:
    coordinator = IntakeCoordinator(folders, STABILITY_S, observer_factory=factory)
    made.append(coordinator)
    coordinator.start_watching()
    return coordinator


def _collect(coordinator: IntakeCoordinator, until: Callable[[set[Path]], bool],
             timeout_s: float = WAIT_S) -> list[tuple[str, Path]]:
    got: list[tuple[str, Path]] = []

    def poll() -> bool:
        got.extend(coordinator.poll_due())
        return until({path for _, path in got})

    wait_for(poll, timeout_s)
    return got


def _notice_again(coordinator: IntakeCoordinator, paths: list[Path]) -> None:
    """Notice each of ``paths`` again: one handed out and not yet ``done`` is in flight and
    ignored (``waiting_counts`` does not count it); any other is tracked again."""
    for path in paths:
        coordinator.notice("studio", path)


def _settle_sentinel(coordinator: IntakeCoordinator, inbox: Path) -> list[tuple[str, Path]]:
    """Write a sentinel last and collect until it is handed out: events are in order, so
    anything written before it has been seen (and would be due) by then."""
    (inbox / "zz-sentinel.jpg").write_bytes(b"s")
    return _collect(coordinator, lambda got: inbox / "zz-sentinel.jpg" in got)


def test_startup_scan_takes_existing_files_not_ignored_ones(
    coordinators: list[IntakeCoordinator], tmp_path: Path,
) -> None:
    folder = _folder(tmp_path)
    inbox = folder.inbox
    for rel in ["a.jpg", "sub/c.png", ".x.jpg", "b.jpg.part", "@eaDir/t.jpg", "Thumbs.db"]:
        (inbox / rel).parent.mkdir(parents=True, exist_ok=True)
        (inbox / rel).write_bytes(b"data")
    coordinator = _live(coordinators, folder)
    assert coordinator.scan_all() == 2
    got = _settle_sentinel(coordinator, inbox)
    assert sorted(p.relative_to(inbox).as_posix() for _, p in got) == [
        "a.jpg", "sub/c.png", "zz-sentinel.jpg",
    ]
    _notice_again(coordinator, [p for _, p in got])
    assert coordinator.waiting_counts() == {"studio": 0}  # all three in flight: not noticed


def test_events_give_one_candidate_each(
    coordinators: list[IntakeCoordinator], tmp_path: Path,
) -> None:
    folder = _folder(tmp_path)
    inbox = folder.inbox
    coordinator = _live(coordinators, folder)
    (inbox / "closed.jpg").write_bytes(b"data")
    (inbox / "renamed.jpg.part").write_bytes(b"data")
    (inbox / "renamed.jpg.part").rename(inbox / "renamed.jpg")
    (tmp_path / "from-outside.jpg").write_bytes(b"data")
    (tmp_path / "from-outside.jpg").rename(inbox / "from-outside.jpg")
    (inbox / "newdir").mkdir()
    (inbox / "newdir" / "first.jpg").write_bytes(b"data")
    batch = tmp_path / "batch"
    (batch / "deeper").mkdir(parents=True)
    (batch / "1.jpg").write_bytes(b"1")
    (batch / "deeper" / "2.png").write_bytes(b"2")
    batch.rename(inbox / "batch")
    (inbox / "ignored.tmp").write_bytes(b"data")
    (inbox / ".hidden.jpg").write_bytes(b"data")
    expected = {inbox / rel for rel in ("batch/1.jpg", "batch/deeper/2.png", "closed.jpg",
                                        "from-outside.jpg", "newdir/first.jpg", "renamed.jpg")}
    # Each is handed out once its settling is over; one whose close event was not yet seen at
    # its last look is held open for one more short period, so wait for all of them, then a
    # sentinel: nothing may come twice or besides.
    got = _collect(coordinator, lambda seen: expected <= seen)
    got += _settle_sentinel(coordinator, inbox)
    names = [p.relative_to(inbox).as_posix() for _, p in got]
    assert sorted(names) == [
        "batch/1.jpg", "batch/deeper/2.png", "closed.jpg", "from-outside.jpg",
        "newdir/first.jpg", "renamed.jpg", "zz-sentinel.jpg",
    ]
    assert coordinator.waiting_counts() == {"studio": 0}


def test_a_chunked_write_gives_one_candidate_after_it_completes(
    coordinators: list[IntakeCoordinator], tmp_path: Path,
) -> None:
    folder = _folder(tmp_path)
    target = folder.inbox / "slow.jpg"
    coordinator = _live(coordinators, folder)
    finished_at: list[float] = []

    def write_in_chunks() -> None:
        with target.open("wb") as out:
            for _ in range(8):  # 8 pauses of 0.06 s: longer than STABILITY_S in total
                out.write(b"x" * 1000)
                out.flush()
                time.sleep(0.06)  # the pause under test, shorter than STABILITY_S
        finished_at.append(time.monotonic())

    writer = threading.Thread(target=write_in_chunks)
    writer.start()
    handed: list[tuple[float, int]] = []

    def poll() -> bool:
        for _, path in coordinator.poll_due():
            handed.append((time.monotonic(), path.stat().st_size))
        return bool(handed) and not writer.is_alive()

    assert wait_for(poll)
    writer.join()
    assert len(handed) == 1
    assert handed[0][1] == 8000
    assert handed[0][0] >= finished_at[0]


def test_in_flight_paths_are_not_handed_out_twice(
    coordinators: list[IntakeCoordinator], tmp_path: Path,
) -> None:
    folder = _folder(tmp_path)
    path = folder.inbox / "a.jpg"
    coordinator = _live(coordinators, folder)
    path.write_bytes(b"one")
    assert [p for _, p in _collect(coordinator, lambda got: path in got)] == [path]
    with path.open("ab") as out:  # events for an in-flight path are dropped
        out.write(b"more")
    assert [p for _, p in _settle_sentinel(coordinator, folder.inbox)] == [
        folder.inbox / "zz-sentinel.jpg"
    ]
    coordinator.done(path)
    path.write_bytes(b"replaced")
    assert [p for _, p in _collect(coordinator, lambda got: path in got)] == [path]


def test_deleted_files_are_forgotten(
    coordinators: list[IntakeCoordinator], tmp_path: Path,
) -> None:
    folder = _folder(tmp_path)
    coordinator = IntakeCoordinator([folder], 60.0)
    coordinators.append(coordinator)
    coordinator.start_watching()
    (folder.inbox / "a.jpg").write_bytes(b"data")
    assert wait_for(lambda: coordinator.waiting_counts() == {"studio": 1})
    (folder.inbox / "a.jpg").unlink()
    assert wait_for(lambda: coordinator.waiting_counts() == {"studio": 0})
    assert coordinator.next_deadline() is None


def test_a_dead_watcher_is_restarted_and_its_folder_rescanned(
    coordinators: list[IntakeCoordinator], tmp_path: Path,
) -> None:
    built: list[BaseObserver] = []

    def factory(mode: WatchMode, poll_interval_s: float) -> BaseObserver:
        built.append(default_observer_factory(mode, poll_interval_s))
        return built[-1]

    folder = _folder(tmp_path)
    coordinator = _live(coordinators, folder, factory=factory)
    assert coordinator.check_watchers() == []
    built[0].stop()
    built[0].join(5)
    assert coordinator.watch_modes() == {"studio": "stopped"}
    (folder.inbox / "while-dead.jpg").write_bytes(b"data")
    assert coordinator.check_watchers() == ["studio"]
    assert coordinator.watch_modes() == {"studio": "inotify"}
    assert coordinator.waiting_counts() == {"studio": 1}


# --- deterministic parts, with a fake clock and no watchers ----------------------------------


def test_a_file_changed_without_an_event_waits_again(tmp_path: Path) -> None:
    clock = FakeClock()
    folder = _folder(tmp_path)
    path = folder.inbox / "a.jpg"
    path.write_bytes(b"one")
    coordinator = IntakeCoordinator([folder], 1.0, clock)
    coordinator.notice("studio", path)
    assert coordinator.next_deadline() == 1.0
    os.utime(path, ns=(1, 1))  # mtime changed behind the tracker's back (a missed poll)
    clock.now = 1.0
    assert coordinator.poll_due(1.0) == []
    assert coordinator.waiting_counts() == {"studio": 1}
    assert coordinator.poll_due(2.0) == [("studio", path)]


def test_a_file_gone_before_it_settled_is_dropped(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    path = folder.inbox / "a.jpg"
    path.write_bytes(b"one")
    coordinator = IntakeCoordinator([folder], 1.0, FakeClock())
    coordinator.notice("studio", path)
    path.unlink()
    assert coordinator.poll_due(5.0) == []
    assert coordinator.waiting_counts() == {"studio": 0}
    path.write_bytes(b"two")
    _notice_again(coordinator, [path])
    assert coordinator.waiting_counts() == {"studio": 1}  # not left in flight: noticed again


def test_oldest_first_across_folders_and_max_items(tmp_path: Path) -> None:
    clock = FakeClock()
    one, two = _folder(tmp_path, "one"), _folder(tmp_path, "two")
    a, b, c = one.inbox / "a.jpg", two.inbox / "b.jpg", one.inbox / "c.jpg"
    coordinator = IntakeCoordinator([one, two], 1.0, clock)
    for folder_name, path in [("two", b), ("one", a), ("one", c)]:
        path.write_bytes(b"x")
        coordinator.notice(folder_name, path)
        clock.now += 0.1
    assert coordinator.poll_due(10.0, max_items=1) == [("two", b)]
    assert coordinator.poll_due(10.0, max_items=5) == [("one", a), ("one", c)]


def test_foreign_unknown_and_flat_paths_are_dropped(tmp_path: Path) -> None:
    flat = _folder(tmp_path, recursive=False)
    (flat.inbox / "sub").mkdir()
    (flat.inbox / "sub" / "x.jpg").write_bytes(b"x")
    (tmp_path / "outside.jpg").write_bytes(b"x")
    coordinator = IntakeCoordinator([flat], 0.0, FakeClock())
    coordinator.notice("studio", flat.inbox / "sub" / "x.jpg")
    coordinator.notice("studio", tmp_path / "outside.jpg")
    coordinator.notice("nope", tmp_path / "outside.jpg")
    coordinator.notice_dir("studio", flat.inbox / "sub")
    coordinator.notice("studio", flat.inbox / "missing.jpg")
    assert coordinator.next_deadline() is None
    assert coordinator.poll_due(1.0) == []


def test_noticed_folders_are_scanned_by_poll_due(tmp_path: Path) -> None:
    clock = FakeClock()
    folder = _folder(tmp_path)
    (folder.inbox / "d" / "e").mkdir(parents=True)
    (folder.inbox / "d" / "e" / "x.jpg").write_bytes(b"x")
    coordinator = IntakeCoordinator([folder], 1.0, clock)
    coordinator.notice("studio", folder.inbox / "d")  # a folder path is queued, not tracked
    coordinator.notice_dir("studio", folder.inbox / ".bgcut-work")  # ignored
    assert coordinator.next_deadline() == 0.0
    assert coordinator.poll_due(0.0) == []
    assert coordinator.waiting_counts() == {"studio": 1}
    assert coordinator.poll_due(1.0) == [("studio", folder.inbox / "d" / "e" / "x.jpg")]


def test_fifo_and_symlink_named_like_images_are_candidates(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    os.mkfifo(folder.inbox / "pipe.jpg")
    os.mkfifo(folder.inbox / "pipe")
    (folder.inbox / "link.png").symlink_to("/etc/passwd")
    coordinator = IntakeCoordinator([folder], 0.0, FakeClock())
    assert coordinator.scan_all() == 2
    assert sorted(p.name for _, p in coordinator.poll_due(0.0)) == ["link.png", "pipe.jpg"]


def test_a_new_or_changed_file_wakes_the_service_loop_once(tmp_path: Path) -> None:
    """The service sleeps up to 1 s when idle: a new file must wake it to plan its deadline
    (bench/latency.py measured p95 1.02 s against 0.8 s without this)."""
    folder = _folder(tmp_path)
    path = folder.inbox / "a.jpg"
    path.write_bytes(b"one")
    wakeups: list[None] = []
    coordinator = IntakeCoordinator([folder], 1.0, FakeClock(),
                                    on_new=lambda: wakeups.append(None))
    coordinator.notice("studio", path)
    coordinator.notice("studio", path)  # the same event again: nothing new to plan
    assert len(wakeups) == 1
    path.write_bytes(b"one more")
    coordinator.notice("studio", path)
    assert len(wakeups) == 2


# --- network folders: the client's caches may hide writes (finding 15) -----------------------


def _mountinfo_with(tmp_path: Path, mount_point: Path, fstype: str) -> Path:
    """A mountinfo where ``mount_point`` is a mount of ``fstype`` over an ext4 root."""
    path = tmp_path / "mountinfo"
    path.write_bytes(b"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                     + f"40 22 0:50 / {mount_point} rw - {fstype} h:/x rw\n".encode())
    return path


def test_a_network_folder_waits_stability_plus_network_settle(tmp_path: Path) -> None:
    clock = FakeClock()
    folder = _folder(tmp_path, network_settle_s=30.0)
    mountinfo = _mountinfo_with(tmp_path, folder.inbox, "fuse.sshfs")
    path = folder.inbox / "a.jpg"
    path.write_bytes(b"one")
    coordinator = IntakeCoordinator([folder], 2.0, clock, mountinfo_path=mountinfo)
    coordinator.notice("studio", path)
    assert coordinator.next_deadline() == 32.0
    assert coordinator.poll_due(31.9) == []
    assert coordinator.poll_due(32.0) == [("studio", path)]


def test_a_local_folder_waits_stability_alone(tmp_path: Path) -> None:
    folder = _folder(tmp_path, network_settle_s=30.0)
    mountinfo = _mountinfo_with(tmp_path, tmp_path / "elsewhere", "nfs4")
    path = folder.inbox / "a.jpg"
    path.write_bytes(b"one")
    coordinator = IntakeCoordinator([folder], 2.0, FakeClock(), mountinfo_path=mountinfo)
    coordinator.notice("studio", path)
    assert coordinator.next_deadline() == 2.0


def test_network_settle_zero_treats_a_share_like_a_local_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path, network_settle_s=0.0)
    mountinfo = _mountinfo_with(tmp_path, folder.inbox, "nfs4")
    path = folder.inbox / "a.jpg"
    path.write_bytes(b"one")
    coordinator = IntakeCoordinator([folder], 2.0, FakeClock(), mountinfo_path=mountinfo)
    coordinator.notice("studio", path)
    assert coordinator.next_deadline() == 2.0


def test_a_settled_file_still_open_is_held_until_closed(tmp_path: Path) -> None:
    clock = FakeClock()
    folder = _folder(tmp_path)
    path = folder.inbox / "scan.jpg"
    path.write_bytes(b"half")
    coordinator = IntakeCoordinator([folder], 1.0, clock)
    coordinator.notice_open("studio", path)  # its writer opened it and paused
    coordinator.notice("studio", path)
    clock.now = 5.0
    assert coordinator.poll_due(5.0) == []  # quiet for long, but open
    assert coordinator.waiting_counts() == {"studio": 1}  # handed out below: not in flight
    coordinator.notice_close("studio", path)
    assert coordinator.poll_due(5.5) == []  # held again for a fresh settling period
    assert coordinator.poll_due(6.0) == [("studio", path)]


def test_a_settled_file_open_for_writing_by_a_process_is_held(tmp_path: Path) -> None:
    clock = FakeClock()
    folder = _folder(tmp_path)
    path = folder.inbox / "scan.jpg"
    path.write_bytes(b"half")
    coordinator = IntakeCoordinator([folder], 1.0, clock)
    coordinator.notice("studio", path)  # no open event seen: only /proc tells
    with path.open("ab"):
        clock.now = 2.0
        assert coordinator.poll_due(2.0) == []
    clock.now = 3.0
    assert coordinator.poll_due(3.0) == [("studio", path)]


def test_the_daemons_own_look_at_a_settled_file_is_not_a_writer_holding_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI finding: the RAW sniff opens each settled file; when the watcher delivered that
    open before its close (a busy machine), the file read as held open by a writer and was
    put back to settle again, once more on every look."""
    from bgcut_watchd.intake import rawfiles

    clock = FakeClock()
    folder = _folder(tmp_path)
    path = folder.inbox / "a.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"0" * 64)
    coordinator = IntakeCoordinator([folder], 1.0, clock)
    real_sniff = rawfiles.sniff_camera_raw

    def sniff_seen_at_once(sniffed: Path) -> str | None:
        coordinator.notice_open("studio", sniffed)  # the watcher was quick: open seen, close not
        return real_sniff(sniffed)

    monkeypatch.setattr(rawfiles, "sniff_camera_raw", sniff_seen_at_once)
    coordinator.notice("studio", path)
    clock.now = 2.0
    assert coordinator.poll_due(2.0) == [("studio", path)]
    _notice_again(coordinator, [path])
    assert coordinator.waiting_counts() == {"studio": 0}  # in flight: not noticed again


def test_inotify_holds_a_file_its_writer_keeps_open(
        tmp_path: Path, coordinators: list[IntakeCoordinator]) -> None:
    folder = _folder(tmp_path)
    coordinator = _live(coordinators, folder)
    path = folder.inbox / "held.jpg"
    with path.open("wb") as stream:
        stream.write(b"first half")
        stream.flush()
        time.sleep(3 * STABILITY_S)  # the scenario: a writer pausing with the file open
        assert coordinator.poll_due() == []
    assert _collect(coordinator, lambda got: path in got) == [("studio", path)]


def test_a_scan_goes_on_in_slices_and_notices_every_file_once(tmp_path: Path) -> None:
    """Issue 14: a 100,000-file backlog is handed out while the scan goes on, a slice per turn
    of the service loop."""
    from bgcut_watchd.intake.coordinator import SCAN_CLOCK_EVERY

    class Ticking(FakeClock):
        def __call__(self) -> float:
            self.now += 1.0  # every look at the clock: the slice's time is up
            return self.now

    folder = _folder(tmp_path)
    files = 3 * SCAN_CLOCK_EVERY + 5
    for n in range(files):
        (folder.inbox / f"{n:04d}.jpg").write_bytes(b"x")
    coordinator = IntakeCoordinator([folder], 1.0, Ticking())
    assert not coordinator.scanning and coordinator.scan_some(0.5) is None
    coordinator.start_scan()
    slices = 0
    while (noticed := coordinator.scan_some(0.5)) is None:
        slices += 1
        assert coordinator.scanning
        assert coordinator.waiting_counts() == {"studio": slices * SCAN_CLOCK_EVERY}
    assert noticed == files and slices == 3 and not coordinator.scanning
    assert coordinator.waiting_counts() == {"studio": files}
