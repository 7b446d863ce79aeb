"""The total deadline of one HTTP call: connect, send, the answer's headers and its whole body.

requests and urllib3 time out each socket operation, not the call: a server that sends one byte
every half second never trips a 60 s read timeout, and http.client's buffered read of a 1 MiB
chunk loops over such reads without ever returning to the caller, so a deadline checked between
chunks would not be reached either. Hence an alarm (``api.alarms``, one thread for all calls):
each call gets a budget (``connect_timeout_s`` + its endpoint's timeout) and, when it is spent,
the alarm shuts the call's socket down with ``shutdown(SHUT_RDWR)``. Unlike ``close`` this is
safe from another thread (the file descriptor stays valid and cannot be reused under the
reader), and it wakes a blocked ``recv`` or ``send`` at once: the read fails, and the client,
seeing :attr:`CallDeadline.expired`, raises the deadline error instead of whatever the broken
read said. A call that ends first cancels its alarm; the alarm and the end of the call take one
lock, so a finished call's pooled connection is never shut down under the next call.

How the alarm finds the socket: the client's sessions mount :class:`DeadlineAdapter`, whose
connection pools (and proxy managers) make connections of a subclass that registers itself with
the adapter's :class:`CallWatch` when it connects and when it sends a request: the socket is
known from the first byte, for a new connection and for a pooled keep-alive one alike, and an
alarm that rang before the socket existed shuts it down as soon as it does. The client keeps
one session per thread, so one adapter and one watch per thread, serving one call at a time.

The watched connections also send a request body in blocks of ``SEND_BLOCK_BYTES`` instead of
urllib3's 16 KiB: a 4 MB upload is then 16 reads of the multipart encoder (pure Python) and 16
``send`` calls, not 250 of each.

Not covered: name resolution (``getaddrinfo`` has no timeout in the standard library).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, PoolManager
from urllib3.connection import HTTPConnection

from bgcut_watchd.api.alarms import TimerFactory

SEND_BLOCK_BYTES = 256 * 1024


class CallDeadline:
    """One call's budget; shuts the call's connection down when it is spent."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._lock = threading.Lock()
        self._connection: HTTPConnection | None = None
        self._expired = False
        self._finished = False

    @property
    def expired(self) -> bool:
        """True once the budget was spent before the call ended."""
        with self._lock:
            return self._expired

    def attach(self, connection: HTTPConnection) -> None:
        """The call now uses ``connection``; shut it down at once if the budget is spent."""
        with self._lock:
            self._connection = connection
            if self._expired and not self._finished:
                _shut_down(connection)

    def expire(self) -> None:
        """The alarm's action: mark the call expired and shut its connection down."""
        with self._lock:
            if self._finished:
                return
            self._expired = True
            if self._connection is not None:
                _shut_down(self._connection)

    def finish(self) -> None:
        """The call ended: from now on the alarm does nothing."""
        with self._lock:
            self._finished = True
            self._connection = None


def _shut_down(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is None:  # not connected yet: attach() after connect() will do it
        return
    with contextlib.suppress(OSError):  # already closed or reset: nothing left to wake
        sock.shutdown(socket.SHUT_RDWR)


class CallWatch:
    """The deadline of the call in flight on one adapter's connections."""

    def __init__(self, start_timer: TimerFactory) -> None:
        self._start_timer = start_timer
        self._current: CallDeadline | None = None

    @contextlib.contextmanager
    def deadline(self, budget_s: float) -> Iterator[CallDeadline]:
        """Run one call under a total deadline of ``budget_s`` seconds."""
        call = CallDeadline(budget_s)
        self._current = call
        alarm = self._start_timer(budget_s, call.expire)
        try:
            yield call
        finally:
            call.finish()
            alarm.cancel()
            self._current = None

    def attach(self, connection: HTTPConnection) -> None:
        """Called by a watched connection as it connects or sends a request."""
        call = self._current
        if call is not None:
            call.attach(connection)


class DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter without retries whose connections report to :attr:`watch`."""

    def __init__(self, watch: CallWatch) -> None:
        self.watch = watch  # before super().__init__, which makes the pool manager
        super().__init__(max_retries=0)  # the scheduler is the one retrying layer

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        """The usual pool manager, its pools making watched connections."""
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        _watch_pools(self.poolmanager, self.watch)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The usual proxy manager (HTTP or SOCKS), its pools making watched connections."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _watch_pools(manager, self.watch)
        return manager


def _watch_pools(manager: PoolManager, watch: CallWatch) -> None:
    """Make every pool class of ``manager`` a subclass whose connections report to ``watch``
    (idempotent; per manager instance, so other sessions are untouched)."""
    if getattr(manager, "_bgcut_watched", False):
        return
    manager.pool_classes_by_scheme = {
        scheme: _watched_pool(pool_cls, watch)
        for scheme, pool_cls in manager.pool_classes_by_scheme.items()
    }
    manager._bgcut_watched = True  # type: ignore[attr-defined]  # our own marker


def _watched_pool(pool_cls: type[HTTPConnectionPool],
                  watch: CallWatch) -> type[HTTPConnectionPool]:
    connection_cls = _watched_connection(pool_cls.ConnectionCls, watch)
    return type(pool_cls.__name__, (pool_cls,), {"ConnectionCls": connection_cls})


def _watched_connection(base: type[Any], watch: CallWatch) -> type[Any]:
    """A subclass of the connection class ``base`` that reports itself to ``watch``."""

    class WatchedConnection(base):  # type: ignore[misc]  # base is known at run time
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["blocksize"] = SEND_BLOCK_BYTES
            super().__init__(*args, **kwargs)

        def connect(self) -> None:
            watch.attach(self)  # HTTPS connects (TLS handshake) before its first request
            super().connect()
            watch.attach(self)  # an alarm that rang before the socket existed acts now

        def request(self, *args: Any, **kwargs: Any) -> None:
            watch.attach(self)  # a pooled keep-alive connection does not connect again
            super().request(*args, **kwargs)

    WatchedConnection.__name__ = WatchedConnection.__qualname__ = f"Watched{base.__name__}"
    return WatchedConnection
