"""The status page's WSGI application: routes, who may ask, and the state-changing actions.

See ``daemon.http`` for the listener that serves it and the rules it enforces.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any, Protocol

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from bgcut_watchd.config.model import is_loopback
from bgcut_watchd.daemon.web.page import PageData, notice_text, render_main, render_page

log = logging.getLogger("bgcut_watchd.daemon.http")

MAX_BODY_BYTES = 16 * 1024
CSRF_MAX_AGE_S = 12 * 3600
# same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" even on the
# page's own form posts, which the Origin check must refuse.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY", "Cache-Control": "no-store",
}
PAGE_CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
NO_PICTURE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="60" viewBox="0 0 80 60">'
    '<rect width="80" height="60" fill="#8882"/><text x="40" y="34" font-size="11" '
    'text-anchor="middle" fill="#888" font-family="sans-serif">no preview</text></svg>')
STATIC = {"page.css": "text/css; charset=utf-8", "page.js": "text/javascript; charset=utf-8"}


class Backend(Protocol):
    """What the listener shows and does; implemented by ``daemon.monitor.Monitor``."""

    def page_data(self) -> PageData: ...
    def metrics_text(self) -> bytes: ...
    def status_document(self) -> dict[str, Any]: ...
    def health(self) -> tuple[bool, str]: ...
    def thumbnail(self, job_id: str, which: str) -> bytes | None: ...
    def requeue(self, folder: str, key: str | None) -> int: ...
    def resume(self) -> bool: ...


class _Request(Request):
    max_content_length = MAX_BODY_BYTES
    max_form_memory_size = MAX_BODY_BYTES
    max_form_parts = 16


class CsrfTokens:
    """Per-page tokens: ``<issued_s>.<hmac>``, signed with a secret made at start-up."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._key = secrets.token_bytes(32)
        self._clock = clock

    def issue(self) -> str:
        issued = str(int(self._clock()))
        return f"{issued}.{self._mac(issued)}"

    def valid(self, token: str) -> bool:
        issued, _, mac = token.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(mac, self._mac(issued)):
            return False
        return 0 <= self._clock() - int(issued) <= CSRF_MAX_AGE_S

    def _mac(self, issued: str) -> str:
        return hmac.new(self._key, issued.encode(), hashlib.sha256).hexdigest()


class WebApp:
    """The WSGI application. Raises nothing into the server: every error becomes a 500."""

    def __init__(self, backend: Backend, *, token: str | None, port: int,
                 listen_host: str) -> None:
        self.backend = backend
        self.token = token
        self.csrf = CsrfTokens()
        self.allowed_hosts = _loopback_hosts(listen_host, port)
        self._static = {name: resources.files("bgcut_watchd.daemon.web").joinpath(
            "static", name).read_bytes() for name in STATIC}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = _Request(environ)
        try:
            response = self.dispatch(request)
        except RequestEntityTooLarge:
            response = _text(413, "request too large")
        except HTTPException as exc:
            response = _text(exc.code or 400, exc.description or "bad request")
        except Exception:
            log.exception("http: %s %s failed", request.method, request.path)
            response = _text(500, "internal error: see the daemon's log")
        response.headers.update({k: v for k, v in SECURITY_HEADERS.items()
                                 if k not in response.headers})
        return response(environ, start_response)

    def dispatch(self, request: _Request) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        route = (request.method, request.path)
        if request.path.startswith("/thumb/") and request.method in ("GET", "HEAD"):
            return self._thumbnail(request.path)
        if request.path.startswith("/static/") and request.method in ("GET", "HEAD"):
            return self._static_file(request.path.removeprefix("/static/"))
        handler = {
            ("GET", "/"): self._page, ("GET", "/metrics"): self._metrics,
            ("GET", "/api/status"): self._status, ("GET", "/healthz"): self._healthz,
            ("POST", "/requeue"): self._requeue, ("POST", "/resume"): self._resume,
        }.get(("GET", route[1]) if route[0] == "HEAD" else route)
        if handler is None:
            known = request.path in ("/", "/metrics", "/api/status", "/healthz", "/requeue",
                                     "/resume")
            return _text(405 if known else 404, "method not allowed" if known else "not found")
        return handler(request)

    # -- who may ask ------------------------------------------------------------------------

    def _refuse(self, request: _Request) -> Response | None:
        if self.token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return _text(401, "a bearer token is required",
                             {"WWW-Authenticate": 'Bearer realm="bgcut-watchd"'})
        elif request.host.lower() not in self.allowed_hosts:
            log.warning("http: refused a request for host %r from %s", request.host[:100],
                        request.remote_addr)
            return _text(421, "unknown host name: use the address the daemon listens on")
        return None

    def _cross_site(self, request: _Request) -> str | None:
        """Why a state-changing request does not come from our own page, or None."""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return f"Sec-Fetch-Site {site}"
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return f"Origin {origin[:100]}"
        if not self.csrf.valid(request.form.get("csrf", "")):
            return "no valid page token (reload the page)"
        return None

    # -- pages --------------------------------------------------------------------------------

    def _page(self, request: _Request) -> Response:
        data = self.backend.page_data()
        notice = notice_text(request.args.get("done", ""), request.args.get("n", ""))
        if request.args.get("part") == "main":
            return _html(render_main(data, self.csrf.issue(), notice))
        return _html(render_page(data, self.csrf.issue(), notice))

    def _metrics(self, request: _Request) -> Response:
        return Response(self.backend.metrics_text(),
                        content_type="text/plain; version=0.0.4; charset=utf-8")

    def _status(self, request: _Request) -> Response:
        return Response(json.dumps(self.backend.status_document(), indent=2) + "\n",
                        content_type="application/json")

    def _healthz(self, request: _Request) -> Response:
        ok, why = self.backend.health()
        return _text(200 if ok else 503, why)

    def _thumbnail(self, path: str) -> Response:
        _, _, job_id, which = [*path.split("/"), "", ""][:4]
        data = self.backend.thumbnail(job_id, which) if which in ("in", "out") else None
        if data is None:  # a picture saying so: browsers show an error answer's image
            return Response(NO_PICTURE_SVG, status=404, content_type="image/svg+xml")
        return Response(data, content_type="image/webp",
                        headers={"Cache-Control": "private, max-age=300"})

    def _static_file(self, name: str) -> Response:
        if name not in STATIC:
            return _text(404, "not found")
        return Response(self._static[name], content_type=STATIC[name],
                        headers={"Cache-Control": "private, max-age=3600"})

    # -- actions ------------------------------------------------------------------------------

    def _requeue(self, request: _Request) -> Response:
        refused = self._cross_site(request)
        folder, key = request.form.get("folder", ""), request.form.get("file")
        if refused is not None:
            return self._refused_action("requeue", request, refused)
        everything = request.form.get("all") == "1"
        if not everything and not key:
            return _text(400, "name a file, or all=1")
        log.warning("http: requeue of %s in folder %s asked by %s",
                    "every file" if everything else "one file", folder, request.remote_addr)
        try:
            count = self.backend.requeue(folder, None if everything else key)
        except (LookupError, ValueError) as exc:
            return _text(400, str(exc))
        except OSError:
            log.exception("http: requeue failed")
            return _redirect("failed")
        return _redirect("requeued" if count else "nothing", count)

    def _resume(self, request: _Request) -> Response:
        refused = self._cross_site(request)
        if refused is not None:
            return self._refused_action("resume", request, refused)
        log.warning("http: resume of API work asked by %s", request.remote_addr)
        return _redirect("resumed" if self.backend.resume() else "not-paused")

    def _refused_action(self, action: str, request: _Request, why: str) -> Response:
        log.warning("http: refused a %s from %s: %s", action, request.remote_addr, why)
        return _text(403, f"refused: {why}. Use the buttons of the status page itself.")


def _loopback_hosts(listen_host: str, port: int) -> frozenset[str]:
    names = {"localhost", "127.0.0.1", "[::1]"}
    if is_loopback(listen_host):
        names.add(f"[{listen_host}]" if ":" in listen_host else listen_host)
    hosts = {f"{name}:{port}" for name in names}
    return frozenset(hosts | (names if port == 80 else set()))


def _html(body: str) -> Response:
    return Response(body, content_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": PAGE_CSP})


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(text + "\n", status=status, content_type="text/plain; charset=utf-8",
                    headers=headers)


def _redirect(done: str, count: int = 0) -> Response:
    location = f"/?done={done}" + (f"&n={count}" if count else "")
    return Response("", status=303, headers={"Location": location})
