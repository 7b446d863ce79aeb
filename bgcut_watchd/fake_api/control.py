"""The control endpoint ``/_control/``: read and change options, read and clear the request log.

Served only by the emulator, without an API key, and never logged or subject to faults.

| request | answer |
|---|---|
| ``GET /_control/`` | the current options |
| ``POST /_control/`` with a JSON object | apply it as a partial change, answer the new options |
| ``GET /_control/log`` | the request log, a JSON list of entries |
| ``POST /_control/reset-log`` | clear the request log |

A log entry (``fake_api.reqlog.RequestLogEntry``) has ``method``, ``endpoint`` (upload,
process, download, usage, unknown), ``path``, ``status`` (null: the connection was reset),
``fault``, ``timestamp_s``, ``duration_s`` and ``file_path``; a process call's entry also has
``variants`` (how many output variants it asked for) and ``credits`` (what it was charged,
0.0 when it was not); both are null for the other endpoints.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from werkzeug.exceptions import BadRequest, HTTPException, MethodNotAllowed, NotFound

from bgcut_watchd.fake_api.app import FakeApiApp


class ControlHandler(Protocol):
    """What the control endpoint needs from the HTTP handler."""

    command: str

    @property
    def app(self) -> FakeApiApp: ...

    def read_body(self, max_bytes: int = ...) -> bytes: ...

    def send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None: ...

    def send_problem(self, exc: HTTPException) -> None: ...


def serve_control(handler: ControlHandler, path: str) -> None:
    """Answer one request to ``/_control/...``; problems are answered as JSON ``detail``."""
    try:
        _serve(handler, path.rstrip("/"))
    except HTTPException as exc:
        handler.send_problem(exc)


def _serve(handler: ControlHandler, route: str) -> None:
    app, method = handler.app, handler.command
    if route == "/_control":
        if method == "POST":
            _update(handler)
        else:
            _expect(method, "GET")
            handler.send_json(200, app.options.to_json())
    elif route == "/_control/log":
        _expect(method, "GET")
        handler.send_json(200, [entry.to_json() for entry in app.log.entries()])
    elif route == "/_control/reset-log":
        _expect(method, "POST")
        app.log.clear()
        handler.send_json(200, {"cleared": True})
    else:
        raise NotFound(description="Not found.")


def _expect(method: str, allowed: str) -> None:
    if method != allowed:
        raise MethodNotAllowed(description=f'Method "{method}" not allowed.')


def _update(handler: ControlHandler) -> None:
    try:
        changes = json.loads(handler.read_body())
    except ValueError as exc:
        raise BadRequest(description=f"Malformed JSON: {exc}") from exc
    if not isinstance(changes, dict):
        raise BadRequest(description="Body must be a JSON object of options to change.")
    try:
        options = handler.app.update(changes)
    except (ValueError, TypeError) as exc:
        raise BadRequest(description=str(exc)) from exc
    handler.send_json(200, options.to_json())
