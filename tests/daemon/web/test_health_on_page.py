"""A stuck job is seen on the status page and in ``/api/status``, not only by ``/healthz``:
the page's API section says why the daemon is not healthy instead of "Running."."""

from __future__ import annotations

from pathlib import Path

import requests

from bgcut_watchd.commands.status import collect_status
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, wait_for, write_config


def test_a_stuck_job_shows_on_the_page_and_in_api_status(tmp_path: Path,
                                                         emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, http={"listen": "127.0.0.1:0"},
                          api={"process_timeout_s": 10})
    emulator.update(latency_process_s=4)  # the job waits in its process call
    with InProcessDaemon(config) as daemon:
        service = daemon.service
        service._status_document = collect_status  # what `run` gives it: `status --json`
        wait_for(lambda: service.monitor.url, what="the listener")
        url = service.monitor.url
        assert url is not None
        assert "Running." in requests.get(url + "?part=main", timeout=10).text
        service.stall_limit_s = lambda: 0.5  # type: ignore[method-assign]  # a short limit
        make_valid_jpeg(tmp_path / "studio" / "inbox", "slow.jpg")
        wait_for(lambda: requests.get(url + "healthz", timeout=10).status_code == 503, 20,
                 what="/healthz saying 503")
        page = requests.get(url + "?part=main", timeout=10).text
        assert "Not healthy:</strong> a job has shown no progress for over" in page
        assert "Running." not in page
        wait_for(lambda: (requests.get(url + "api/status", timeout=10).json().get("health")
                          or {}).get("ok") is False, 10, what="/api/status saying unhealthy")
        health = requests.get(url + "api/status", timeout=10).json()["health"]
        assert "no progress" in health["reason"]
        emulator.update(latency_process_s=0)
