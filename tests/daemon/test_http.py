"""The listener's rules, with werkzeug's test client on a fake backend (who may ask, what is
refused, bounds), and with real daemons: off by default, /healthz, /api/status."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest
import requests
from werkzeug.test import Client

from bgcut_watchd.daemon.status import read_status
from bgcut_watchd.daemon.web.app import WebApp
from bgcut_watchd.daemon.web.page import PageData
from bgcut_watchd.fake_api import FakeApiServer
from tests.support import REPO, DaemonProcess, InProcessDaemon, wait_for, write_config

PORT = 9464
HOST = f"127.0.0.1:{PORT}"


class FakeBackend:
    def __init__(self) -> None:
        self.requeued: list[tuple[str, str | None]] = []
        self.healthy = True

    def page_data(self) -> PageData:
        from datetime import datetime

        return PageData(host="h", version="v", now=datetime.now(), api_pause=None, folders=[],
                        jobs=[])

    def metrics_text(self) -> bytes:
        return b"# metrics\n"

    def status_document(self) -> dict[str, Any]:
        return {"daemon": {"running": True}}

    def health(self) -> tuple[bool, str]:
        return self.healthy, "ok" if self.healthy else "a job is stuck"

    def thumbnail(self, job_id: str, which: str) -> bytes | None:
        return None

    def requeue(self, folder: str, key: str | None) -> int:
        self.requeued.append((folder, key))
        return 1

    def resume(self) -> bool:
        return False


def client(token: str | None = None) -> tuple[Client, FakeBackend, WebApp]:
    backend = FakeBackend()
    app = WebApp(backend, token=token, port=PORT, listen_host="127.0.0.1")
    return Client(app), backend, app


def test_reads_need_a_loopback_host_name_without_a_token() -> None:
    web, _, _ = client()
    assert web.get("/", headers={"Host": HOST}).status_code == 200
    assert web.get("/metrics", headers={"Host": f"localhost:{PORT}"}).status_code == 200
    # a DNS-rebinding page names its own host: refused
    assert web.get("/api/status", headers={"Host": f"evil.example:{PORT}"}).status_code == 421
    assert web.get("/nothing", headers={"Host": HOST}).status_code == 404
    assert web.get("/requeue", headers={"Host": HOST}).status_code == 405


def test_a_token_is_required_on_every_path_when_configured() -> None:
    web, _, _ = client(token="t0ken")
    assert web.get("/healthz", headers={"Host": "studio:9464"}).status_code == 401
    wrong = {"Host": "studio:9464", "Authorization": "Bearer nope"}
    assert web.get("/metrics", headers=wrong).status_code == 401
    right = {"Host": "studio:9464", "Authorization": "Bearer t0ken"}
    assert web.get("/metrics", headers=right).data == b"# metrics\n"


def test_state_changes_need_post_the_page_origin_and_its_token() -> None:
    web, backend, app = client()
    origin = {"Host": HOST, "Origin": f"http://{HOST}"}
    form = {"folder": "studio", "file": "a2V5", "csrf": app.csrf.issue()}
    assert web.post("/requeue", headers=origin, data={**form, "csrf": "1.bad"}).status_code == 403
    cross = {**origin, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert web.post("/requeue", headers=cross, data=form).status_code == 403
    assert web.post("/requeue", headers={**origin, "Sec-Fetch-Site": "cross-site"},
                    data=form).status_code == 403
    assert backend.requeued == []
    answer = web.post("/requeue", headers={**origin, "Sec-Fetch-Site": "same-origin"}, data=form)
    assert (answer.status_code, answer.headers["Location"]) == (303, "/?done=requeued&n=1")
    assert backend.requeued == [("studio", "a2V5")]
    huge = {**form, "file": "x" * 100_000}
    assert web.post("/requeue", headers=origin, data=huge).status_code == 413
    resumed = web.post("/resume", headers=origin, data={"csrf": app.csrf.issue()})
    assert resumed.headers["Location"] == "/?done=not-paused"


def test_healthz_says_503_when_unhealthy() -> None:
    web, backend, _ = client()
    assert web.get("/healthz", headers={"Host": HOST}).status_code == 200
    backend.healthy = False
    answer = web.get("/healthz", headers={"Host": HOST})
    assert (answer.status_code, answer.text.strip()) == (503, "a job is stuck")


def test_the_page_forbids_framing_and_outside_assets() -> None:
    web, _, _ = client()
    answer = web.get("/", headers={"Host": HOST})
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "http://" not in answer.text and "https://" not in answer.text
    assert web.get("/static/page.js", headers={"Host": HOST}).status_code == 200


def test_nothing_listens_by_default(tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url)
    with DaemonProcess(config) as daemon:
        wait_for(lambda: read_status(tmp_path / "state"), 20, what="the first status report")
        assert daemon.proc is not None
        listening = [c for c in psutil.Process(daemon.proc.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening == []
        assert read_status(tmp_path / "state")["http"] is None  # type: ignore[index]


def test_healthz_follows_the_main_loop(tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, http={"listen": "127.0.0.1:0"})
    with InProcessDaemon(config) as daemon:
        wait_for(lambda: daemon.service.monitor.url, 10, what="the listener")
        service = daemon.service
        url = f"{service.monitor.url}healthz"
        assert requests.get(url, timeout=5).status_code == 200
        # Hold the loop at the start of its next turn, so no turn resets the clock below (one
        # did, about one run in fifty, between the change and the request).
        entered, release = threading.Event(), threading.Event()
        real_tick = service.tick

        def held_tick() -> None:
            entered.set()
            release.wait(30)
            real_tick()

        service.tick = held_tick  # type: ignore[method-assign]
        try:
            assert entered.wait(10)
            service._last_tick_s -= 60  # as if the loop had hung a minute ago
            answer = requests.get(url, timeout=5)
        finally:
            release.set()
        assert answer.status_code == 503 and "main loop" in answer.text
        wait_for(lambda: requests.get(url, timeout=5).status_code == 200,
                 what="healthy again once the loop turns")


@pytest.mark.slow
def test_api_status_is_the_status_json(tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, http={"listen": "[::1]:0"})
    with DaemonProcess(config):
        wait_for(lambda: (read_status(tmp_path / "state") or {}).get("http"), 20,
                 what="the listener")
        url = read_status(tmp_path / "state")["http"]  # type: ignore[index]
        assert url.startswith("http://[::1]:")
        served = requests.get(url + "api/status", timeout=10).json()
        printed = json.loads(subprocess.run(
            [sys.executable, "-m", "bgcut_watchd", "status", "--json", "-c", str(config)],
            capture_output=True, text=True, check=True, timeout=30,
            env={**os.environ, "PYTHONPATH": str(REPO)}).stdout)
    assert served["daemon"]["running"] is True
    assert served == printed


def _healthz_answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False  # every slot taken: the connection was closed at once


def test_slow_clients_cannot_hold_every_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """16 connections that send a header line now and then, never ending their request, are
    cut at the whole-request deadline: /healthz answers again within it and a margin."""
    from bgcut_watchd.daemon import http

    monkeypatch.setattr(http, "REQUEST_DEADLINE_S", 3.0)
    listener = http.HttpListener("127.0.0.1:0", FakeBackend(), token=None)
    listener.start()
    stop = threading.Event()
    socks = [socket.create_connection(("127.0.0.1", int(listener.url.rsplit(":", 1)[1][:-1])))
             for _ in range(http.MAX_CONNECTIONS)]

    def slow_loris(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while not stop.wait(1.0):  # a header line a second, far below the read timeout
                sock.sendall(b"X-Slow: 1\r\n")

    threads = [threading.Thread(target=slow_loris, args=(s,), daemon=True) for s in socks]
    try:
        for thread in threads:
            thread.start()
        url = f"{listener.url}healthz"
        wait_for(lambda: not _healthz_answers(url), 5, what="every slot taken")
        taken_at = time.monotonic()
        wait_for(lambda: _healthz_answers(url), 3.0 + 4.0, what="/healthz answering again")
        assert time.monotonic() - taken_at < 3.0 + 4.0
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        listener.stop()
