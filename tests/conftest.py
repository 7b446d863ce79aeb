"""Fixtures shared by the whole suite: the real emulator and a folder set to run a daemon on."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer
from tests.netfs.sshfs import SshServer, missing_requirements
from tests.support import API_KEY


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[FakeApiServer]:
    """The real emulator on a free loopback port, storing under tmp_path."""
    server = FakeApiServer(FakeApiOptions(seed=1), api_key=API_KEY,
                           storage_dir=tmp_path / "emulator-storage")
    with server:
        yield server


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    """``cli.main`` binds a root handler to this test's captured stderr: undo it afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """An empty folder on another filesystem than ``tmp_path``: a tmpfs mounted for the test
    (root), else ``/dev/shm`` when that is another filesystem; skipped when neither works."""
    mount_point = tmp_path / "other-fs"
    mount_point.mkdir()
    mounted = _mount_tmpfs(mount_point)
    if mounted:
        folder = mount_point
    else:
        shm = Path("/dev/shm")
        if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("no other filesystem: cannot mount a tmpfs and /dev/shm is not one")
        folder = Path(tempfile.mkdtemp(prefix="bgcut-other-fs-", dir=shm))
    assert folder.stat().st_dev != tmp_path.stat().st_dev
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount_point)], check=False,
                           capture_output=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _mount_tmpfs(mount_point: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "bgcut-test",
                             str(mount_point)], check=False, capture_output=True)
    return result.returncode == 0


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A private sshd on 127.0.0.1 with its own host key and authorized key."""
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(f"no loopback sshfs: {reason}")
    server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    try:
        yield server
    finally:
        server.stop()
