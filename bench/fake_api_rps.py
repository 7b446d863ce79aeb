"""Requests per second of the BackgroundCut emulator for small requests.

Starts a ``FakeApiServer`` in this process, uploads one small image and renders a small output,
then has several client threads (one keep-alive ``requests.Session`` each) alternate between
``GET /v3/file-ops/usage/`` and a small download for a fixed time, and prints the rate.

    python bench/fake_api_rps.py [--threads 4] [--seconds 3]

Target: >= 200 requests/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from PIL import Image

TARGET_RPS = 200.0


@dataclass
class _Tally:
    requests: int = 0
    failures: int = 0


def _small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _prepare(base_url: str, session: requests.Session) -> str:
    """Upload one image and render one small output; return the output's path."""
    upload = session.post(f"{base_url}/v3/file-ops/upload/",
                          files={"files": ("bench.png", _small_png())},
                          data={"upload_path": "bench"}, timeout=10)
    upload.raise_for_status()
    body = {"input_file_path": upload.json()["file_paths"][0],
            "output_variants": [{"output_file_path": "bench/out.webp", "format": "webp"}]}
    process = session.post(f"{base_url}/v3/tools/ai/remove-bg/process/", json=body, timeout=10)
    process.raise_for_status()
    path: str = process.json()["output_file_paths"][0]
    return path


def _client(base_url: str, key: str, path: str, deadline: float, tally: _Tally,
            lock: threading.Lock) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {key}"
    urls = [f"{base_url}/v3/file-ops/usage/", f"{base_url}/v3/files/{path}"]
    done = failed = 0
    while time.monotonic() < deadline:
        response = session.get(urls[done % 2], timeout=10)
        failed += response.status_code != 200
        done += 1
    with lock:
        tally.requests += done
        tally.failures += failed
    session.close()


def run(threads: int, seconds: float) -> float:
    """Run the benchmark; returns the measured requests per second."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer

    with FakeApiServer(FakeApiOptions()) as api:
        setup = requests.Session()
        setup.headers["Authorization"] = f"Token {api.api_key}"
        path = _prepare(api.base_url, setup)
        tally, lock = _Tally(), threading.Lock()
        started = time.monotonic()
        args: tuple[Any, ...] = (api.base_url, api.api_key, path, started + seconds, tally, lock)
        workers = [threading.Thread(target=_client, args=args) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
    rps = tally.requests / elapsed
    print(f"fake-api: {tally.requests} requests ({tally.failures} failed) from {threads} threads "
          f"in {elapsed:.2f}s = {rps:.0f} req/s (target >= {TARGET_RPS:.0f})")
    return rps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    return 0 if run(args.threads, args.seconds) >= TARGET_RPS else 1


if __name__ == "__main__":
    sys.exit(main())
