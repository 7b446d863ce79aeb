"""daemon.lock: whether a daemon lives is told by its lock, whatever files say."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bgcut_watchd.daemon.lock import LOCK_NAME, DaemonLock, daemon_alive
from bgcut_watchd.ledger import LEDGER_NAME


def test_no_lock_file_no_daemon(tmp_path: Path) -> None:
    assert daemon_alive(tmp_path / "never-used", reappear_s=0.0) is False
    (tmp_path / "a-file").write_text("not a folder")
    assert daemon_alive(tmp_path / "a-file", reappear_s=0.0) is False


def test_a_held_lock_is_a_live_daemon_and_a_released_one_is_not(tmp_path: Path) -> None:
    lock = DaemonLock(tmp_path / "state")
    lock.acquire()
    try:
        assert daemon_alive(tmp_path / "state") is True
        second = DaemonLock(tmp_path / "state")  # two daemons may share a state_dir
        second.acquire()
        second.release()
        assert daemon_alive(tmp_path / "state") is True
    finally:
        lock.release()
    assert (tmp_path / "state" / LOCK_NAME).exists()  # left behind, and free
    assert daemon_alive(tmp_path / "state") is False


def test_a_killed_holder_leaves_a_free_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code = ("import sys, time; from pathlib import Path; "
            "from bgcut_watchd.daemon.lock import DaemonLock; "
            "DaemonLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(state)], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert daemon_alive(state) is True
        holder.kill()
        holder.wait(10)
        assert daemon_alive(state) is False
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_a_removed_state_dir_is_recreated_by_check_and_found_again(tmp_path: Path) -> None:
    state = tmp_path / "state"
    lock = DaemonLock(state)
    lock.acquire()
    try:
        assert lock.check() is False  # nothing changed
        shutil.rmtree(state)
        assert daemon_alive(state, reappear_s=0.0) is False  # the window check() closes
        assert lock.check() is True
        assert daemon_alive(state) is True
    finally:
        lock.release()


def test_a_missing_lock_in_a_used_state_dir_is_not_waited_for(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / LEDGER_NAME).write_bytes(b"")
    assert daemon_alive(state, reappear_s=60.0) is False  # returns at once
