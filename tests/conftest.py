"""Fixtures shared by the whole suite: the real emulator and a folder set to run a daemon on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer
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
