"""``/metrics`` after a mixed run, read with prometheus_client's own parser: the counters agree
with the emulator's request log and with what the folders hold.

A real daemon (the Service, in-process) with the listener on port 0, the real emulator failing
a fifth of its requests with 503, good images, one duplicate and two invalid files.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bgcut_watchd.daemon.status import read_status
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_text_named_jpg, make_truncated_jpeg
from tests.support import InProcessDaemon, drop_images, files_under, wait_for, write_config

GOOD = 4


def samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample by name, then by its sorted labels."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    return samples(requests.get(url + "metrics", timeout=10).text)


def jobs_of(found: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> dict[str, float]:
    return {dict(k)["outcome"]: v for k, v in found["bgcut_jobs_total"].items()}


def settled(found: dict[str, dict[tuple[tuple[str, str], ...], float]],
            expected: dict[str, int]) -> bool:
    busy = sum(found["bgcut_jobs_in_progress"].values()) + sum(
        found["bgcut_files_waiting"].values())
    return jobs_of(found) == expected and busy == 0


def test_metrics_agree_with_the_request_log_and_the_folders(tmp_path: Path,
                                                            emulator: FakeApiServer) -> None:
    emulator.update(fail_5xx=0.2)
    config = write_config(tmp_path, emulator.base_url, http={"listen": "127.0.0.1:0"},
                          retry={"max_attempts": 12})
    inbox = tmp_path / "studio" / "inbox"
    with InProcessDaemon(config) as daemon:
        wait_for(lambda: (read_status(tmp_path / "state") or {}).get("http"), 10,
                 what="the listener's address in status.json")
        url = daemon.service.monitor.url
        assert url is not None
        drop_images(inbox, GOOD)
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == GOOD, 30,
                 what="the good images archived")
        shutil.copy(tmp_path / "studio" / "archive" / "pic-0.jpg", inbox / "again.jpg")
        make_truncated_jpeg(inbox)
        make_text_named_jpg(inbox)
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == GOOD + 1
                 and len(files_under(tmp_path / "studio" / "quarantine")) == 4, 30,
                 what="the duplicate archived and two inputs quarantined")
        expected = {"done": GOOD, "duplicate": 1, "quarantined": 2}
        # the counters move just after the files do, the gauges once the workers are free
        wait_for(lambda: settled(scrape(url), expected), 10, what="the figures settled")
        text = requests.get(url + "metrics", timeout=10).text
    found = samples(text)
    assert jobs_of(found) == expected
    log = Counter((e.endpoint, str(e.status) if e.status is not None else "error")
                  for e in emulator.requests())
    counted = {(dict(k)["endpoint"], dict(k)["code"]): v
               for k, v in found["bgcut_api_requests_total"].items()}
    assert counted == dict(log)
    assert any(code == "503" for _, code in counted)  # the run was mixed indeed
    per_endpoint = Counter[str]()
    for (endpoint, _), count in log.items():
        per_endpoint[endpoint] += count
    histogram = {dict(k)["endpoint"]: v
                 for k, v in found["bgcut_api_request_duration_seconds_count"].items() if v}
    assert histogram == dict(per_endpoint)
    assert found["bgcut_files_quarantined"] == {(("folder", "studio"),): 2.0}
    assert found["bgcut_files_waiting"] == {(("folder", "studio"),): 0.0}
    assert found["bgcut_jobs_in_progress"] == {(("folder", "studio"),): 0.0}
    assert found["bgcut_paused"][(("reason", "credits"), ("scope", "api"))] == 0.0
    assert found["bgcut_last_success_timestamp_seconds"][(("folder", "studio"),)] > 1.6e9
    assert all("pic-" not in line for line in text.splitlines())  # no file names in labels
    # the spend model's count is what the emulator charged (answered 503s cost nothing)
    charged = float(emulator.usage()["credits_charged"])
    today = found["bgcut_credits_spent_today"][(("folder", "studio"),)]
    assert today == pytest.approx(charged) and charged > 0
    assert found["bgcut_credits_spent_this_month"][(("folder", "studio"),)] >= today
