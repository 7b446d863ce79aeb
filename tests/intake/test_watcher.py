"""FolderWatcher with real folders and real watchdog observers (inotify and polling)."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.observers.api import BaseObserver

from bgcut_watchd.intake.fstype import WatchMode
from bgcut_watchd.intake.watcher import FolderWatcher, default_observer_factory

from .conftest import Recorder, wait_for


class RecordingFactory:
    """The real factory, remembering what it built, optionally failing for inotify."""

    def __init__(self, inotify_error: OSError | None = None) -> None:
        self.inotify_error = inotify_error
        self.built: list[tuple[WatchMode, BaseObserver]] = []

    def __call__(self, mode: WatchMode, poll_interval_s: float) -> BaseObserver:
        if mode == "inotify" and self.inotify_error is not None:
            raise self.inotify_error
        observer = default_observer_factory(mode, poll_interval_s)
        self.built.append((mode, observer))
        return observer


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def watchers() -> Iterator[list[FolderWatcher]]:
    started: list[FolderWatcher] = []
    yield started
    for watcher in started:
        watcher.stop()


def _watch(
    watchers: list[FolderWatcher], inbox: Path, on_path: Recorder, *,
    mode: WatchMode = "inotify", recursive: bool = True, on_dir: Recorder | None = None,
    factory: RecordingFactory | None = None,
) -> FolderWatcher:
    watcher = FolderWatcher(
        "studio", inbox, recursive, mode, 0.1, on_path, on_dir=on_dir,
        observer_factory=factory or default_observer_factory,
    )
    watchers.append(watcher)
    watcher.start()
    return watcher


def test_inotify_notices_a_closed_write(watchers: list[FolderWatcher], inbox: Path,
                                        recorder: Recorder) -> None:
    watcher = _watch(watchers, inbox, recorder)
    assert watcher.is_alive() and watcher.mode == "inotify"
    (inbox / "a.jpg").write_bytes(b"data")
    assert wait_for(lambda: inbox / "a.jpg" in recorder.paths())
    assert {name for name, _ in recorder.calls()} == {"studio"}


def test_inotify_notices_renames_into_place(watchers: list[FolderWatcher], inbox: Path,
                                            recorder: Recorder, tmp_path: Path) -> None:
    _watch(watchers, inbox, recorder)
    (inbox / "a.jpg.part").write_bytes(b"data")
    (inbox / "a.jpg.part").rename(inbox / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"data")
    (tmp_path / "b.jpg").rename(inbox / "b.jpg")  # moved in from outside the watch
    assert wait_for(lambda: {inbox / "a.jpg", inbox / "b.jpg"} <= recorder.paths())


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_a_symlinked_inbox_is_watched_and_reported_under_its_name(
    watchers: list[FolderWatcher], tmp_path: Path, recorder: Recorder, mode: WatchMode,
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    _watch(watchers, link, recorder, mode=mode)
    (real / "a.jpg").write_bytes(b"data")
    assert wait_for(lambda: link / "a.jpg" in recorder.paths())
    assert real / "a.jpg" not in recorder.paths()


def test_new_and_moved_in_folders_go_to_on_dir(watchers: list[FolderWatcher], inbox: Path,
                                               recorder: Recorder, tmp_path: Path) -> None:
    dirs = Recorder()
    _watch(watchers, inbox, recorder, on_dir=dirs)
    (inbox / "new").mkdir()
    (inbox / "new" / "a.jpg").write_bytes(b"data")
    batch = tmp_path / "batch"
    (batch / "nested").mkdir(parents=True)
    (batch / "nested" / "b.jpg").write_bytes(b"data")
    batch.rename(inbox / "batch")
    assert wait_for(lambda: {inbox / "new", inbox / "batch"} <= dirs.paths())
    assert not {inbox / "new", inbox / "batch"} & recorder.paths()


def test_flat_watch_ignores_subfolders(watchers: list[FolderWatcher], inbox: Path,
                                       recorder: Recorder) -> None:
    dirs = Recorder()
    _watch(watchers, inbox, recorder, recursive=False, on_dir=dirs)
    (inbox / "sub").mkdir()
    (inbox / "sub" / "x.jpg").write_bytes(b"data")
    (inbox / "top.jpg").write_bytes(b"data")
    assert wait_for(lambda: inbox / "top.jpg" in recorder.paths())
    assert inbox / "sub" / "x.jpg" not in recorder.paths()
    assert dirs.calls() == []


def test_polling_notices_a_new_file(watchers: list[FolderWatcher], inbox: Path,
                                    recorder: Recorder) -> None:
    watcher = _watch(watchers, inbox, recorder, mode="polling")
    assert watcher.mode == "polling" and watcher.is_alive()
    (inbox / "a.jpg").write_bytes(b"data")
    assert wait_for(lambda: inbox / "a.jpg" in recorder.paths())


def test_polling_does_not_follow_symlinked_folders(watchers: list[FolderWatcher], inbox: Path,
                                                   recorder: Recorder, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (inbox / "link").symlink_to(elsewhere, target_is_directory=True)
    _watch(watchers, inbox, recorder, mode="polling")
    (elsewhere / "new.jpg").write_bytes(b"data")
    (inbox / "sentinel.jpg").write_bytes(b"data")
    assert wait_for(lambda: inbox / "sentinel.jpg" in recorder.paths())
    assert inbox / "link" / "new.jpg" not in recorder.paths()


@pytest.mark.parametrize(
    ("code", "sysctl"),
    [
        (errno.ENOSPC, "fs.inotify.max_user_watches"),
        (errno.EMFILE, "fs.inotify.max_user_instances"),
    ],
)
def test_inotify_limits_fall_back_to_polling_with_one_warning(
    watchers: list[FolderWatcher], inbox: Path, recorder: Recorder,
    caplog: pytest.LogCaptureFixture, code: int, sysctl: str,
) -> None:
    factory = RecordingFactory(OSError(code, os.strerror(code)))
    with caplog.at_level(logging.WARNING, logger="bgcut_watchd.intake"):
        watcher = _watch(watchers, inbox, recorder, factory=factory)
        watcher.stop()
        watcher.start()
    assert watcher.mode == "polling" and watcher.is_alive()
    assert [mode for mode, _ in factory.built] == ["polling", "polling"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and sysctl in warnings[0]
    (inbox / "a.jpg").write_bytes(b"data")
    assert wait_for(lambda: inbox / "a.jpg" in recorder.paths())


def test_other_inotify_errors_are_not_hidden(inbox: Path, recorder: Recorder) -> None:
    factory = RecordingFactory(PermissionError(errno.EACCES, "denied"))
    watcher = FolderWatcher("studio", inbox, True, "inotify", 0.1, recorder,
                            observer_factory=factory)
    with pytest.raises(PermissionError):
        watcher.start()
    assert not watcher.is_alive() and watcher.mode == "inotify"


def test_ensure_alive_restarts_a_dead_observer(
    watchers: list[FolderWatcher], inbox: Path, recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = RecordingFactory()
    watcher = _watch(watchers, inbox, recorder, factory=factory)
    assert watcher.ensure_alive() is True and len(factory.built) == 1
    first = factory.built[0][1]
    first.stop()  # what a crashed watchdog thread looks like from outside
    first.join(5)
    assert not watcher.is_alive()
    with caplog.at_level(logging.WARNING, logger="bgcut_watchd.intake"):
        assert watcher.ensure_alive() is True
    assert watcher.is_alive() and len(factory.built) == 2
    assert any("restarting" in r.getMessage() for r in caplog.records)
    (inbox / "after.jpg").write_bytes(b"data")
    assert wait_for(lambda: inbox / "after.jpg" in recorder.paths())


def test_missing_inbox_is_retried_quietly_until_it_exists(
    inbox: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture,
    watchers: list[FolderWatcher],
) -> None:
    missing = inbox / "later"
    watcher = FolderWatcher("studio", missing, True, "inotify", 0.1, recorder)
    watchers.append(watcher)
    with pytest.raises(FileNotFoundError):
        watcher.start()
    with caplog.at_level(logging.WARNING, logger="bgcut_watchd.intake"):
        assert watcher.ensure_alive() is False
        assert watcher.ensure_alive() is False
    assert len([r for r in caplog.records if "cannot watch" in r.getMessage()]) == 1
    missing.mkdir()
    assert watcher.ensure_alive() is True
    (missing / "a.jpg").write_bytes(b"data")
    assert wait_for(lambda: missing / "a.jpg" in recorder.paths())


def test_a_failing_callback_does_not_kill_the_watcher(
    watchers: list[FolderWatcher], inbox: Path, recorder: Recorder,
) -> None:
    def explode_then_record(folder_name: str, path: Path) -> None:
        if path.name == "bad.jpg":
            raise RuntimeError("callback bug")
        recorder(folder_name, path)

    watcher = FolderWatcher("studio", inbox, True, "inotify", 0.1, explode_then_record)
    watchers.append(watcher)
    watcher.start()
    (inbox / "bad.jpg").write_bytes(b"data")
    (inbox / "good.jpg").write_bytes(b"data")
    assert wait_for(lambda: inbox / "good.jpg" in recorder.paths())
    assert watcher.is_alive()


def test_stop_stops(watchers: list[FolderWatcher], inbox: Path, recorder: Recorder) -> None:
    watcher = _watch(watchers, inbox, recorder)
    watcher.stop()
    assert not watcher.is_alive()
    assert watcher.ensure_alive() is False  # a deliberate stop is not a crash
    assert not watcher.is_alive()


def test_inotify_reports_opens_and_closes_of_readers_and_writers(
        watchers: list[FolderWatcher], inbox: Path, recorder: Recorder) -> None:
    opened, closed = Recorder(), Recorder()
    watcher = FolderWatcher("studio", inbox, True, "inotify", 0.1, recorder, on_open=opened,
                            on_close=closed)
    watchers.append(watcher)
    watcher.start()
    with (inbox / "w.jpg").open("wb") as stream:
        stream.write(b"half")
        stream.flush()
        assert wait_for(lambda: inbox / "w.jpg" in opened.paths())
        assert inbox / "w.jpg" not in closed.paths()  # still held by its writer
    assert wait_for(lambda: inbox / "w.jpg" in closed.paths())
    (inbox / "w.jpg").read_bytes()  # a reader: open, then a close without writing
    assert wait_for(lambda: [p for _, p in closed.calls()].count(inbox / "w.jpg") == 2)
    assert [p for _, p in opened.calls()].count(inbox / "w.jpg") == 2


def test_inotify_puts_no_watch_on_hidden_folders_yet_sees_one_renamed_visible(
        watchers: list[FolderWatcher], inbox: Path, recorder: Recorder) -> None:
    """Issue 14: the work area ``.bgcut-work`` (every hidden folder: always ignored) is not
    watched, so the daemon's own journal writes cost no events; a hidden folder renamed to a
    visible name (a sync tool's temporary folder) is watched from then on."""
    hidden = inbox / ".bgcut-work" / "job1"
    hidden.mkdir(parents=True)
    (inbox / ".sync-tmp").mkdir()
    _watch(watchers, inbox, recorder)
    (hidden / "job.json").write_bytes(b"{}")
    (inbox / ".sync-tmp" / "c.jpg").write_bytes(b"data")
    (inbox / "sentinel.jpg").write_bytes(b"data")  # events come in order: the rest is seen
    assert wait_for(lambda: inbox / "sentinel.jpg" in recorder.paths())
    assert not any(".bgcut-work" in p.parts or ".sync-tmp" in p.parts
                   for p in recorder.paths()), recorder.paths()
    (inbox / ".sync-tmp").rename(inbox / "batch")
    assert wait_for(lambda: inbox / "batch" / "c.jpg" in recorder.paths()
                    or inbox / "batch" in recorder.paths())
    (inbox / "batch" / "d.jpg").write_bytes(b"data")
    assert wait_for(lambda: inbox / "batch" / "d.jpg" in recorder.paths())
