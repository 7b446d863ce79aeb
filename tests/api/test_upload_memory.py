"""A 50 MB upload is streamed: the uploading process's RSS grows by less than 10 MB.

The upload runs in a fresh subprocess (a clean RSS reading, away from pytest and the emulator)
that samples its own RSS with psutil while it uploads. A naive upload that reads the file into
memory runs as the control, so the test proves it can see the difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.api import BackgroundCutClient
from bgcut_watchd.config import ApiConfig
from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer

from .conftest import API_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]
UPLOAD_BYTES = 50 * 1024 * 1024
WARMUP_BYTES = 256 * 1024
MAX_RSS_GROWTH_BYTES = 10 * 1024 * 1024

CHILD = textwrap.dedent(
    """
    import json, sys, threading
    from pathlib import Path

    import psutil
    import requests

    from bgcut_watchd.api import BackgroundCutClient
    from bgcut_watchd.config import ApiConfig

    base_url, api_key, big, warmup, mode = sys.argv[1:6]
    client = BackgroundCutClient(ApiConfig(base_url=base_url), api_key)
    client.upload(Path(warmup), "tests/warm", "warm.bin")  # imports, pool, encoder paths
    process = psutil.Process()
    baseline = peak = process.memory_info().rss
    done = threading.Event()

    def sample():
        global peak
        while not done.wait(0.002):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    if mode == "client":
        stored = client.upload(Path(big), "tests/big", "big.bin")
    else:
        answer = requests.post(
            base_url + "/v3/file-ops/upload/",
            files={"files": ("big.bin", Path(big).read_bytes())},
            data={"upload_path": "tests/big"},
            headers={"Authorization": "Token " + api_key},
            timeout=(10, 60),
        )
        stored = answer.json()["file_paths"][0]
    done.set()
    sampler.join()
    peak = max(peak, process.memory_info().rss)
    print(json.dumps({"growth_bytes": peak - baseline, "stored": stored}))
    """
)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("upload") / "big.bin"
    with path.open("wb") as stream:
        for _ in range(UPLOAD_BYTES // (1024 * 1024)):
            stream.write(os.urandom(1024 * 1024))
    path.with_name("warm.bin").write_bytes(os.urandom(WARMUP_BYTES))
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeApiServer]:
    fake = FakeApiServer(FakeApiOptions(), api_key=API_KEY, storage_dir=tmp_path / "remote")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def _upload_in_child(server: FakeApiServer, big_file: Path, mode: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, server.base_url, API_KEY, str(big_file),
         str(big_file.with_name("warm.bin")), mode],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_streamed_upload_keeps_rss_flat(server: FakeApiServer, big_file: Path) -> None:
    result = _upload_in_child(server, big_file, "client")
    assert result["stored"] == "tests/big/big.bin"
    usage = BackgroundCutClient(ApiConfig(base_url=server.base_url), API_KEY).usage()
    assert usage["used_bytes"] == UPLOAD_BYTES + WARMUP_BYTES  # every byte arrived
    growth_bytes = result["growth_bytes"]
    assert isinstance(growth_bytes, int) and growth_bytes < MAX_RSS_GROWTH_BYTES


def test_control_naive_upload_is_seen_growing(server: FakeApiServer, big_file: Path) -> None:
    result = _upload_in_child(server, big_file, "naive")
    growth_bytes = result["growth_bytes"]
    assert isinstance(growth_bytes, int) and growth_bytes > UPLOAD_BYTES
