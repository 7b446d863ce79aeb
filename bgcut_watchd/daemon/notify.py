"""Notifications: events to a webhook (JSON POST) and to Apprise URLs, never blocking a job.

:meth:`EventNotifier.publish` only appends to a bounded queue per target (the oldest event is
dropped, with a warning, when one is full); each target has a thread of its own that delivers in
order and retries a failed delivery with capped exponential backoff. Quarantines are digested
per folder: the first one opens a window of ``digest_s`` and, when it closes
(:meth:`EventNotifier.flush_due`, from the main loop), one ``quarantined`` event lists every
file of the window. The API key never leaves: every payload is redacted before it is sent.

Events and their payload are documented in the README ("Notifications").
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from bgcut_watchd import __version__
from bgcut_watchd.clock import Clock
from bgcut_watchd.config.model import NotifyConfig
from bgcut_watchd.config.secrets import redact
from bgcut_watchd.daemon.web.words import reason_words
from bgcut_watchd.errors import ConfigError

log = logging.getLogger("bgcut_watchd.daemon.notify")

Event = dict[str, Any]
MAX_QUEUED = 100              # events waiting per target
MAX_FILES_LISTED = 50         # files named in one quarantined event; the rest are counted
RETRY_DELAYS_S = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)  # then the event is dropped
WEBHOOK_TIMEOUT_S = (5.0, 10.0)
STOP_DEADLINE_S = 5.0         # at shutdown, queued events get this long in all


class Target(Protocol):
    """Where events go. ``send`` raises (OSError, requests' errors) when delivery failed."""

    name: str

    def send(self, event: Event, text: str) -> None: ...


class WebhookTarget:
    """POSTs each event as JSON to ``url``; any 2xx answer is a delivery."""

    def __init__(self, url: str, session_factory: Callable[[], requests.Session] = requests.Session,
                 timeout_s: tuple[float, float] = WEBHOOK_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        self.name = f"webhook {parts.scheme}://{parts.hostname}"  # no path: it may hold a token
        self._url = url
        self._session = session_factory()
        self._timeout_s = timeout_s

    def send(self, event: Event, text: str) -> None:
        answer = self._session.post(
            self._url, data=text.encode("utf-8"), timeout=self._timeout_s,
            allow_redirects=False, headers={"Content-Type": "application/json",
                                            "User-Agent": f"bgcut-watchd/{__version__}"})
        with answer:
            if not 200 <= answer.status_code < 300:
                raise OSError(f"HTTP {answer.status_code}")


class AppriseTarget:
    """One Apprise URL (mailto://, slack://, tgram://, ntfys://, json:// ...)."""

    def __init__(self, url: str) -> None:
        import apprise  # the optional extra bgcut-watchd[notify]; the loader checked it is there

        self.name = f"apprise {urlsplit(url).scheme}://"
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ValueError(f"Apprise does not understand this {urlsplit(url).scheme}:// URL "
                             "(see Apprise's list of services)")

    def send(self, event: Event, text: str) -> None:
        body = json.loads(text)  # the redacted payload
        if not self._apprise.notify(title=f"bgcut-watchd: {body['summary']}",
                                    body=_body_text(body)):
            raise OSError("Apprise reported a failed delivery")


def _body_text(event: Event) -> str:
    lines = [str(event["summary"])]
    for item in event.get("files", []):
        lines.append(f"- {item['file']}: {item['reason_text']}")
    if event.get("more"):
        lines.append(f"... and {event['more']} more")
    if event.get("detail"):
        lines.append(f"detail: {event['detail']}")
    lines.append(f"host {event['host']}, {event['at']}")
    return "\n".join(lines)


def targets_for(config: NotifyConfig) -> list[Target]:
    """The configured targets. Raises ConfigError for Apprise URLs Apprise does not take."""
    targets: list[Target] = []
    if config.webhook_url:
        targets.append(WebhookTarget(config.webhook_url))
    problems: list[str] = []
    for index, url in enumerate(config.apprise_urls):
        try:
            targets.append(AppriseTarget(url))
        except ValueError as exc:
            problems.append(f"notify.apprise_urls[{index}]: {exc}")
    if problems:
        raise ConfigError(problems)
    return targets


class _Courier:
    """One target's queue and thread: delivers in order, retrying with backoff."""

    def __init__(self, target: Target, sleep: Callable[[threading.Event, float], bool],
                 retry_delays_s: Sequence[float]) -> None:
        self.target = target
        self._queue: deque[tuple[Event, str]] = deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._deadline_s: float | None = None
        self._sleep = sleep
        self._retry_delays_s = retry_delays_s
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"bgcut-notify-{target.name.split()[0]}")

    def start(self) -> None:
        self._thread.start()

    def put(self, event: Event, text: str) -> None:
        with self._cond:
            if len(self._queue) >= MAX_QUEUED:
                dropped, _ = self._queue.popleft()
                log.warning("%s: too many events waiting, dropped a %s event", self.target.name,
                            dropped["event"])
            self._queue.append((event, text))
            self._cond.notify()

    def stop(self, deadline_s: float) -> None:
        """Deliver what is queued until ``deadline_s`` (monotonic), then end the thread."""
        with self._cond:
            self._deadline_s = deadline_s
            self._stopping.set()
            self._cond.notify()
        self._thread.join(max(0.0, deadline_s - time.monotonic()) + 1.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping.is_set():
                    self._cond.wait()
                if not self._queue:
                    return
                event, text = self._queue.popleft()
            self._deliver(event, text)

    def _deliver(self, event: Event, text: str) -> None:
        for attempt, delay_s in enumerate((*self._retry_delays_s, None), start=1):
            try:
                self.target.send(event, text)
                log.debug("%s: %s event delivered", self.target.name, event["event"])
                return
            except Exception as exc:  # any failure of the target: retry, never raise
                problem = f"{type(exc).__name__}: {exc}"
            if delay_s is None or self._past_deadline(delay_s):
                break
            log.warning("%s: cannot deliver a %s event (attempt %d: %s); retrying in %.0fs",
                        self.target.name, event["event"], attempt, problem, delay_s)
            self._sleep(self._stopping, delay_s)
        log.error("%s: gave up delivering a %s event: %s", self.target.name, event["event"],
                  problem)

    def _past_deadline(self, delay_s: float) -> bool:
        return self._deadline_s is not None and time.monotonic() + delay_s > self._deadline_s


@dataclass
class _Digest:
    opened_s: float
    files: list[dict[str, str]] = field(default_factory=list)
    count: int = 0


class EventNotifier:
    """Builds events and hands them to every target's courier. Thread-safe; raises nothing."""

    def __init__(self, targets: Sequence[Target], digest_s: float, secret: str = "", *,
                 clock: Clock = time.monotonic,
                 retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
                 sleep: Callable[[threading.Event, float], bool] = threading.Event.wait) -> None:
        self.digest_s = digest_s
        self._secret = secret
        self._clock = clock
        self._host = socket.gethostname()
        self._couriers = [_Courier(t, sleep, retry_delays_s) for t in targets]
        self._digests: dict[str, _Digest] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._couriers)

    def start(self) -> None:
        for courier in self._couriers:
            courier.start()

    def stop(self, timeout_s: float = STOP_DEADLINE_S) -> None:
        """Send the open digests now, deliver what is queued within ``timeout_s``, end."""
        self.flush_due(force=True)
        deadline_s = time.monotonic() + timeout_s
        for courier in self._couriers:
            courier.stop(deadline_s)

    def publish(self, kind: str, summary: str, **fields: Any) -> None:
        """Queue one event for every target: ``{"event": kind, "summary": ..., **fields}``."""
        if not self._couriers:
            return
        event: Event = {"event": kind, "summary": summary, **fields, "host": self._host,
                        "at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "daemon": f"bgcut-watchd {__version__}"}
        text = redact(json.dumps(event, ensure_ascii=False), self._secret)
        for courier in self._couriers:
            courier.put(event, text)

    def quarantined(self, folder: str, relpath: str, reason: str | None, detail: str) -> None:
        """One quarantined input: into its folder's digest (sent at once when digest_s is 0)."""
        if not self._couriers:
            return
        with self._lock:
            digest = self._digests.setdefault(folder, _Digest(self._clock()))
            digest.count += 1
            if len(digest.files) < MAX_FILES_LISTED:
                digest.files.append({"file": relpath, "reason": reason or "unknown",
                                     "reason_text": reason_words(reason), "detail": detail})
        if self.digest_s <= 0:
            self.flush_due()

    def flush_due(self, *, force: bool = False) -> None:
        """Send every digest whose window has closed (all of them with ``force``)."""
        now_s = self._clock()
        with self._lock:
            due = [(folder, d) for folder, d in self._digests.items()
                   if force or now_s - d.opened_s >= self.digest_s]
            for folder, _ in due:
                del self._digests[folder]
        for folder, digest in due:
            self.publish("quarantined", f"{digest.count} file(s) quarantined in folder {folder}",
                         folder=folder, count=digest.count, files=digest.files,
                         more=digest.count - len(digest.files))
