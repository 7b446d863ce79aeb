"""Fixtures shared by the whole suite: the real emulator and a folder set to run a daemon on."""

from __future__ import annotations

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
