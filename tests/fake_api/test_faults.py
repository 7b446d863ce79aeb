"""Every fault switch over real HTTP, and the control endpoint flipping them while running."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import requests
import urllib3

from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer, faults
from tests.support import all_requests

from .conftest import USAGE_URL, Client, image_bytes


def statuses(client: Client, count: int) -> list[int]:
    return [client.usage().status_code for _ in range(count)]


def test_fail_reset_drops_the_connection_without_answer(client: Client, api: FakeApiServer) -> None:
    api.update(fail_reset=1.0)
    with pytest.raises(requests.ConnectionError):
        client.usage()
    (entry,) = all_requests(api)
    assert (entry.endpoint, entry.status, entry.fault) == ("usage", None, "reset")
    api.update(fail_reset=0.0)
    assert client.usage().status_code == 200


def test_fail_reset_after_an_upload_body_was_sent(client: Client, api: FakeApiServer) -> None:
    api.update(fail_reset=1.0)
    with pytest.raises(requests.ConnectionError):
        client.upload(image_bytes())
    api.update(fail_reset=0.0)
    assert client.usage().json()["files"] == 0


def test_fail_truncate_sends_fewer_bytes_than_content_length(
    client: Client, api: FakeApiServer
) -> None:
    data = image_bytes("PNG")
    path = client.upload_ok(data, name="x.png")
    api.update(fail_truncate=1.0)
    response = client.download(path, stream=True)
    assert response.status_code == 200
    announced = int(response.headers["Content-Length"])
    assert announced == len(data)
    received = bytearray()
    with pytest.raises(urllib3.exceptions.ProtocolError):
        while chunk := response.raw.read(1024, decode_content=False):
            received += chunk
    assert 0 < len(received) < announced
    assert bytes(received) == data[: len(received)]
    assert all_requests(api)[-1].fault == "truncate"


def test_fail_truncate_applies_to_downloads_only(client: Client, api: FakeApiServer) -> None:
    api.update(fail_truncate=1.0)
    assert client.upload(image_bytes()).status_code == 200
    assert client.usage().status_code == 200


@pytest.mark.parametrize(("field", "status"), [("fail_5xx", 503), ("fail_429", 429)])
def test_shares_of_zero_and_one_are_exact(
    client: Client, api: FakeApiServer, field: str, status: int
) -> None:
    api.update(**{field: 1.0})
    assert statuses(client, 50) == [status] * 50
    api.update(**{field: 0.0})
    assert statuses(client, 50) == [200] * 50


def test_429_carries_retry_after(client: Client, api: FakeApiServer) -> None:
    api.update(fail_429=1.0, retry_after_s=7)
    response = client.usage()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["detail"]


def test_5xx_answers_json_detail(client: Client, api: FakeApiServer) -> None:
    api.update(fail_5xx=1.0)
    response = client.upload(image_bytes())
    assert response.status_code == 503
    assert response.json()["detail"]
    api.update(fail_5xx=0.0)
    assert client.usage().json()["files"] == 0  # the failed upload stored nothing


def test_a_seeded_share_gives_the_same_sequence(tmp_path: Path) -> None:
    runs = []
    for run in range(2):
        options = FakeApiOptions(fail_5xx=0.5, seed=1234)
        with FakeApiServer(options, storage_dir=tmp_path / str(run)) as api:
            runs.append(statuses(Client(api), 40))
    assert runs[0] == runs[1]
    assert 5 < runs[0].count(503) < 35


def test_fail_404_after_upload_hides_existing_files(client: Client, api: FakeApiServer) -> None:
    path = client.upload_ok()
    api.update(fail_404_after_upload=1.0)
    assert client.process(path, {"output_file_path": "p/o.png"}).status_code == 404
    assert client.download(path).status_code == 404
    assert client.usage().status_code == 200
    assert [e.fault for e in all_requests(api)[-3:]] == ["404", "404", None]
    api.update(fail_404_after_upload=0.0)
    assert client.download(path).status_code == 200


def test_control_endpoint_flips_auth_fail_while_running(client: Client, api: FakeApiServer) -> None:
    assert client.usage().status_code == 200
    answer = requests.post(f"{api.base_url}/_control/", json={"auth_fail": True}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["auth_fail"] is True
    assert client.usage().status_code == 401
    assert client.upload(image_bytes()).status_code == 401
    assert all_requests(api)[-1].fault == "auth_fail"
    requests.post(f"{api.base_url}/_control/", json={"auth_fail": False}, timeout=10)
    assert client.usage().status_code == 200


def test_latency_uses_the_injected_sleep_per_endpoint(tmp_path: Path) -> None:
    slept: list[float] = []
    options = FakeApiOptions(latency_upload_s=1.5, latency_process_s=2.5, latency_download_s=0.5)
    with FakeApiServer(options, storage_dir=tmp_path, sleep=slept.append) as api:
        client = Client(api)
        path = client.upload_ok()
        client.process(path, {"output_file_path": "p/o.png"})
        client.download(path)
        client.usage()
    assert slept == [1.5, 2.5, 0.5, 0.0]


def test_real_latency_delays_the_answer(client: Client, api: FakeApiServer) -> None:
    path = client.upload_ok()
    api.update(latency_download_s=0.2)
    response = client.download(path)
    assert response.elapsed.total_seconds() >= 0.2
    assert all_requests(api)[-1].duration_s >= 0.2


def test_faults_never_touch_the_control_endpoint(api: FakeApiServer) -> None:
    api.update(fail_reset=1.0, fail_5xx=1.0, auth_fail=True)
    assert requests.get(f"{api.base_url}/_control/", timeout=10).status_code == 200
    assert requests.get(f"{api.base_url}/_control/log", timeout=10).json() == []


def test_stop_closes_idle_keep_alive_connections(tmp_path: Path) -> None:
    api = FakeApiServer(storage_dir=tmp_path).start()
    client = Client(api)
    url = client.url(USAGE_URL)
    try:
        assert client.usage().status_code == 200  # leaves a pooled keep-alive connection
    finally:
        api.stop()
    with pytest.raises(requests.ConnectionError):
        client.session.get(url, timeout=5)


# --- the answer's content: an HTML page answered 200, a cut body, dribbling ------------------

def test_fail_html_200_answers_a_download_with_an_html_page(
    client: Client, api: FakeApiServer
) -> None:
    data = image_bytes("PNG")
    path = client.upload_ok(data, name="x.png")
    api.update(fail_html_200=1.0)
    response = client.download(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.content == faults.HTML_PAGE
    assert int(response.headers["Content-Length"]) == len(faults.HTML_PAGE)
    assert all_requests(api)[-1].fault == "html_200"
    assert client.upload(image_bytes()).status_code == 200  # downloads only
    api.update(fail_html_200=0.0)
    assert client.download(path).content == data


def test_fail_cut_body_sends_half_with_a_matching_content_length(
    client: Client, api: FakeApiServer
) -> None:
    data = image_bytes("PNG")
    path = client.upload_ok(data, name="x.png")
    api.update(fail_cut_body=1.0)
    response = client.download(path)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content) == len(data) // 2
    assert response.content == data[: len(data) // 2]  # a complete answer, a cut image
    assert all_requests(api)[-1].fault == "cut_body"
    api.update(fail_cut_body=0.0)
    assert client.download(path).content == data  # same keep-alive connection, still usable


def test_content_faults_leave_the_transport_faults_of_a_seed_unchanged() -> None:
    """The content shares come from their own generator: an earlier seed's 5xx/reset/...
    sequence is what five draws per request from random.Random(seed) gave before them."""
    options = FakeApiOptions(fail_5xx=0.5, fail_cut_body=0.5)
    dice, reference = faults.FaultDice(11), random.Random(11)
    for _ in range(40):
        _reset, fail_5xx, *_ = [reference.random() for _ in range(5)]
        expected = "5xx" if fail_5xx < 0.5 else None
        assert dice.roll("upload", options) == expected


def _timed_download(client: Client, path: str) -> tuple[float, float, bytes]:
    """Seconds to the headers, seconds to the whole body, and the body."""
    started = time.monotonic()
    response = client.download(path, stream=True)
    headers_s = time.monotonic() - started
    body = response.content
    return headers_s, time.monotonic() - started, body


def test_dribble_download_sends_the_body_slowly(client: Client, api: FakeApiServer) -> None:
    data = image_bytes("PNG", size=(120, 90))
    path = client.upload_ok(data, name="x.png")
    rate = len(data) / 1.0  # the whole body in about a second
    api.update(dribble_download_bytes_per_s=rate)
    headers_s, body_s, body = _timed_download(client, path)
    assert body == data
    assert headers_s < 0.5 and body_s >= 0.9
    assert all_requests(api)[-1].fault == "dribble"
    assert client.upload(image_bytes()).elapsed.total_seconds() < 0.5  # downloads only
    api.update(dribble_download_bytes_per_s=0)
    assert _timed_download(client, path)[1] < 0.5


def test_dribble_headers_slows_the_status_line_too(client: Client, api: FakeApiServer) -> None:
    path = client.upload_ok(image_bytes("PNG", size=(40, 30)), name="x.png")
    api.update(dribble_download_bytes_per_s=300, dribble_headers=True)  # ~150 header bytes
    headers_s, _, _ = _timed_download(client, path)
    assert headers_s >= 0.3


def test_dribble_process_sends_its_json_slowly(client: Client, api: FakeApiServer) -> None:
    path = client.upload_ok()
    api.update(dribble_process_bytes_per_s=100)  # about 50 bytes of JSON: 0.5 s
    started = time.monotonic()
    response = client.process(path, {"output_file_path": "p/o.png"})
    assert response.status_code == 200 and response.json()["output_file_paths"] == ["p/o.png"]
    assert time.monotonic() - started >= 0.4
