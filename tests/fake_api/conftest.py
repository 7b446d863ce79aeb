"""Shared fixtures for the emulator tests: a running server, an authorised session, images."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image, ImageDraw

from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer

API_KEY = "test-key"
UPLOAD_URL = "/v3/file-ops/upload/"
PROCESS_URL = "/v3/tools/ai/remove-bg/process/"
USAGE_URL = "/v3/file-ops/usage/"
BACKGROUND = (20, 200, 30)
SUBJECT = (200, 30, 30)


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now_s: float = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        time.sleep(0.01)


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (400, 300)) -> bytes:
    """A green picture with a red ellipse in the middle (the "subject")."""
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    box = (width // 4, height // 4, width * 3 // 4, height * 3 // 4)
    ImageDraw.Draw(image).ellipse(box, fill=SUBJECT)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


class Client:
    """A thin authorised client of one emulator, for readable tests."""

    def __init__(self, api: FakeApiServer, key: str = API_KEY) -> None:
        self.api = api
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {key}"

    def url(self, path: str) -> str:
        return self.api.base_url + path

    def upload(
        self, data: bytes, name: str = "photo.jpg", upload_path: str = "proj/job1"
    ) -> requests.Response:
        files = {"files": (name, data, "application/octet-stream")}
        return self.session.post(
            self.url(UPLOAD_URL), files=files, data={"upload_path": upload_path}, timeout=10
        )

    def upload_ok(self, data: bytes | None = None, **kwargs: Any) -> str:
        response = self.upload(data if data is not None else image_bytes(), **kwargs)
        assert response.status_code == 200, response.text
        path: str = response.json()["file_paths"][0]
        return path

    def process(self, input_path: str, *variants: dict[str, Any]) -> requests.Response:
        body = {"input_file_path": input_path, "output_variants": list(variants)}
        return self.session.post(self.url(PROCESS_URL), json=body, timeout=30)

    def download(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url(f"/v3/files/{path}"), timeout=10, **kwargs)

    def usage(self) -> requests.Response:
        return self.session.get(self.url(USAGE_URL), timeout=10)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeApiServer]:
    with FakeApiServer(FakeApiOptions(seed=7), storage_dir=tmp_path / "storage") as server:
        yield server


@pytest.fixture
def client(api: FakeApiServer) -> Iterator[Client]:
    client = Client(api)
    yield client
    client.session.close()
