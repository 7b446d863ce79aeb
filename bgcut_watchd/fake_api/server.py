"""``FakeApiServer``: the emulator as a Python object for tests, benchmarks and ``demo``.

    with FakeApiServer(FakeApiOptions(fail_429=0.5, seed=1)) as api:
        auth = {"Authorization": f"Token {api.api_key}"}
        requests.get(f"{api.base_url}/v3/file-ops/usage/", headers=auth)
        api.update(auth_fail=True)
        api.requests()   # the request log
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from bgcut_watchd.fake_api.app import FakeApiApp
from bgcut_watchd.fake_api.handler import FakeApiHandler
from bgcut_watchd.fake_api.options import FakeApiOptions
from bgcut_watchd.fake_api.reqlog import RequestLogEntry
from bgcut_watchd.fake_api.storage import Storage

_LOG = logging.getLogger(__name__)


class _HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that can cut its open keep-alive connections on stop."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: FakeApiApp) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, FakeApiHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOG.debug("connection from %s failed", client_address, exc_info=True)

    def cut_connections(self) -> None:
        """Shut every open connection so idle keep-alive threads end now."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class FakeApiServer:
    """The BackgroundCut v3 emulator on a background thread.

    ``clock`` (monotonic seconds) ages stored files and stamps the request log; ``sleep`` waits
    out injected latency (default: a wait that ``stop()`` interrupts). Without ``storage_dir``
    a temporary folder is used and removed by ``stop()``.
    """

    def __init__(
        self,
        options: FakeApiOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "test-key",
        storage_dir: Path | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self._initial_options = options if options is not None else FakeApiOptions()
        self._host = host
        self._port = port
        self.api_key = api_key
        self._storage_dir = storage_dir
        self._owns_storage = storage_dir is None
        self._clock = clock
        self._stopping = threading.Event()
        self._sleep = sleep if sleep is not None else self._stopping.wait
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeApiServer:
        """Bind and serve on a background thread; returns self.

        Raises:
            RuntimeError: already started.
            OSError: the address cannot be bound.
        """
        if self._httpd is not None:
            raise RuntimeError("fake API server already started")
        if self._storage_dir is None:
            self._storage_dir = Path(tempfile.mkdtemp(prefix="bgcut-fake-api-"))
        storage = Storage(self._storage_dir, self._clock)
        app = FakeApiApp(self._initial_options, self.api_key, storage, self._clock, self._sleep)
        self._stopping.clear()
        self._httpd = _HttpServer((self._host, self._port), app)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name="fake-api", daemon=True,
        )
        self._thread.start()
        _LOG.info("fake-api listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections, remove an owned temporary storage folder."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.cut_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        if self._owns_storage and self._storage_dir is not None:
            shutil.rmtree(self._storage_dir, ignore_errors=True)
            self._storage_dir = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _app(self) -> FakeApiApp:
        if self._httpd is None:
            raise RuntimeError("fake API server is not running")
        return self._httpd.app

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError("fake API server is not running")
        host, port = self._httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        host_text = f"[{host}]" if ":" in host else host
        return f"http://{host_text}:{port}"

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            raise RuntimeError("fake API server is not running")
        return int(self._httpd.server_address[1])

    @property
    def storage_dir(self) -> Path:
        """The storage root (stored files are under ``<storage_dir>/files``)."""
        if self._storage_dir is None:
            raise RuntimeError("fake API server has no storage folder yet")
        return self._storage_dir

    @property
    def options(self) -> FakeApiOptions:
        """The options in force now."""
        return self._app.options

    def update(self, **changes: Any) -> FakeApiOptions:
        """Change options while running (same rules as ``POST /_control/``).

        Raises:
            ValueError: unknown option or invalid value.
        """
        return self._app.update(changes)

    def usage(self) -> dict[str, Any]:
        """What ``GET /v3/file-ops/usage/`` answers now (storage and credits)."""
        return self._app.usage(self._app.options)

    def requests(self) -> list[RequestLogEntry]:
        """Every API request logged so far, oldest first."""
        return self._app.log.entries()

    def requests_in_progress(self) -> int:
        """API requests received and not logged yet (still being served)."""
        return self._app.log.in_progress()

    def reset_log(self) -> None:
        """Clear the in-memory request log."""
        self._app.log.clear()

    def local_path(self, remote_path: str) -> Path:
        """Where a stored remote path lives on disk (whether or not it exists)."""
        return self._app.storage.local_path(remote_path)
