"""Fixtures for the API client tests: a canned-answer transport, a recording transport, the
emulator, and the check that the API key never shows up in a log record or an exception."""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from bgcut_watchd.api import BackgroundCutClient
from bgcut_watchd.config import ApiConfig

API_KEY = "sk-test-Q7v9SECRETx2Lp"
STUB_BASE_URL = "http://stub.invalid"


@dataclass(frozen=True)
class Canned:
    """One canned HTTP answer of the stub transport."""

    status: int = 200
    body: bytes = b"{}"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    """What the client put on the wire, as the transport saw it."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout: Any


class StubAdapter(HTTPAdapter):
    """A transport that answers from ``answer(request)`` without any network."""

    def __init__(self, answer: Callable[[requests.PreparedRequest], Canned]) -> None:
        super().__init__(max_retries=0)
        self.answer = answer
        self.sent: list[Sent] = []

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
        **_: Any,
    ) -> requests.Response:
        body = request.body if isinstance(request.body, bytes | None) else b"<stream>"
        self.sent.append(Sent(str(request.method), str(request.url), dict(request.headers),
                              body, timeout))
        canned = self.answer(request)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(canned.body), headers=dict(canned.headers), status=canned.status,
            preload_content=False, decode_content=False, enforce_content_length=True,
        )
        return self.build_response(request, raw)


class RecordingAdapter(HTTPAdapter):
    """A real transport that records the timeout of every request it sends."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.sent: list[tuple[str, str, Any]] = []

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
        **kwargs: Any,
    ) -> requests.Response:
        self.sent.append((str(request.method), str(request.url), timeout))
        return super().send(request, stream=stream, timeout=timeout, **kwargs)


def session_with(prefix: str, adapter: HTTPAdapter) -> Callable[[], requests.Session]:
    """A session factory whose sessions send everything under ``prefix`` through ``adapter``
    (a longer prefix than the client's own ``http://`` mount, so it wins)."""

    def factory() -> requests.Session:
        session = requests.Session()
        session.mount(prefix, adapter)
        return session

    return factory


def api_config(base_url: str, **changes: Any) -> ApiConfig:
    """An ApiConfig with short timeouts for tests."""
    values: dict[str, Any] = {
        "base_url": base_url, "connect_timeout_s": 2.0, "upload_timeout_s": 10.0,
        "process_timeout_s": 10.0, "download_timeout_s": 10.0, "upload_prefix": "tests",
    }
    values.update(changes)
    return ApiConfig(**values)


def stub_client(
    answer: Callable[[requests.PreparedRequest], Canned], **config: Any
) -> tuple[BackgroundCutClient, StubAdapter]:
    """A client whose every request is answered by ``answer``."""
    adapter = StubAdapter(answer)
    client = BackgroundCutClient(
        api_config(STUB_BASE_URL, **config), API_KEY,
        session_with(STUB_BASE_URL + "/", adapter),
    )
    return client, adapter


def assert_key_absent(exc: BaseException) -> None:
    """The API key is nowhere in the exception: text, repr, args, chain and traceback."""
    rendered = "".join(traceback.format_exception(exc))
    for text in (str(exc), repr(exc), repr(exc.args), rendered, repr(vars(exc))):
        assert API_KEY not in text


@pytest.fixture(autouse=True)
def key_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture every log record at DEBUG and fail the test if one carries the API key."""
    caplog.set_level(logging.DEBUG)
    yield
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for when in ("setup", "call"):
        for record in caplog.get_records(when):
            assert API_KEY not in formatter.format(record)
            assert API_KEY not in repr(record.args)
