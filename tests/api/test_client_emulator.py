"""The client against the real emulator over loopback HTTP: round trip, errors and faults."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bgcut_watchd.api import AmbiguousOutcomeError, BackgroundCutClient
from bgcut_watchd.config import Variant
from bgcut_watchd.errors import (
    ApiInputError,
    AuthError,
    CreditsError,
    RateLimitedError,
    RemoteFileMissingError,
    ServiceError,
    UnreachableError,
)
from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer

from .conftest import API_KEY, RecordingAdapter, api_config, assert_key_absent, session_with

SOURCE_SIZE = (600, 400)
SUBJECT_BOX = (300, 120, 540, 200)  # 240 x 80, off centre: a 3:1 subject on a 3:2 canvas
BACKGROUND_RGB = (40, 70, 200)
SUBJECT_RGB = (220, 30, 30)
FULL = Variant("full", format="png", max_resolution=12_000_000, quality="high")
THUMB = Variant("thumb", format="webp", max_resolution=10_000, quality="medium", autocrop=True)
WHITE = Variant("white", format="jpeg", background_color="#ffffff", output_compression=85)


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; return its last value."""
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline_s:
            return False
        time.sleep(0.02)
    return True


def logged(server: FakeApiServer, endpoint: str) -> list[tuple[str, int | None, str | None]]:
    """The log entries of ``endpoint`` as (endpoint, status, fault), once at least one is there
    (the emulator appends an entry just after answering, so it can trail the answer)."""

    def entries() -> list[tuple[str, int | None, str | None]]:
        return [(e.endpoint, e.status, e.fault) for e in server.requests()
                if e.endpoint == endpoint]

    assert wait_for(lambda: bool(entries()), timeout_s=5.0)
    return entries()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeApiServer]:
    fake = FakeApiServer(FakeApiOptions(seed=7), api_key=API_KEY, storage_dir=tmp_path / "remote")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def client(server: FakeApiServer) -> Iterator[BackgroundCutClient]:
    api_client = BackgroundCutClient(api_config(server.base_url), API_KEY)
    yield api_client
    api_client.close()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "Studio shot é.png"
    canvas = Image.new("RGB", SOURCE_SIZE, BACKGROUND_RGB)
    canvas.paste(SUBJECT_RGB, SUBJECT_BOX)
    canvas.save(path)
    return path


def _uploaded(client: BackgroundCutClient, image: Path) -> str:
    return client.upload(image, "tests/job-1", image.name)


def _fetch(client: BackgroundCutClient, remote_path: str) -> bytes:
    sink = io.BytesIO()
    assert client.download(remote_path, sink) == len(sink.getvalue())
    return sink.getvalue()


def _pixel(picture: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = picture.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def _assert_fits(size: tuple[int, int], max_pixels: int, aspect: float) -> None:
    width, height = size
    assert width * height <= max_pixels
    assert width / height == pytest.approx(aspect, rel=0.05)


def test_round_trip_three_variants(client: BackgroundCutClient, image: Path) -> None:
    remote_input = _uploaded(client, image)
    assert remote_input == "tests/job-1/Studio_shot_e.png"
    outputs = ["tests/job-1/out/full.png", "tests/job-1/out/thumb.webp", "tests/job-1/out/w.jpg"]
    assert client.process(remote_input, [FULL, THUMB, WHITE], outputs) == outputs
    full, thumb, white = (_fetch(client, path) for path in outputs)

    assert full.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(full)) as png:
        assert png.size == SOURCE_SIZE  # never scaled up
        assert _pixel(png.convert("RGBA"), (0, 0))[3] == 0  # background cut: transparent

    assert thumb[:4] == b"RIFF" and thumb[8:12] == b"WEBP"
    with Image.open(io.BytesIO(thumb)) as webp:
        _assert_fits(webp.size, THUMB.max_resolution, aspect=3.0)  # cropped to the 3:1 subject

    assert white.startswith(b"\xff\xd8\xff")
    with Image.open(io.BytesIO(white)) as jpeg:
        assert jpeg.size == SOURCE_SIZE
        corner = _pixel(jpeg.convert("RGB"), (0, 0))
        assert all(channel >= 245 for channel in corner)  # filled white, not the blue source
        red, green, blue = _pixel(jpeg.convert("RGB"), (420, 160))
        assert red > 180 and green < 80 and blue < 80  # the subject survives


def test_autocrop_output_is_smaller_than_uncropped_on_reuse(
    client: BackgroundCutClient, image: Path
) -> None:
    remote_input = _uploaded(client, image)
    scaled = Variant("scaled", format="webp", max_resolution=10_000)
    cropped = Variant("cropped", format="png", autocrop=True)
    paths = client.process(remote_input, [scaled, cropped], ["tests/r/s.webp", "tests/r/c.png"])
    with Image.open(io.BytesIO(_fetch(client, paths[0]))) as uncropped_thumb:
        _assert_fits(uncropped_thumb.size, 10_000, aspect=1.5)
    with Image.open(io.BytesIO(_fetch(client, paths[1]))) as autocropped:
        width, height = autocropped.size
    assert width < SOURCE_SIZE[0] and height < SOURCE_SIZE[1]
    assert (width, height) == pytest.approx((240, 80), abs=4)


def _expect(error: type[Exception], call: Callable[[], Any]) -> Any:
    with pytest.raises(error) as caught:
        call()
    assert_key_absent(caught.value)
    return caught.value


def test_400_unreadable_image(client: BackgroundCutClient, tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image" * 50)
    remote_input = client.upload(junk, "tests/job-2", junk.name)
    error = _expect(ApiInputError, lambda: client.process(remote_input, [FULL], ["tests/o.png"]))
    assert error.http_status == 400 and error.reason == "rejected_by_api"
    assert error.endpoint == "process"


def test_401_wrong_key(server: FakeApiServer) -> None:
    client = BackgroundCutClient(api_config(server.base_url), API_KEY + "-wrong")
    error = _expect(AuthError, client.usage)
    assert error.http_status == 401 and (API_KEY + "-wrong") not in str(error)


def test_401_auth_fail_switch(server: FakeApiServer, client: BackgroundCutClient) -> None:
    server.update(auth_fail=True)
    assert _expect(AuthError, client.usage).http_status == 401


def test_402_credits(server: FakeApiServer, client: BackgroundCutClient, image: Path) -> None:
    remote_input = _uploaded(client, image)
    server.update(credits_exhausted=True)
    error = _expect(CreditsError, lambda: client.process(remote_input, [FULL], ["tests/o.png"]))
    assert error.http_status == 402 and error.endpoint == "process"


def test_404_download_and_process(client: BackgroundCutClient) -> None:
    error = _expect(RemoteFileMissingError, lambda: client.download("tests/nope.png", io.BytesIO()))
    assert error.http_status == 404
    error = _expect(RemoteFileMissingError,
                    lambda: client.process("tests/nope.png", [FULL], ["tests/o.png"]))
    assert error.endpoint == "process"
    assert client.remote_file_exists("tests/nope.png") is False


def test_404_after_upload(server: FakeApiServer, client: BackgroundCutClient, image: Path) -> None:
    remote_input = _uploaded(client, image)
    server.update(fail_404_after_upload=1.0)
    _expect(RemoteFileMissingError, lambda: client.process(remote_input, [FULL], ["tests/o.png"]))


def test_413_too_large(server: FakeApiServer, client: BackgroundCutClient, image: Path) -> None:
    server.update(max_upload_bytes=1000)
    error = _expect(ApiInputError, lambda: _uploaded(client, image))
    assert error.http_status == 413 and error.reason == "too_large"


@pytest.mark.parametrize(("retry_after_s", "expected_s"), [(7, 7.0), (99_999, 3600.0)])
def test_429_retry_after_clamped(
    server: FakeApiServer, client: BackgroundCutClient, retry_after_s: int, expected_s: float
) -> None:
    server.update(fail_429=1.0, retry_after_s=retry_after_s)
    error = _expect(RateLimitedError, client.usage)
    assert error.http_status == 429 and error.retry_after_s == expected_s


def test_5xx_is_service_error_sent_once(
    server: FakeApiServer, client: BackgroundCutClient, image: Path
) -> None:
    remote_input = _uploaded(client, image)
    server.update(fail_5xx=1.0)
    error = _expect(ServiceError, lambda: client.process(remote_input, [FULL], ["tests/o.png"]))
    assert error.http_status is not None and error.http_status >= 500
    assert logged(server, "process") == [("process", error.http_status, "5xx")]


def test_connection_reset_is_service_error_sent_once(
    server: FakeApiServer, client: BackgroundCutClient, image: Path
) -> None:
    remote_input = _uploaded(client, image)
    server.update(fail_reset=1.0)
    error = _expect(ServiceError, lambda: client.process(remote_input, [FULL], ["tests/o.png"]))
    assert isinstance(error, AmbiguousOutcomeError) and error.endpoint == "process"
    assert logged(server, "process") == [("process", None, "reset")]


def test_truncated_download_is_service_error_and_leaves_no_file(
    server: FakeApiServer, client: BackgroundCutClient, image: Path, tmp_path: Path
) -> None:
    remote_input = _uploaded(client, image)
    [output] = client.process(remote_input, [FULL], ["tests/job-1/full.png"])
    server.update(fail_truncate=1.0)
    dest = tmp_path / ".full.png.part"
    error = _expect(ServiceError, lambda: client.download(output, dest))
    assert error.endpoint == "download" and not dest.exists()


def test_read_timeout_is_ambiguous_and_the_outputs_tell(
    server: FakeApiServer, image: Path
) -> None:
    client = BackgroundCutClient(api_config(server.base_url, process_timeout_s=0.3), API_KEY)
    remote_input = _uploaded(client, image)
    server.update(latency_process_s=1.0)
    started_s = time.monotonic()
    error = _expect(ServiceError, lambda: client.process(remote_input, [FULL], ["tests/t.png"]))
    assert time.monotonic() - started_s < 0.9  # gave up at the read timeout, did not wait
    assert isinstance(error, AmbiguousOutcomeError) and "timed out" in str(error)
    # The call did run: probing for its output (no second process call) shows it.
    assert wait_for(lambda: client.remote_file_exists("tests/t.png"), timeout_s=5.0)
    assert len(logged(server, "process")) == 1


def test_refused_connection_is_unreachable_not_ambiguous() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = BackgroundCutClient(api_config(f"http://127.0.0.1:{port}"), API_KEY)
    error = _expect(ServiceError, client.usage)
    assert type(error) is UnreachableError and "request not sent" in str(error)


def test_usage_answers_a_dict(client: BackgroundCutClient, image: Path) -> None:
    _uploaded(client, image)
    usage = client.usage()
    assert isinstance(usage, dict) and usage["used_bytes"] == image.stat().st_size


def test_real_requests_all_carry_both_timeouts(server: FakeApiServer, image: Path) -> None:
    recorder = RecordingAdapter()
    config = api_config(server.base_url, connect_timeout_s=3.0, upload_timeout_s=4.0,
                        process_timeout_s=5.0, download_timeout_s=6.0)
    client = BackgroundCutClient(config, API_KEY, session_with(server.base_url + "/", recorder))
    remote_input = _uploaded(client, image)
    [output] = client.process(remote_input, [FULL], ["tests/job-1/full.png"])
    _fetch(client, output)
    client.usage()
    assert [timeout for _, _, timeout in recorder.sent] == [
        (3.0, 4.0), (3.0, 5.0), (3.0, 6.0), (3.0, 6.0)
    ]


def test_debug_log_names_endpoint_status_and_duration(
    client: BackgroundCutClient, caplog: pytest.LogCaptureFixture
) -> None:
    client.usage()
    messages = [r.getMessage() for r in caplog.records if r.name == "bgcut_watchd.api"]
    assert len(messages) == 1
    assert messages[0].startswith("usage -> HTTP 200 in ") and messages[0].endswith(" ms")


# -- what the environment may change ------------------------------------------------------------

def test_a_netrc_entry_for_the_api_host_does_not_replace_the_key(
        server: FakeApiServer, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would send ~/.netrc's Basic credentials instead of the ``Token`` header (a 401:
    the daemon would pause on a key that is fine); the client reads no netrc."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    api_client = BackgroundCutClient(api_config(server.base_url), API_KEY)
    try:
        assert _uploaded(api_client, image).startswith("tests/job-1")
    finally:
        api_client.close()


class OneShotProxy:
    """A listener that takes one connection, keeps its request line and answers 502."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.request_lines: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    break
                head += data
            self.request_lines.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


def test_the_environment_s_proxy_is_used_unless_no_proxy_names_the_host(
        server: FakeApiServer, image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy is read once per session (not at every request), with the same outcome."""
    proxy = OneShotProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        proxied = BackgroundCutClient(api_config(server.base_url), API_KEY)
        with pytest.raises(ServiceError):
            _uploaded(proxied, image)
        proxied.close()
        assert proxy.request_lines == [f"POST {server.base_url}/v3/file-ops/upload/ HTTP/1.1"]
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = BackgroundCutClient(api_config(server.base_url), API_KEY)
        assert _uploaded(direct, image).startswith("tests/job-1")
        direct.close()
    finally:
        proxy.close()
