"""Every call's total deadline (api/deadline.py), against the real emulator dribbling its answers
over loopback HTTP: each byte comes well within the per-read timeout, yet the call must end at
connect_timeout_s + its endpoint's timeout, as the right error, and leave the client usable."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.api import AmbiguousOutcomeError, BackgroundCutClient
from bgcut_watchd.api.deadline import CallDeadline
from bgcut_watchd.config import Variant
from bgcut_watchd.errors import ServiceError
from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer

from .conftest import API_KEY, api_config, assert_key_absent

CONNECT_S = 0.5
ENDPOINT_S = 1.0
BUDGET_S = CONNECT_S + ENDPOINT_S
SLOW = 4.0  # bytes per second: one byte every 0.25 s, four times within any read timeout
FULL = Variant("full", format="png")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeApiServer]:
    with FakeApiServer(FakeApiOptions(seed=3), api_key=API_KEY,
                       storage_dir=tmp_path / "remote") as fake:
        yield fake


@pytest.fixture
def client(server: FakeApiServer) -> Iterator[BackgroundCutClient]:
    api_client = BackgroundCutClient(api_config(
        server.base_url, connect_timeout_s=CONNECT_S, upload_timeout_s=ENDPOINT_S,
        process_timeout_s=ENDPOINT_S, download_timeout_s=ENDPOINT_S), API_KEY)
    yield api_client
    api_client.close()


@pytest.fixture
def uploaded(client: BackgroundCutClient, tmp_path: Path) -> str:
    path = tmp_path / "in.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(path)
    return client.upload(path, "tests/job", path.name)


def timed(call: Callable[[], object]) -> tuple[float, BaseException]:
    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        call()
    return time.monotonic() - started, caught.value


def assert_at_the_deadline(elapsed_s: float, exc: BaseException, endpoint: str) -> None:
    print(f"{endpoint}: aborted after {elapsed_s:.3f} s (budget {BUDGET_S:g} s)")
    assert BUDGET_S - 0.05 <= elapsed_s <= BUDGET_S + 1.0, elapsed_s
    assert str(exc).startswith(f"{endpoint}: no complete answer within {BUDGET_S:g} s")
    assert_key_absent(exc)


def test_a_dribbled_download_body_ends_at_the_deadline(
        client: BackgroundCutClient, server: FakeApiServer, uploaded: str,
        tmp_path: Path) -> None:
    server.update(dribble_download_bytes_per_s=SLOW)
    dest = tmp_path / "out.dl"
    elapsed_s, exc = timed(lambda: client.download(uploaded, dest))
    assert_at_the_deadline(elapsed_s, exc, "download")
    assert type(exc) is ServiceError  # a download is safe to repeat
    assert not dest.exists()  # the partial file is removed
    server.update(dribble_download_bytes_per_s=0)
    sink = io.BytesIO()
    assert client.download(uploaded, sink) == len(sink.getvalue()) > 0  # the client recovered


def test_a_dribbled_process_answer_ends_at_the_deadline_as_ambiguous(
        client: BackgroundCutClient, server: FakeApiServer, uploaded: str) -> None:
    server.update(dribble_process_bytes_per_s=SLOW)
    elapsed_s, exc = timed(lambda: client.process(uploaded, [FULL], ["tests/job/o.png"]))
    assert_at_the_deadline(elapsed_s, exc, "process")
    assert isinstance(exc, AmbiguousOutcomeError)  # it ran: look before paying again
    assert client.remote_file_exists("tests/job/o.png")
    server.update(dribble_process_bytes_per_s=0)
    assert client.process(uploaded, [FULL], ["tests/job/p.png"]) == ["tests/job/p.png"]


@pytest.mark.parametrize("endpoint", ["process", "download"])
def test_dribbled_headers_end_at_the_deadline(
        client: BackgroundCutClient, server: FakeApiServer, uploaded: str,
        endpoint: str) -> None:
    server.update(dribble_headers=True, **{f"dribble_{endpoint}_bytes_per_s": SLOW})
    calls = {"process": lambda: client.process(uploaded, [FULL], ["tests/job/o.png"]),
             "download": lambda: client.download(uploaded, io.BytesIO())}
    elapsed_s, exc = timed(calls[endpoint])
    assert_at_the_deadline(elapsed_s, exc, endpoint)
    assert isinstance(exc, AmbiguousOutcomeError)  # no answer at all: it may have run


def test_a_dribbled_upload_answer_ends_at_the_deadline(
        client: BackgroundCutClient, server: FakeApiServer, tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(path)
    server.update(dribble_upload_bytes_per_s=SLOW)
    elapsed_s, exc = timed(lambda: client.upload(path, "tests/job", path.name))
    assert_at_the_deadline(elapsed_s, exc, "upload")


def test_calls_within_their_deadline_add_no_thread(
        client: BackgroundCutClient, uploaded: str) -> None:
    before = threading.active_count()  # the alarm thread runs since the upload
    for _ in range(30):
        client.download(uploaded, io.BytesIO())
    deadline_s = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline_s:
        time.sleep(0.01)  # polling a condition with a deadline
    assert threading.active_count() <= before


class FakeConnection:
    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock


def test_a_deadline_spent_before_the_socket_exists_shuts_it_as_it_attaches() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        call = CallDeadline(1.0)
        call.attach(FakeConnection(None))  # type: ignore[arg-type]  # still connecting
        call.expire()
        assert call.expired
        call.attach(FakeConnection(ours))  # type: ignore[arg-type]  # connected now
        ours.settimeout(5)
        assert ours.recv(10) == b""  # shut down: a blocked read would end at once


def test_a_finished_call_is_never_shut_down_by_its_timer() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        call = CallDeadline(1.0)
        call.attach(FakeConnection(ours))  # type: ignore[arg-type]
        call.finish()
        call.expire()  # the timer fired just after the call ended
        assert not call.expired
        theirs.sendall(b"x")
        assert ours.recv(10) == b"x"  # the pooled connection still works
