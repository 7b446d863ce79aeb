"""The BackgroundCut API v3 client: upload, process, download, usage (api-v3.md).

One ``requests.Session`` per worker thread, made by an injected factory; no retries of its
own (the scheduler is the one layer that retries); every failure raised as a class of
:mod:`bgcut_watchd.errors` by :mod:`bgcut_watchd.api.statuses`. The API key is only ever in
the sessions' headers: never in a message, a log line or ``repr``.

Timeouts: urllib3's connect and per-read timeouts, and for each call as a whole (connect,
sending, the answer's headers and its whole body) a total deadline of ``connect_timeout_s`` +
its endpoint's timeout (usage and the look for an output use the download's), enforced by
:mod:`bgcut_watchd.api.deadline`; past it the call is aborted and raised as an
``AmbiguousOutcomeError`` (it may have run), or for a download's body a ``ServiceError``.

Over 300 lines on purpose: one class, a method per endpoint and the request plumbing they
share (sessions, the deadline, statuses), which reads best in one place.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import quote

import requests
from requests_toolbelt import MultipartEncoder

from bgcut_watchd.api.alarms import AlarmClock, TimerFactory
from bgcut_watchd.api.body import BODY_READ_ERRORS, copy_body, json_field, read_body
from bgcut_watchd.api.deadline import CallWatch, DeadlineAdapter
from bgcut_watchd.api.statuses import deadline_error, error_for_status, transport_error
from bgcut_watchd.config import ApiConfig, Variant
from bgcut_watchd.errors import (
    AmbiguousOutcomeError,
    ConfigError,
    RemoteFileMissingError,
    ServiceError,
)

logger = logging.getLogger("bgcut_watchd.api")

UPLOAD_PATH = "/v3/file-ops/upload/"
PROCESS_PATH = "/v3/tools/ai/remove-bg/process/"
FILES_PATH = "/v3/files/"
USAGE_PATH = "/v3/file-ops/usage/"
DOWNLOAD_CHUNK_BYTES = 256 * 1024
_MAX_UPLOAD_NAME_CHARS = 100
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_KEY_CHARS = re.compile(r"[!-~]+")  # printable ASCII, no space: safe in a header value

SessionFactory = Callable[[], requests.Session]
Timeout = tuple[float, float]
RequestObserver = Callable[[str, str, float], None]
"""``on_request(endpoint, code, duration_s)`` after every request: ``code`` is the HTTP status
as text, or ``"error"`` when no answer came (timeout, reset); the duration includes the body."""
NO_ANSWER = "error"


def safe_upload_name(filename: str) -> str:
    """An ASCII file name for the multipart part: ``Café photo.JPG`` -> ``Cafe_photo.JPG``."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    stem, dot, ext = PurePosixPath(ascii_name.replace("\\", "/")).name.rpartition(".")
    if not dot:
        stem, ext = ext, ""
    stem = _UNSAFE_NAME_CHARS.sub("_", stem).strip("._-") or "image"
    ext = _UNSAFE_NAME_CHARS.sub("", ext)[:10]
    stem = stem[: _MAX_UPLOAD_NAME_CHARS - len(ext) - 1]
    return f"{stem}.{ext}" if ext else stem


def file_url_path(remote_path: str) -> str:
    """The download path of a stored file: slashes kept, everything else percent-encoded.

    Raises ValueError for a ``.`` or ``..`` segment: HTTP libraries resolve those, so the
    request would silently fetch another file.
    """
    segments = remote_path.split("/")
    if any(segment in {".", ".."} for segment in segments):
        raise ValueError("remote path has a '.' or '..' segment")
    return FILES_PATH + "/".join(quote(segment, safe="") for segment in segments)


def variant_body(variant: Variant, output_file_path: str) -> dict[str, object]:
    """One ``output_variants`` entry with every field explicit (docs disagree on defaults)."""
    return {
        "output_file_path": output_file_path,
        "format": variant.format,
        "max_resolution": variant.max_resolution,
        "quality": variant.quality,
        "background_color": variant.background_color,
        "output_compression": variant.output_compression,
        "autocrop": variant.autocrop,
    }


class BackgroundCutClient:
    """Thread-safe client of the BackgroundCut API v3; each thread gets its own session.

    Every method raises a :class:`bgcut_watchd.errors.ApiError` subclass for API failures
    (see :mod:`bgcut_watchd.api.statuses`), never ``requests`` exceptions.
    """

    def __init__(
        self,
        api: ApiConfig,
        api_key: str,
        session_factory: SessionFactory = requests.Session,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_request: RequestObserver | None = None,
        start_timer: TimerFactory | None = None,
    ) -> None:
        """Raises ConfigError when the key is empty or not printable ASCII (never quoting it).

        ``on_request`` (metrics) must not raise; whatever it raises is logged and dropped."""
        key = api_key.strip()
        if not _KEY_CHARS.fullmatch(key):
            raise ConfigError(["api key: empty, or has spaces, control or non-ASCII characters"])
        self._api = api
        self._base_url = api.base_url.rstrip("/")
        self._auth_header = f"Token {key}"
        self._key = key
        self._session_factory = session_factory
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._on_request = on_request
        self._start_timer = start_timer or AlarmClock(monotonic)  # the calls' deadlines
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BackgroundCutClient(base_url={self._base_url!r})"

    def upload(self, path: Path, upload_path: str, filename: str) -> str:
        """Stream ``path`` to ``upload_path`` as ``filename`` (made safe); return the stored path.

        Raises ApiError subclasses; OSError when ``path`` cannot be opened.
        """
        safe_name = safe_upload_name(filename)
        with path.open("rb") as stream:
            encoder = MultipartEncoder(fields={
                "upload_path": upload_path,
                "files": (safe_name, stream, _content_type(safe_name)),
            })
            body = self._call_json(
                "upload", "POST", UPLOAD_PATH, self._timeout(self._api.upload_timeout_s),
                data=encoder, headers={"Content-Type": encoder.content_type},
            )
        return json_field("upload", body, "file_paths", expected_count=None)[0]

    def process(
        self, input_file_path: str, variants: Sequence[Variant], output_file_paths: Sequence[str]
    ) -> list[str]:
        """One process call for every variant; returns the output paths in variant order.

        Raises ApiError subclasses; AmbiguousOutcomeError when the call may have run without
        a usable answer (look for the outputs before calling again); ValueError when
        ``variants`` and ``output_file_paths`` differ in length or are empty.
        """
        if not variants or len(variants) != len(output_file_paths):
            raise ValueError("process needs one output_file_path per variant, at least one")
        payload = {
            "input_file_path": input_file_path,
            "output_variants": [
                variant_body(v, out) for v, out in zip(variants, output_file_paths, strict=True)
            ],
        }
        body = self._call_json(
            "process", "POST", PROCESS_PATH, self._timeout(self._api.process_timeout_s),
            json=payload,
        )
        return json_field("process", body, "output_file_paths", expected_count=len(variants))

    def download(self, remote_path: str, dest: BinaryIO | Path) -> int:
        """Stream a stored file into ``dest`` (a binary stream, or a path to create).

        Returns the bytes written. Does not fsync or rename. A ``Path`` that was created is
        removed again when the download fails. Raises ApiError subclasses (ServiceError for
        a short or broken body); OSError when writing to ``dest`` fails.
        """
        if isinstance(dest, Path):
            return self._download_to_path(remote_path, dest)
        with self._request("download", "GET", file_url_path(remote_path),
                           self._timeout(self._api.download_timeout_s),
                           headers={"Accept-Encoding": "identity"}) as response:
            return copy_body("download", response, dest, DOWNLOAD_CHUNK_BYTES)

    def remote_file_exists(self, remote_path: str) -> bool:
        """True when a stored file can be downloaded now, False on 404/410; reads no body.

        Raises the other ApiError subclasses (401, 5xx, timeouts...).
        """
        try:
            with self._request("download", "GET", file_url_path(remote_path),
                               self._timeout(self._api.download_timeout_s)):
                return True
        except RemoteFileMissingError:
            return False

    def usage(self) -> dict[str, object]:
        """The account's storage usage, as the API answers it (fields undocumented).

        Raises ApiError subclasses; ServiceError when the answer is not a JSON object.
        """
        return self._call_json(
            "usage", "GET", USAGE_PATH, self._timeout(self._api.download_timeout_s)
        )

    def close(self) -> None:
        """Close every session this client created, in every thread."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # -- internals ---------------------------------------------------------------------

    def _timeout(self, read_timeout_s: float) -> Timeout:
        return (self._api.connect_timeout_s, read_timeout_s)

    def _download_to_path(self, remote_path: str, dest: Path) -> int:
        try:
            with dest.open("wb") as stream:
                return self.download(remote_path, stream)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    def _session(self) -> requests.Session:
        """This thread's session (made with the watch of its calls' deadlines)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._session_factory()
            _settle_environment(session, self._base_url)
            session.headers["Authorization"] = self._auth_header
            watch = CallWatch(self._start_timer)
            adapter = DeadlineAdapter(watch)  # no retries: the scheduler is the one retrying
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session, self._local.watch = session, watch
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _watch(self) -> CallWatch:
        """The deadline watch of this thread's session."""
        self._session()
        watch: CallWatch = self._local.watch
        return watch

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "[redacted]")

    def _call_json(
        self, endpoint: str, method: str, path: str, timeout: Timeout, **kwargs: object
    ) -> dict[str, object]:
        with self._request(endpoint, method, path, timeout, **kwargs) as response:
            return read_body(endpoint, response, self._redact)

    @contextmanager
    def _request(
        self, endpoint: str, method: str, path: str, timeout: Timeout, **kwargs: object
    ) -> Iterator[requests.Response]:
        """Send one request; yield a 2xx streamed response, closed on exit; raise otherwise.

        The whole call, the caller's reading of the body included, runs under the total
        deadline ``sum(timeout)`` (connect + the endpoint's timeout).
        """
        session, watch = self._session(), self._watch()
        started_s = self._monotonic()
        code = NO_ANSWER
        try:
            with watch.deadline(sum(timeout)) as deadline:
                try:
                    response = session.request(
                        method, self._base_url + path, timeout=timeout, stream=True,
                        allow_redirects=method == "GET", **kwargs,  # type: ignore[arg-type]
                    )
                except requests.RequestException as exc:
                    logger.debug("%s failed after %.0f ms: %s", endpoint,
                                 (self._monotonic() - started_s) * 1000, type(exc).__name__)
                    if deadline.expired:
                        raise deadline_error(endpoint, deadline.budget_s,
                                             ambiguous=True) from None
                    raise transport_error(endpoint, exc, self._redact) from None
                with response:
                    code = str(response.status_code)
                    logger.debug("%s -> HTTP %d in %.0f ms", endpoint, response.status_code,
                                 (self._monotonic() - started_s) * 1000)
                    self._raise_for_status(endpoint, response)
                    try:
                        yield response
                    except ServiceError as exc:  # the body broke off: at the deadline?
                        if not deadline.expired:
                            raise
                        ambiguous = isinstance(exc, AmbiguousOutcomeError)
                        raise deadline_error(endpoint, deadline.budget_s, ambiguous) from None
        finally:
            self._observe(endpoint, code, self._monotonic() - started_s)

    def _observe(self, endpoint: str, code: str, duration_s: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(endpoint, code, duration_s)
        except Exception:  # metrics must never fail a request
            logger.exception("on_request callback failed")

    def _raise_for_status(self, endpoint: str, response: requests.Response) -> None:
        if 200 <= response.status_code < 300:
            return
        body = self._redact(_error_body(response)).encode("utf-8")
        error = error_for_status(endpoint, response.status_code, body,
                                 response.headers.get("Retry-After"), self._wall_clock())
        if error is not None:
            raise error


def _settle_environment(session: requests.Session, base_url: str) -> None:
    """Read what requests takes from the environment once, for the API's one base URL, not at
    every request: the proxy for it (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, minus
    ``NO_PROXY``) and a CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``).

    ``trust_env`` off also keeps requests from reading ``~/.netrc`` at every request and, when
    it names the API's host, replacing the ``Token`` header with Basic credentials (the
    service would then answer 401 and the daemon pause on a key that is fine). Cost of the
    per-request lookups it replaces: ~0.5 ms of CPU per request, 5 requests per job.
    """
    session.trust_env = False
    for scheme, proxy in requests.utils.get_environ_proxies(base_url).items():
        session.proxies.setdefault(scheme, proxy)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle


def _error_body(response: requests.Response, max_bytes: int = 64 * 1024) -> str:
    """Up to ``max_bytes`` of an error body as text; what arrived if the body breaks off."""
    received = bytearray()
    try:
        for chunk in response.iter_content(8192):
            received += chunk
            if len(received) >= max_bytes:
                break
    except BODY_READ_ERRORS:
        pass  # a broken error body still has its status; quote what did arrive
    return bytes(received[:max_bytes]).decode("utf-8", errors="replace")


def _content_type(filename: str) -> str:
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"
