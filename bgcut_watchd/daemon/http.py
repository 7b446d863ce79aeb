"""The daemon's one HTTP listener: the status page, ``/metrics``, ``/api/status``, ``/healthz``.

Off unless ``[http] listen`` is set. werkzeug's threaded WSGI server runs on a thread of its
own and answers from the daemon's live figures (:class:`Backend`); it never takes a lock the
workers hold for long, so a slow client cannot slow a job. Bounds: at most
``MAX_CONNECTIONS`` connections at once (more are closed at once), ``REQUEST_TIMEOUT_S`` per
socket read, ``REQUEST_DEADLINE_S`` per connection from its accept (then its socket is shut
down, whatever it is doing: a client that sends a header line now and then cannot keep a slot),
request bodies of ``MAX_BODY_BYTES``.

Who may ask: with ``token_file``, every request must carry ``Authorization: Bearer <token>``;
without it (loopback only, the loader makes sure) the ``Host`` header must name a loopback
address (a DNS-rebinding page cannot read it). State-changing requests (requeue, resume) are
POST only and must come from the page itself: same ``Origin``, ``Sec-Fetch-Site`` same-origin,
and the page's CSRF token (an HMAC of its time, valid ``CSRF_MAX_AGE_S``). Each is logged with
the remote address.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from bgcut_watchd.config.model import split_listen
from bgcut_watchd.daemon.web.app import Backend, WebApp

log = logging.getLogger("bgcut_watchd.daemon.http")

MAX_CONNECTIONS = 16
REQUEST_TIMEOUT_S = 10.0
REQUEST_DEADLINE_S = 15.0


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler with a socket timeout and no access log (actions log themselves)."""

    timeout = REQUEST_TIMEOUT_S

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("http: " + message, *args)


class _Server(ThreadedWSGIServer):
    """At most MAX_CONNECTIONS connections at once; more are closed at once."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        deadline = threading.Timer(REQUEST_DEADLINE_S, _cut, (request, client_address))
        deadline.daemon = True
        deadline.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            deadline.cancel()
            self._slots.release()

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("http: " + message, *args)


def _cut(request: socket.socket, client_address: Any) -> None:
    """The connection's deadline passed: shut its socket down (its handler's read or write
    fails at once and the slot is freed)."""
    log.info("http: %s took over %.0fs, connection cut", client_address[0], REQUEST_DEADLINE_S)
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)


class HttpListener:
    """The server and its thread. ``start`` raises OSError when the address cannot be bound."""

    def __init__(self, listen: str, backend: Backend, token: str | None) -> None:
        self.host, self.port = split_listen(listen)
        self.backend = backend
        self.token = token
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str | None:
        """``http://HOST:PORT/`` once listening (the real port when 0 was asked)."""
        if self._server is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.port}/"

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.create_server((self.host, self.port), family=family,
                                  backlog=MAX_CONNECTIONS) as sock:
            port = sock.getsockname()[1]
            app = WebApp(self.backend, token=self.token, port=port, listen_host=self.host)
            self._server = _Server(self.host, port, app, handler=_QuietHandler,
                                   fd=sock.fileno())
        # poll_interval None: the loop sleeps in poll() until a connection comes, no idle
        # wake-ups; stop() wakes it by shutting the listening socket down
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": None}, daemon=True,
                                        name="bgcut-http")
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: ask the loop to end, and wake its wait by shutting the listening
        socket down (Linux wakes a poll() on it; until the loop sees the request it may turn
        once or twice on the failing accept)."""
        if self._server is None or self._thread is None:
            return
        stopper = threading.Thread(target=self._server.shutdown, daemon=True)
        stopper.start()
        with contextlib.suppress(OSError):
            self._server.socket.shutdown(socket.SHUT_RDWR)
        stopper.join(timeout=5)
        self._thread.join(timeout=5)
