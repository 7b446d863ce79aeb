"""HTTP/1.1 plumbing of the emulator: routing, bodies, faults on the raw socket, the log.

One handler instance serves one keep-alive connection. Every request body is fully read (or
the connection closed) before the next request, so keep-alive survives early error answers.

Over 300 lines on purpose: the raw-socket faults (resets, truncation, cut bodies, HTML pages
answered 200, dribbling) must sit beside the HTTP plumbing they subvert; the endpoint logic is
in ``app``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import os
import socket
import struct
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import IO, Any, cast
from urllib.parse import unquote

from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
    Unauthorized,
)
from werkzeug.serving import DechunkedInput
from werkzeug.wsgi import LimitedStream

from bgcut_watchd.fake_api import faults
from bgcut_watchd.fake_api.app import INVALID_TOKEN_DETAIL, FakeApiApp, PaymentRequired
from bgcut_watchd.fake_api.control import serve_control
from bgcut_watchd.fake_api.options import FakeApiOptions
from bgcut_watchd.fake_api.reqlog import RequestLogEntry

_LOG = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024
DOWNLOAD_PREFIX = "/v3/files/"
ROUTES = {
    "/v3/file-ops/upload/": ("upload", "POST"),
    "/v3/tools/ai/remove-bg/process/": ("process", "POST"),
    "/v3/file-ops/usage/": ("usage", "GET"),
}


@dataclass
class _Outcome:
    """What one API request turned into, filled in as it is served, then logged."""

    endpoint: str
    path: str
    options: FakeApiOptions
    started_s: float
    fault: str | None = None
    file_path: str | None = None
    variants: int | None = None  # process calls: variants asked for
    credits: float | None = None  # process calls: credits charged


class FakeApiHandler(BaseHTTPRequestHandler):
    """Serves the four API endpoints and ``/_control/`` of one ``FakeApiApp``."""

    protocol_version = "HTTP/1.1"
    server_version = "bgcut-fake-api/3"
    disable_nagle_algorithm = False  # set per connection by ``setup``, from the options
    timeout = 60
    _body: IO[bytes] | None = None
    _status: int | None = None
    _unlogged: _Outcome | None = None
    _dribble_bytes_per_s: float = 0.0  # this answer's rate, 0 for at once
    _dribble_headers: bool = False

    @property
    def app(self) -> FakeApiApp:
        """The emulator state this handler's server carries."""
        return cast(FakeApiApp, getattr(self.server, "app"))  # noqa: B009 - attribute of our server

    def setup(self) -> None:
        """Set ``TCP_NODELAY`` on the accepted socket unless the options leave Nagle on."""
        super().setup()
        if not self.app.options.nagle:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's per-request lines to ``logging`` (debug), not stderr."""
        _LOG.debug("%s - " + format, self.address_string(), *args)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Remember the status for the request log, then send it."""
        self._status = code
        super().send_response(code, message)

    def end_headers(self) -> None:
        """Log the request before its answer leaves, so a client that has it finds it logged."""
        self._log_outcome()
        super().end_headers()

    def flush_headers(self) -> None:
        """Send the buffered status line and headers, dribbled when the options say so."""
        buffered = b"".join(getattr(self, "_headers_buffer", []))
        self._headers_buffer: list[bytes] = []
        if self._dribble_headers:
            self._write(buffered)
        elif buffered:
            self.wfile.write(buffered)

    def _write(self, data: bytes) -> None:
        """Send ``data``: at once, or dribbled in small pieces at this answer's rate."""
        rate = self._dribble_bytes_per_s
        if rate <= 0:
            self.wfile.write(data)
            return
        piece_bytes = max(1, int(rate / 10))  # about ten writes a second
        for start in range(0, len(data), piece_bytes):
            self.app.sleep(piece_bytes / rate)
            self.wfile.write(data[start:start + piece_bytes])

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, ...) as JSON too."""
        self.close_connection = True
        self.send_json(code, {"detail": message or explain or "Bad request."})

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self) -> None:
        self._status = None
        self._dribble_bytes_per_s, self._dribble_headers = 0.0, False
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        self._body = self._open_body()
        if self._body is None:
            self.send_error(400, "Invalid Content-Length header.")
            return
        try:
            if path == "/_control" or path.startswith("/_control/"):
                serve_control(self, path)
            else:
                self._serve_logged(path)
        finally:
            self._drain_body()

    def _open_body(self) -> IO[bytes] | None:
        rfile = cast(IO[bytes], self.rfile)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return cast(IO[bytes], DechunkedInput(rfile))
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        return None if length < 0 else cast(IO[bytes], LimitedStream(rfile, length))

    def _drain_body(self) -> None:
        """Read what is left of the request body so the connection can serve the next one."""
        if self._body is None or self.close_connection:
            return
        try:
            while self._body.read(65536):
                pass
        except (OSError, HTTPException):
            self.close_connection = True

    def read_body(self, max_bytes: int = MAX_JSON_BYTES) -> bytes:
        """The whole request body.

        Raises:
            RequestEntityTooLarge: it is longer than ``max_bytes``.
        """
        assert self._body is not None
        chunks: list[bytes] = []
        size = 0
        while chunk := self._body.read(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise RequestEntityTooLarge(description=f"Body larger than {max_bytes} bytes.")
        return b"".join(chunks)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Send one complete JSON response."""
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self._write(body)

    def send_problem(self, exc: HTTPException) -> None:
        """Answer ``exc`` as ``{"detail": ...}`` with its status and headers."""
        headers: dict[str, str] = {}
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int):
            headers["Retry-After"] = str(retry_after)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Token"
        self.send_json(exc.code or 500, {"detail": exc.description}, headers)

    def _serve_logged(self, path: str) -> None:
        app = self.app
        endpoint, method = _route(path)
        outcome = _Outcome(endpoint, path, app.options, app.clock())
        self._unlogged = outcome
        app.log.begin()
        try:
            self._serve_api(method, outcome)
        except HTTPException as exc:
            try:
                self.send_problem(exc)
            except OSError:  # the client went away; nothing left to tell it
                self.close_connection = True
        except Exception:  # a bug or a dead socket must not kill the connection thread silently
            self._answer_crash()
        finally:
            self._log_outcome()

    def _log_outcome(self) -> None:
        """Append the pending request to the log, once (status None: nothing was answered)."""
        outcome, self._unlogged = self._unlogged, None
        if outcome is None:
            return
        app = self.app
        entry = RequestLogEntry(
            method=self.command, endpoint=outcome.endpoint, path=outcome.path,
            status=self._status, fault=outcome.fault, timestamp_s=outcome.started_s,
            duration_s=app.clock() - outcome.started_s, file_path=outcome.file_path,
            variants=outcome.variants, credits=outcome.credits,
        )
        try:
            app.log.append(entry, outcome.options.request_log)
        except OSError:
            _LOG.warning("cannot append to the request log file %s", outcome.options.request_log)

    def _answer_crash(self) -> None:
        """A bug or a broken socket: log it, answer 500 if nothing was sent, then close."""
        _LOG.debug("request failed", exc_info=True)
        if self._status is None:
            with contextlib.suppress(OSError):
                self.send_problem(InternalServerError(description="Internal server error."))
        self.close_connection = True

    def _serve_api(self, method: str, outcome: _Outcome) -> None:
        endpoint, options = outcome.endpoint, outcome.options
        if endpoint == "unknown":
            raise NotFound(description="Not found.")
        if self.command != method:
            raise MethodNotAllowed(description=f'Method "{self.command}" not allowed.')
        self.app.authenticate(self.headers.get("Authorization"))
        if options.auth_fail:
            outcome.fault = faults.FAULT_AUTH
            raise Unauthorized(description=INVALID_TOKEN_DETAIL)
        body = self.read_body() if endpoint == "process" else b""
        outcome.file_path = _file_hint(endpoint, outcome.path, body)
        if endpoint == "process":
            outcome.variants, outcome.credits = _variant_count(body), 0.0
        self.app.sleep(faults.latency_s(endpoint, options))
        outcome.fault = self.app.dice.roll(endpoint, options)
        self._dribble_bytes_per_s = faults.dribble_bytes_per_s(endpoint, options)
        if self._dribble_bytes_per_s > 0:
            self._dribble_headers = options.dribble_headers
            outcome.fault = outcome.fault or faults.FAULT_DRIBBLE
        if outcome.fault == faults.FAULT_RESET:
            self._log_outcome()
            self._reset_connection()
            return
        faults.raise_fault(outcome.fault, options)
        if endpoint == "process" and options.credits_exhausted:
            outcome.fault = faults.FAULT_CREDITS
            raise PaymentRequired()
        self._serve_endpoint(endpoint, body, options, outcome)

    def _serve_endpoint(
        self, endpoint: str, body: bytes, options: FakeApiOptions, outcome: _Outcome
    ) -> None:
        app = self.app
        if endpoint == "upload":
            assert self._body is not None
            paths = app.upload(self._body, dict(self.headers.items()), options)
            outcome.file_path = paths[0]
            self.send_json(200, {"file_paths": paths})
        elif endpoint == "process":
            _, output_paths, outcome.credits = app.process(body, options)
            self.send_json(200, {"output_file_paths": output_paths})
        elif endpoint == "download":
            entry = app.find(outcome.file_path or "", options)
            if outcome.fault == faults.FAULT_HTML_200:
                self._send_html_page()
            else:
                self._send_file(entry.path, outcome.fault)
        else:
            self.send_json(200, app.usage(options))

    def _send_file(self, path: str, fault: str | None) -> None:
        """Stream a stored file. ``truncate``: announce it whole, send half, close. ``cut_body``:
        announce and send its first half only (the HTTP answer looks complete)."""
        try:
            stream = self.app.storage.local_path(path).open("rb")
        except OSError as exc:
            raise NotFound(description=f"File not found: {path}") from exc
        with stream:
            size_bytes = os.fstat(stream.fileno()).st_size
            cut = fault in (faults.FAULT_TRUNCATE, faults.FAULT_CUT_BODY)
            sent_bytes = size_bytes // 2 if cut else size_bytes
            self.send_response(200)
            content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
            self.send_header("Content-Type", content_type)
            announced = sent_bytes if fault == faults.FAULT_CUT_BODY else size_bytes
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            if cut or self._dribble_bytes_per_s > 0:
                self._write(stream.read(sent_bytes))
                self.close_connection = fault == faults.FAULT_TRUNCATE
            else:
                self.connection.sendfile(stream)

    def _send_html_page(self) -> None:
        """A 200 whose body is an HTML page, not the file (a maintenance page, a portal)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(faults.HTML_PAGE)))
        self.end_headers()
        self._write(faults.HTML_PAGE)

    def _reset_connection(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0) and no response at all."""
        self._drain_body()
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        os.close(sock.detach())
        self.close_connection = True


def _route(path: str) -> tuple[str, str]:
    """(endpoint name, its method) for a request path; ("unknown", "") when none matches."""
    if path.startswith(DOWNLOAD_PREFIX):
        return "download", "GET"
    return ROUTES.get(path, ("unknown", ""))


def _variant_count(body: bytes) -> int | None:
    """How many ``output_variants`` a process body asks for, for the log (never raises)."""
    with contextlib.suppress(ValueError, RecursionError):
        data = json.loads(body)
        variants = data.get("output_variants") if isinstance(data, dict) else None
        return len(variants) if isinstance(variants, list) else None
    return None


def _file_hint(endpoint: str, path: str, body: bytes) -> str | None:
    """The stored path a request is about, for the log (best effort, never raises)."""
    if endpoint == "download":
        try:
            return unquote(path[len(DOWNLOAD_PREFIX) :], errors="strict")
        except UnicodeDecodeError:
            return None
    if endpoint == "process":
        with contextlib.suppress(ValueError, RecursionError):
            data = json.loads(body)
            value = data.get("input_file_path") if isinstance(data, dict) else None
            return value if isinstance(value, str) else None
    return None
