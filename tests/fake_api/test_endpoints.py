"""The four API endpoints over real HTTP: success paths and every error status."""

from __future__ import annotations

import http.client
import io
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer

from .conftest import (
    PROCESS_URL,
    UPLOAD_URL,
    USAGE_URL,
    Client,
    FakeClock,
    image_bytes,
)


def test_upload_stores_the_file_under_upload_path(client: Client, api: FakeApiServer) -> None:
    data = image_bytes()
    response = client.upload(data, name="photo.jpg", upload_path="proj/job1")
    assert response.status_code == 200
    assert response.json() == {"file_paths": ["proj/job1/photo.jpg"]}
    assert api.local_path("proj/job1/photo.jpg").read_bytes() == data


def test_upload_sanitises_names_and_never_overwrites(client: Client) -> None:
    first = client.upload_ok(name="my photo.jpg", upload_path="p/")
    second = client.upload_ok(name="my photo.jpg", upload_path="p")
    assert (first, second) == ("p/my_photo.jpg", "p/my_photo-1.jpg")


@pytest.mark.parametrize(
    ("data", "files", "detail"),
    [
        ({}, {"files": ("a.jpg", b"x")}, "upload_path"),
        ({"upload_path": "p"}, {}, "files"),
        ({"upload_path": "../p"}, {"files": ("a.jpg", b"x")}, "upload_path"),
    ],
)
def test_upload_rejects_missing_fields(
    client: Client, data: dict[str, str], files: dict[str, Any], detail: str
) -> None:
    response = client.session.post(client.url(UPLOAD_URL), data=data or {"x": "1"}, files=files)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


def test_process_renders_every_variant_in_order(client: Client) -> None:
    path = client.upload_ok()
    response = client.process(
        path,
        {"output_file_path": "proj/out/full.png"},
        {"output_file_path": "proj/out/thumb.webp", "format": "webp", "max_resolution": 5000,
         "autocrop": True},
        {"output_file_path": "proj/out/white.jpg", "format": "jpeg",
         "background_color": "#ffffff"},
    )
    assert response.status_code == 200, response.text
    outputs = response.json()["output_file_paths"]
    assert outputs == ["proj/out/full.png", "proj/out/thumb.webp", "proj/out/white.jpg"]
    formats = [Image.open(io.BytesIO(client.download(p).content)).format for p in outputs]
    assert formats == ["PNG", "WEBP", "JPEG"]
    thumb = Image.open(io.BytesIO(client.download(outputs[1]).content))
    assert thumb.width * thumb.height <= 5000


def test_an_upload_can_be_processed_again(client: Client) -> None:
    path = client.upload_ok()
    for name in ("a.png", "b.png"):
        assert client.process(path, {"output_file_path": f"p/{name}"}).status_code == 200


def test_download_streams_bytes_with_content_length(client: Client) -> None:
    data = image_bytes("PNG")
    path = client.upload_ok(data, name="x.png")
    response = client.download(path)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Type"] == "image/png"


def test_download_paths_are_percent_decoded_with_slashes_kept(client: Client) -> None:
    path = client.upload_ok()
    response = client.process(path, {"output_file_path": "p/sub dir/ünïcode #1?.png"})
    assert response.status_code == 200
    encoded = "p/sub%20dir/%C3%BCn%C3%AFcode%20%231%3F.png"
    assert client.download(encoded).status_code == 200
    assert client.download("p%2Fsub%20dir%2F%C3%BCn%C3%AFcode%20%231%3F.png").status_code == 200
    assert client.download("p/sub dir/other.png").status_code == 404


def test_usage_counts_live_files(client: Client) -> None:
    assert client.usage().json()["files"] == 0
    data = image_bytes()
    client.upload_ok(data)
    usage = client.usage().json()
    assert usage["files"] == 1
    assert usage["used_bytes"] == len(data)
    assert usage["quota_bytes"] == 10 * 1024**3


@pytest.mark.parametrize(
    ("variant", "field"),
    [({"format": "gif"}, "format"), ({"max_resolution": 100}, "max_resolution"),
     ({"quality": "best"}, "quality"), ({"background_color": "white"}, "background_color"),
     ({"output_compression": 0}, "output_compression"), ({"autocrop": "no"}, "autocrop")],
)
def test_process_rejects_bad_fields_with_400(
    client: Client, variant: dict[str, Any], field: str
) -> None:
    path = client.upload_ok()
    response = client.process(path, {"output_file_path": "p/o.png", **variant})
    assert response.status_code == 400
    assert field in response.json()["detail"]


def test_process_rejects_malformed_json(client: Client) -> None:
    response = client.session.post(client.url(PROCESS_URL), data=b"{not json",
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed JSON")


def test_process_rejects_an_unreadable_image(client: Client) -> None:
    path = client.upload_ok(b"GIF89a this is no image", name="fake.jpg")
    response = client.process(path, {"output_file_path": "p/o.png"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid image format. Supported: JPEG, PNG, WebP, AVIF"}


def test_process_of_an_unknown_file_is_404(client: Client) -> None:
    response = client.process("nowhere/x.jpg", {"output_file_path": "p/o.png"})
    assert response.status_code == 404
    assert "nowhere/x.jpg" in response.json()["detail"]


def test_download_of_an_unknown_file_is_404(client: Client) -> None:
    response = client.download("nowhere/x.png")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("header", [None, "Token wrong-key", "Bearer test-key", "Token"])
@pytest.mark.parametrize("path", [UPLOAD_URL, PROCESS_URL, USAGE_URL, "/v3/files/a/b.png"])
def test_every_endpoint_requires_the_api_key(
    api: FakeApiServer, header: str | None, path: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    method = "GET" if path in (USAGE_URL,) or path.startswith("/v3/files/") else "POST"
    response = requests.request(method, api.base_url + path, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"
    assert "detail" in response.json()
    assert "test-key" not in response.text


def test_credits_exhausted_answers_402_to_process_only(client: Client, api: FakeApiServer) -> None:
    path = client.upload_ok()
    api.update(credits_exhausted=True)
    response = client.process(path, {"output_file_path": "p/o.png"})
    assert response.status_code == 402
    assert response.json()["detail"]
    assert client.usage().status_code == 200
    assert client.upload(image_bytes()).status_code == 200


def test_max_upload_bytes_answers_413(tmp_path: Path) -> None:
    options = FakeApiOptions(max_upload_bytes=1000)
    with FakeApiServer(options, storage_dir=tmp_path) as api:
        client = Client(api)
        response = client.upload(b"x" * 1001)
        assert response.status_code == 413
        assert "1000" in response.json()["detail"]
        assert client.upload(b"x" * 1000).status_code == 200  # same connection still usable
        assert client.usage().json()["files"] == 1


def test_wrong_method_and_unknown_path(client: Client) -> None:
    assert client.session.get(client.url(UPLOAD_URL)).status_code == 405
    response = client.session.get(client.url("/v3/file-ops/usage"))  # no trailing slash
    assert response.status_code == 404
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", UPLOAD_URL, {}),  # 401 before the body is read
        ("POST", PROCESS_URL, {"Authorization": "Token test-key"}),  # 400 bad JSON
        ("POST", "/v3/nowhere/", {"Authorization": "Token test-key"}),  # 404 unknown path
    ],
)
def test_keep_alive_survives_error_answers_with_unread_bodies(
    api: FakeApiServer, method: str, path: str, headers: dict[str, str]
) -> None:
    host, port = api.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=b"z" * 300_000, headers=headers)
        first = connection.getresponse()
        first.read()
        assert first.status >= 400
        socket_before = connection.sock
        connection.request("GET", USAGE_URL, headers={"Authorization": "Token test-key"})
        second = connection.getresponse()
        assert json.loads(second.read())["files"] == 0
        assert connection.sock is socket_before  # the same TCP connection served both
    finally:
        connection.close()


def test_files_expire(tmp_path: Path, clock: FakeClock) -> None:
    with FakeApiServer(FakeApiOptions(expiry_s=60), storage_dir=tmp_path, clock=clock) as api:
        client = Client(api)
        path = client.upload_ok()
        clock.advance(59)
        assert client.download(path).status_code == 200
        assert client.process(path, {"output_file_path": "p/o.png"}).status_code == 200
        clock.advance(1)
        assert client.download(path).status_code == 404
        assert client.process(path, {"output_file_path": "p/o2.png"}).status_code == 404
        assert client.download("p/o.png").status_code == 200  # younger
        assert client.usage().json()["files"] == 1
        assert not api.local_path(path).exists()
