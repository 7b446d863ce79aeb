"""Fixtures for the network-folder tests: a real sshfs share over loopback (``tests.netfs.sshfs``).

``ssh_server`` (``tests/conftest.py``) is started once per session (key generation and sshd
start take about a second); each test mounts its own share so the client's caches start empty
and nothing leaks between tests. Every test here is skipped, with the reason, where FUSE or the
binaries are unavailable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netfs.sshfs import NO_CACHE_OPTIONS, Share, SshServer, mounted


@pytest.fixture
def share(ssh_server: SshServer, tmp_path: Path) -> Iterator[Share]:
    """``tmp_path/server`` mounted at ``tmp_path/client`` with sshfs's default caches."""
    with mounted(ssh_server, tmp_path / "server", tmp_path / "client") as mounted_share:
        yield mounted_share


@pytest.fixture
def share_nocache(ssh_server: SshServer, tmp_path: Path) -> Iterator[Share]:
    """The same with the directory cache and the kernel's attribute cache off."""
    with mounted(ssh_server, tmp_path / "server", tmp_path / "client",
                 NO_CACHE_OPTIONS) as mounted_share:
        yield mounted_share
