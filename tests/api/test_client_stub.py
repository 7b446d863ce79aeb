"""Client tests at the transport seam: answers the emulator never gives, and what is sent."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from bgcut_watchd.api import (
    AmbiguousOutcomeError,
    BackgroundCutClient,
    file_url_path,
    safe_upload_name,
)
from bgcut_watchd.config import Variant
from bgcut_watchd.errors import (
    ConfigError,
    RateLimitedError,
    RemoteFileMissingError,
    ServiceError,
)

from .conftest import API_KEY, Canned, api_config, assert_key_absent, stub_client

VARIANTS = (
    Variant("full"),
    Variant("thumb", format="webp", max_resolution=250_000, quality="medium", autocrop=True),
    Variant("white", format="jpeg", background_color="#ffffff", output_compression=70),
)
OUTPUTS = ("job/full.png", "job/thumb.webp", "job/white.jpg")


def _json(value: object, status: int = 200) -> Canned:
    return Canned(status, json.dumps(value).encode(), {"Content-Type": "application/json"})


def _always(canned: Canned) -> Callable[[requests.PreparedRequest], Canned]:
    return lambda request: canned


def test_process_sends_every_variant_field_explicitly_in_one_call() -> None:
    client, adapter = stub_client(_always(_json({"output_file_paths": list(OUTPUTS)})))
    assert client.process("job/in.png", VARIANTS, OUTPUTS) == list(OUTPUTS)
    assert len(adapter.sent) == 1
    sent = adapter.sent[0]
    assert sent.method == "POST" and sent.url.endswith("/v3/tools/ai/remove-bg/process/")
    payload = json.loads(sent.body or b"")
    assert payload["input_file_path"] == "job/in.png"
    assert payload["output_variants"] == [
        {"output_file_path": "job/full.png", "format": "png", "max_resolution": 12_000_000,
         "quality": "high", "background_color": None, "output_compression": 85,
         "autocrop": False},
        {"output_file_path": "job/thumb.webp", "format": "webp", "max_resolution": 250_000,
         "quality": "medium", "background_color": None, "output_compression": 85,
         "autocrop": True},
        {"output_file_path": "job/white.jpg", "format": "jpeg", "max_resolution": 12_000_000,
         "quality": "high", "background_color": "#ffffff", "output_compression": 70,
         "autocrop": False},
    ]
    assert sent.headers["Authorization"] == f"Token {API_KEY}"


def test_process_rejects_mismatched_output_paths_without_calling() -> None:
    client, adapter = stub_client(_always(_json({})))
    with pytest.raises(ValueError, match="one output_file_path per variant"):
        client.process("job/in.png", VARIANTS, OUTPUTS[:2])
    assert adapter.sent == []


@pytest.mark.parametrize(
    "answer",
    [
        {"output_file_paths": ["job/full.png", "job/thumb.webp"]},
        {"output_file_paths": [*OUTPUTS, "job/extra.png"]},
        {"output_file_paths": ["job/full.png", 7, "job/white.jpg"]},
        {"output_file_paths": "job/full.png"},
        {"output_file_paths": ["job/full.png", "job/../x.webp", "job/white.jpg"]},
        {"output_paths": list(OUTPUTS)},
        [list(OUTPUTS)],
    ],
)
def test_wrong_shaped_process_answer_is_a_service_error(answer: object) -> None:
    client, _ = stub_client(_always(_json(answer)))
    with pytest.raises(ServiceError) as caught:
        client.process("job/in.png", VARIANTS, OUTPUTS)
    assert isinstance(caught.value, AmbiguousOutcomeError)  # it ran: look before re-sending
    assert caught.value.endpoint == "process"
    assert_key_absent(caught.value)


@pytest.mark.parametrize("endpoint", ["upload", "process", "usage"])
def test_non_json_answer_is_a_service_error_naming_the_endpoint(
    endpoint: str, tmp_path: Path
) -> None:
    client, _ = stub_client(_always(Canned(200, b"<html>Welcome to nginx</html>")))
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG")
    calls = {
        "upload": lambda: client.upload(image, "tests/job", "in.png"),
        "process": lambda: client.process("job/in.png", VARIANTS, OUTPUTS),
        "usage": client.usage,
    }
    with pytest.raises(ServiceError, match=f"^{endpoint} \\(HTTP 200\\): answer is not JSON"):
        calls[endpoint]()


@pytest.mark.parametrize("answer", [{}, {"file_paths": []}, {"file_paths": [""]}])
def test_upload_without_file_paths_is_a_service_error(answer: object, tmp_path: Path) -> None:
    client, _ = stub_client(_always(_json(answer)))
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG")
    with pytest.raises(ServiceError, match="file_paths"):
        client.upload(image, "tests/job", "in.png")


def test_upload_sends_safe_name_and_upload_path_as_multipart(tmp_path: Path) -> None:
    client, adapter = stub_client(_always(_json({"file_paths": ["tests/job/Cafe_1.png"]})))
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG-bytes")
    assert client.upload(image, "tests/job", "Café 1.png") == "tests/job/Cafe_1.png"
    sent = adapter.sent[0]
    assert sent.url == "http://stub.invalid/v3/file-ops/upload/"
    assert sent.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert sent.body == b"<stream>"  # streamed from the encoder, never one bytes object


def test_usage_must_be_a_json_object() -> None:
    client, _ = stub_client(_always(_json({"used_bytes": 12, "quota_bytes": 10})))
    assert client.usage() == {"used_bytes": 12, "quota_bytes": 10}
    client, _ = stub_client(_always(_json([1, 2])))
    with pytest.raises(ServiceError, match="not an object"):
        client.usage()


def test_download_path_is_percent_encoded_with_slashes_kept() -> None:
    client, adapter = stub_client(_always(Canned(200, b"abc", {"Content-Length": "3"})))
    sink = io.BytesIO()
    assert client.download("my proj/ü#?%/a+b.png", sink) == 3
    assert sink.getvalue() == b"abc"
    assert adapter.sent[0].url == "http://stub.invalid/v3/files/my%20proj/%C3%BC%23%3F%25/a%2Bb.png"
    assert adapter.sent[0].headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("path", ["job/../other/a.png", "./a.png", "job/."])
def test_download_refuses_dot_segments_a_library_would_resolve(path: str) -> None:
    client, adapter = stub_client(_always(Canned(200, b"abc", {"Content-Length": "3"})))
    with pytest.raises(ValueError, match=r"'\.\.' segment"):
        client.download(path, io.BytesIO())
    assert adapter.sent == []


def test_file_url_path_keeps_plain_paths_readable() -> None:
    assert file_url_path("tests/job-1/photo.jpg") == "/v3/files/tests/job-1/photo.jpg"


def test_short_download_body_is_a_service_error_and_removes_the_file(tmp_path: Path) -> None:
    client, _ = stub_client(_always(Canned(200, b"only-part", {"Content-Length": "1000"})))
    dest = tmp_path / "out.png.tmp"
    pattern = r"^download \(HTTP 200\): body broke off after \d+ of 1000 bytes"
    with pytest.raises(ServiceError, match=pattern):
        client.download("job/full.png", dest)
    assert not dest.exists()


def test_download_to_path_writes_the_bytes(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096
    client, _ = stub_client(_always(Canned(200, payload, {"Content-Length": str(len(payload))})))
    dest = tmp_path / "out.bin"
    assert client.download("job/full.png", dest) == len(payload)
    assert dest.read_bytes() == payload


def test_remote_file_exists() -> None:
    def answer(request: requests.PreparedRequest) -> Canned:
        found = str(request.url).endswith("/there.png")
        return Canned(200, b"x", {}) if found else _json({"detail": "File not found"}, 404)

    client, _ = stub_client(answer)
    assert client.remote_file_exists("job/there.png") is True
    assert client.remote_file_exists("job/gone.png") is False


def test_download_404_is_remote_file_missing() -> None:
    client, _ = stub_client(_always(_json({"detail": "File not found"}, 404)))
    with pytest.raises(RemoteFileMissingError, match=r"download \(HTTP 404\): File not found"):
        client.download("job/gone.png", io.BytesIO())


def test_429_http_date_is_read_against_the_injected_clock() -> None:
    answer = _json({"detail": "Rate limit exceeded"}, 429)
    answer = Canned(429, answer.body, {"Retry-After": "Tue, 14 Nov 2023 22:15:20 GMT"})
    client, _ = stub_client(_always(answer))
    client = BackgroundCutClient(client._api, API_KEY, lambda: _stub_session(answer),
                                 wall_clock=lambda: 1_700_000_000.0)  # 22:13:20 GMT
    with pytest.raises(RateLimitedError) as caught:
        client.usage()
    assert caught.value.retry_after_s == 120.0


def _stub_session(answer: Canned) -> requests.Session:
    _, adapter = stub_client(_always(answer))
    session = requests.Session()
    session.mount("http://stub.invalid/", adapter)
    return session


def test_server_echoing_the_key_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    def echo(request: requests.PreparedRequest) -> Canned:
        return _json({"detail": f"bad header {request.headers['Authorization']}"}, 500)

    client, _ = stub_client(echo)
    with pytest.raises(ServiceError) as caught:
        client.usage()
    assert "bad header Token [redacted]" in str(caught.value)
    assert_key_absent(caught.value)
    assert any("usage -> HTTP 500" in r.getMessage() for r in caplog.records)


def test_every_request_has_connect_and_read_timeouts(tmp_path: Path) -> None:
    def answer(request: requests.PreparedRequest) -> Canned:
        url = str(request.url)
        if url.endswith("/upload/"):
            return _json({"file_paths": ["tests/job/in.png"]})
        if url.endswith("/process/"):
            return _json({"output_file_paths": list(OUTPUTS)})
        return Canned(200, b"{}", {"Content-Length": "2"})

    client, adapter = stub_client(answer, connect_timeout_s=1.5, upload_timeout_s=11.0,
                                  process_timeout_s=33.0, download_timeout_s=22.0)
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG")
    client.upload(image, "tests/job", "in.png")
    client.process("tests/job/in.png", VARIANTS, OUTPUTS)
    client.download(OUTPUTS[0], io.BytesIO())
    client.remote_file_exists(OUTPUTS[0])
    client.usage()
    assert [s.timeout for s in adapter.sent] == [
        (1.5, 11.0), (1.5, 33.0), (1.5, 22.0), (1.5, 22.0), (1.5, 22.0)
    ]


def test_one_session_per_thread_each_with_the_key_and_no_retries() -> None:
    made: list[requests.Session] = []

    def factory() -> requests.Session:
        made.append(requests.Session())
        return made[-1]

    client = BackgroundCutClient(api_config("http://127.0.0.1:9"), API_KEY, factory)
    first, again = client._session(), client._session()
    other: list[requests.Session] = []
    worker = threading.Thread(target=lambda: other.append(client._session()))
    worker.start()
    worker.join()
    assert first is again and other[0] is not first and made == [first, other[0]]
    for session in made:
        assert session.headers["Authorization"] == f"Token {API_KEY}"
        for url in ("http://127.0.0.1:9/v3/", "https://api.backgroundcut.co/v3/"):
            retries = session.get_adapter(url).max_retries  # type: ignore[attr-defined]
            assert retries.total == 0 and retries.read is False
    client.close()


def test_repr_and_config_errors_never_show_the_key() -> None:
    client = BackgroundCutClient(api_config("http://127.0.0.1:9"), API_KEY)
    assert API_KEY not in repr(client) and "127.0.0.1:9" in repr(client)
    bad_key = "sk-line\nbreak-SECRET"
    with pytest.raises(ConfigError) as caught:
        BackgroundCutClient(api_config("http://127.0.0.1:9"), bad_key)
    assert bad_key not in str(caught.value) and "api key" in str(caught.value)
    with pytest.raises(ConfigError):
        BackgroundCutClient(api_config("http://127.0.0.1:9"), "   ")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("Café au lait.PNG", "Cafe_au_lait.PNG"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\shot 1.webp", "shot_1.webp"),
        (".hidden.png", "hidden.png"),
        ("写真.jpg", "image.jpg"),
        ("noext", "noext"),
        ("x" * 300 + ".avif", "x" * 95 + ".avif"),
    ],
)
def test_safe_upload_name(name: str, expected: str) -> None:
    assert safe_upload_name(name) == expected
