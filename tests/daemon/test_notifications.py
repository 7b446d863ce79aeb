"""Notifications: a real local webhook receiver (and Apprise's json:// to the same receiver)
hears one digested ``quarantined`` event for a burst of bad files, and ``paused`` then
``resumed`` around a 402 outage of the emulator; the API key is in no payload. The event
builder and the notifier's queue are also tested alone (stalls, retries, a hung target).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd.control.pause import PauseReason, PauseState
from bgcut_watchd.daemon.events import StateWatch
from bgcut_watchd.daemon.notify import EventNotifier, WebhookTarget
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_empty, make_pdf_named_png, make_text_named_jpg, make_truncated_jpeg
from tests.support import API_KEY, InProcessDaemon, drop_images, files_under, wait_for, write_config


class Receiver:
    """A webhook endpoint on loopback: records every JSON body by path; answers ``codes`` in
    turn, then 200."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.raw: list[bytes] = []
        self.codes = list(codes or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.raw.append(raw)
                    receiver.bodies.append((self.path, json.loads(raw)))
                    code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str = "/hook") -> list[dict[str, Any]]:
        with self._lock:
            return [body for p, body in self.bodies if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


def test_a_burst_of_bad_files_makes_one_digested_event(tmp_path: Path, emulator: FakeApiServer,
                                                        receiver: Receiver) -> None:
    config = write_config(tmp_path, emulator.base_url,
                          notify={"webhook_url": receiver.url + "/hook", "digest_s": 3})
    inbox = tmp_path / "studio" / "inbox"
    with InProcessDaemon(config):
        for make in (make_truncated_jpeg, make_text_named_jpg, make_pdf_named_png, make_empty):
            make(inbox)
        wait_for(lambda: sum(e["count"] for e in receiver.events()) >= 4, 20,
                 what="the quarantines announced")
    (event,) = receiver.events()
    assert event["event"] == "quarantined" and event["folder"] == "studio"
    assert event["count"] == 4 and event["more"] == 0
    reasons = {item["file"]: item["reason"] for item in event["files"]}
    assert reasons == {"truncated.jpg": "invalid_image", "notes.jpg": "invalid_image",
                       "document.png": "unsupported_format", "empty.jpg": "empty_file"}
    assert all(item["reason_text"] for item in event["files"])
    assert event["summary"] == "4 file(s) quarantined in folder studio"
    assert {"host", "at", "daemon"} <= set(event)


def test_a_402_outage_is_announced_paused_then_resumed(tmp_path: Path, emulator: FakeApiServer,
                                                        receiver: Receiver) -> None:
    pytest.importorskip("apprise")
    config = write_config(tmp_path, emulator.base_url, notify={
        "webhook_url": receiver.url + "/hook",
        "apprise_urls": [receiver.url.replace("http://", "json://") + "/apprise"]})
    emulator.update(credits_exhausted=True)
    with InProcessDaemon(config):
        drop_images(tmp_path / "studio" / "inbox", 2)
        wait_for(lambda: [e["event"] for e in receiver.events()] == ["paused"], 20,
                 what="the pause announced")
        emulator.update(credits_exhausted=False)
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2, 20,
                 what="both files processed after the outage")
        wait_for(lambda: len(receiver.events()) == 2 and len(receiver.events("/apprise")) == 2,
                 10, what="the resume announced")
    paused, resumed = receiver.events()
    assert (paused["scope"], paused["reason"], paused["folder"]) == ("api", "credits", None)
    assert paused["summary"].startswith("API work paused: the account is out of credits")
    assert resumed["event"] == "resumed" and resumed["reason"] == "credits"
    assert resumed["paused_for_s"] >= 0
    titles = [body["title"] for body in receiver.events("/apprise")]
    assert titles[0].startswith("bgcut-watchd: API work paused") and "resumed" in titles[1]
    assert all(API_KEY.encode() not in raw for raw in receiver.raw)


def _state(reason: PauseReason | None, probe_in_s: float = 60.0) -> PauseState:
    return PauseState(paused=reason is not None, reason=reason, detail="why",
                      probe_in_s=probe_in_s)


def test_state_changes_become_events_once() -> None:
    published: list[tuple[str, dict[str, Any]]] = []
    watch = StateWatch(lambda kind, summary, **fields: published.append((kind, fields)),
                       wall_clock=lambda: 1000.0)
    watch.observe_pauses(_state(PauseReason.AUTH), {})
    watch.observe_pauses(_state(PauseReason.AUTH, 30.0), {})     # renewed: nothing new
    watch.observe_pauses(_state(PauseReason.CREDITS), {"shop": _state(PauseReason.DISK)})
    watch.observe_pauses(_state(None), {})
    watch.observe_stall(True, 2, 65.0)
    watch.observe_stall(True, 2, 65.0)
    watch.observe_stall(False, 0, 65.0)
    watch.observe_stall(True, 1, 65.0)
    assert [(kind, f.get("scope"), f.get("reason")) for kind, f in published] == [
        ("paused", "api", "auth"), ("paused", "api", "credits"), ("paused", "folder", "disk"),
        ("resumed", "api", "credits"), ("resumed", "folder", "disk"),
        ("stuck", None, None), ("stuck", None, None)]
    assert published[2][1]["folder"] == "shop"


def test_a_failed_delivery_is_retried_with_backoff() -> None:
    receiver = Receiver(codes=[500, 503])
    waits: list[float] = []

    def sleep(event: threading.Event, delay_s: float) -> bool:
        waits.append(delay_s)
        return False

    notifier = EventNotifier([WebhookTarget(receiver.url + "/hook")], 0, secret="s3cr3t",
                             retry_delays_s=(0.1, 0.2, 0.4), sleep=sleep)
    notifier.start()
    notifier.publish("stuck", "a job is stuck; key s3cr3t")
    wait_for(lambda: len(receiver.raw) == 3, 10, what="three attempts")
    notifier.stop()
    receiver.server.shutdown()
    assert waits == [0.1, 0.2]
    assert receiver.events()[-1]["summary"] == "a job is stuck; key ***"


class _Stuck:
    name = "stuck target"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[str] = []

    def send(self, event: dict[str, Any], text: str) -> None:
        self.release.wait(10)
        self.sent.append(event["summary"])


def test_publishing_never_waits_for_a_hung_target() -> None:
    target = _Stuck()
    notifier = EventNotifier([target], 0)
    notifier.start()
    for n in range(150):  # far more than a queue holds: the oldest are dropped
        notifier.publish("stuck", f"event {n}")
    target.release.set()
    notifier.stop(timeout_s=10)
    assert len(target.sent) <= 101 and target.sent[-1] == "event 149"


def test_an_apprise_url_apprise_does_not_take_is_a_configuration_error(
        tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("apprise")
    from bgcut_watchd.cli import main

    config = write_config(tmp_path, emulator.base_url,
                          notify={"apprise_urls": ["json://127.0.0.1:9/", "nonsense://x"]})
    assert main(["check-config", "-c", str(config)]) == 78
    assert "notify.apprise_urls[1]: Apprise does not understand this nonsense:// URL" in \
        capsys.readouterr().err


def test_a_stalled_worker_is_announced_stuck(tmp_path: Path, emulator: FakeApiServer,
                                              receiver: Receiver) -> None:
    """End to end: a process call that outlasts the quiet limit (shortened here to 0.5 s on
    the service: the daemon's own is at least its longest call plus 5 s) makes one ``stuck``
    event at the webhook."""
    config = write_config(tmp_path, emulator.base_url, api={"process_timeout_s": 10},
                          notify={"webhook_url": receiver.url + "/hook"})
    emulator.update(latency_process_s=4)
    with InProcessDaemon(config) as daemon:
        daemon.service.stall_limit_s = lambda: 0.5  # type: ignore[method-assign]
        drop_images(tmp_path / "studio" / "inbox", 1)
        wait_for(lambda: any(e["event"] == "stuck" for e in receiver.events()), 15,
                 what="a stuck event")
        emulator.update(latency_process_s=0)
    (stuck,) = [e for e in receiver.events() if e["event"] == "stuck"]
    assert stuck["jobs_in_progress"] == 1 and stuck["quiet_limit_s"] == 0.5
    assert stuck["summary"].startswith("a job has shown no progress for over")
