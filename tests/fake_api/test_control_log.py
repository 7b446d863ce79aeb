"""The control endpoint and the request log (in memory, over HTTP and as a JSONL file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer
from bgcut_watchd.fake_api.credits import Pricing, call_credits
from tests.support import all_requests

from .conftest import PROCESS_URL, UPLOAD_URL, Client, FakeClock


def test_the_log_records_every_api_request_in_order(client: Client, api: FakeApiServer) -> None:
    path = client.upload_ok()
    client.process(path, {"output_file_path": "p/out.png"})
    client.download("p/out.png")
    client.usage()
    client.session.get(client.url("/v3/elsewhere/"))
    entries = all_requests(api)  # each is logged once answered: the last maybe after we read it
    assert [(e.method, e.endpoint, e.status) for e in entries] == [
        ("POST", "upload", 200), ("POST", "process", 200), ("GET", "download", 200),
        ("GET", "usage", 200), ("GET", "unknown", 404),
    ]
    assert [e.path for e in entries[:2]] == [UPLOAD_URL, PROCESS_URL]
    assert [e.file_path for e in entries[:3]] == [path, path, "p/out.png"]
    assert all(e.fault is None for e in entries)
    stamps = [e.timestamp_s for e in entries]
    assert stamps == sorted(stamps)
    assert all(e.duration_s >= 0 for e in entries)


def test_timestamps_come_from_the_injected_clock(tmp_path: Path, clock: FakeClock) -> None:
    with FakeApiServer(storage_dir=tmp_path, clock=clock) as api:
        client = Client(api)
        client.usage()
        clock.advance(5)
        client.usage()
        assert [e.timestamp_s for e in all_requests(api)] == [1000.0, 1005.0]


def test_the_log_is_readable_and_clearable_over_http(client: Client, api: FakeApiServer) -> None:
    client.usage()
    all_requests(api)  # logged once answered: maybe after our next request is served
    log = requests.get(f"{api.base_url}/_control/log", timeout=10).json()
    assert len(log) == 1
    assert log[0]["endpoint"] == "usage" and log[0]["status"] == 200 and log[0]["fault"] is None
    assert set(log[0]) >= {"method", "path", "timestamp_s", "duration_s"}
    assert requests.post(f"{api.base_url}/_control/reset-log", timeout=10).status_code == 200
    assert requests.get(f"{api.base_url}/_control/log", timeout=10).json() == []
    assert api.requests() == []


def test_reset_log_from_python(client: Client, api: FakeApiServer) -> None:
    client.usage()
    all_requests(api)  # logged once answered: a reset before that would leave it in the log
    api.reset_log()
    client.usage()
    assert len(all_requests(api)) == 1


def test_request_log_file_gets_one_json_line_per_request(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    options = FakeApiOptions(request_log=log_file, fail_429=1.0)
    with FakeApiServer(options, storage_dir=tmp_path / "s") as api:
        client = Client(api)
        client.usage()
        client.usage()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(x["endpoint"], x["status"], x["fault"]) for x in lines] == [("usage", 429, "429")] * 2


def test_control_get_shows_the_options(api: FakeApiServer) -> None:
    answer = requests.get(f"{api.base_url}/_control/", timeout=10).json()
    assert answer["seed"] == 7
    assert answer["expiry_s"] == 7200
    assert answer["fail_reset"] == 0.0


def test_control_post_is_a_partial_update(api: FakeApiServer) -> None:
    requests.post(f"{api.base_url}/_control/", json={"fail_5xx": 0.25}, timeout=10)
    requests.post(f"{api.base_url}/_control", json={"retry_after_s": 9}, timeout=10)
    options = api.options
    assert (options.fail_5xx, options.retry_after_s, options.seed) == (0.25, 9, 7)


@pytest.mark.parametrize("body", [b"[1]", b"{nope", b'{"fail_5xx": 2}', b'{"no_such": 1}'])
def test_control_post_rejects_bad_changes(api: FakeApiServer, body: bytes) -> None:
    answer = requests.post(f"{api.base_url}/_control/", data=body, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["detail"]
    assert api.options == FakeApiOptions(seed=7)


def test_control_ignores_the_api_key_and_is_not_logged(api: FakeApiServer) -> None:
    assert requests.get(f"{api.base_url}/_control/", timeout=10).status_code == 200
    assert requests.get(f"{api.base_url}/_control/nothing", timeout=10).status_code == 404
    assert api.requests() == []


def test_update_from_python_validates(api: FakeApiServer) -> None:
    with pytest.raises(ValueError, match="fail_reset"):
        api.update(fail_reset=3)
    assert api.update(fail_reset=1).fail_reset == 1.0


def test_process_entries_say_how_many_variants_were_asked_for_and_what_was_charged(
        client: Client, api: FakeApiServer) -> None:
    path = client.upload_ok()
    two = [{"output_file_path": "p/a.png"},
           {"output_file_path": "p/b.webp", "format": "webp", "autocrop": True}]
    assert client.process(path, *two).status_code == 200
    assert client.process(path, {"output_file_path": "p/c.png", "quality": "ultra"}
                          ).status_code == 400
    api.update(credits_exhausted=True)
    assert client.process(path, two[0]).status_code == 402
    entries = all_requests(api)
    assert [(e.endpoint, e.variants) for e in entries] == [
        ("upload", None), ("process", 2), ("process", 1), ("process", 1)]
    charged = call_credits(Pricing(), 400 * 300, [(12_000_000, False), (12_000_000, True)])
    assert [e.credits for e in entries] == [None, pytest.approx(charged), 0.0, 0.0]
    assert api.usage()["credits_charged"] == pytest.approx(charged)
    log = requests.get(f"{api.base_url}/_control/log", timeout=10).json()
    assert [(x["variants"], x["credits"]) for x in log[:2]] == [(None, None),
                                                                (2, pytest.approx(charged))]
