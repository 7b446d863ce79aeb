"""Reading 2xx response bodies: bounded JSON answers and streamed downloads.

Every way a body can break off (urllib3's IncompleteRead / ProtocolError, requests'
ChunkedEncodingError, a read timeout between chunks, a short Content-Length) ends here as a
``ServiceError`` naming the endpoint.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from typing import BinaryIO

import requests
import urllib3.exceptions

from bgcut_watchd.api.statuses import truncate
from bgcut_watchd.errors import AmbiguousOutcomeError, ServiceError

MAX_JSON_BYTES = 1024 * 1024
_JSON_CHUNK_BYTES = 64 * 1024
BODY_READ_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


def read_body(
    endpoint: str, response: requests.Response, redact: Callable[[str], str]
) -> dict[str, object]:
    """The JSON object of a 2xx answer.

    Raises AmbiguousOutcomeError (a ServiceError: the request did reach the server) when
    the body is truncated, too large, not JSON or not an object.
    """
    raw = _read_bounded(endpoint, response)
    try:
        parsed: object = json.loads(raw)
    except ValueError:
        snippet = truncate(redact(raw.decode("utf-8", errors="replace")), 80)
        raise AmbiguousOutcomeError(
            endpoint, f"answer is not JSON: {snippet!r}", response.status_code
        ) from None
    if not isinstance(parsed, dict):
        raise AmbiguousOutcomeError(
            endpoint, f"answer is a JSON {type(parsed).__name__}, not an object",
            response.status_code,
        )
    return parsed


def json_field(
    endpoint: str, body: dict[str, object], key: str, expected_count: int | None
) -> list[str]:
    """``body[key]`` as a list of stored paths; ``expected_count`` entries if given.

    A stored path is a non-empty string without ``.`` or ``..`` segments (those could
    not be downloaded as named).

    With ``expected_count=None`` at least one entry is required. Raises
    AmbiguousOutcomeError when the field is missing or has the wrong shape.
    """
    value = body.get(key)
    if not isinstance(value, list) or not all(_is_stored_path(v) for v in value):
        raise AmbiguousOutcomeError(endpoint, f"answer has no list of usable paths in {key!r}")
    count_ok = len(value) >= 1 if expected_count is None else len(value) == expected_count
    if not count_ok:
        wanted = "at least 1" if expected_count is None else str(expected_count)
        raise AmbiguousOutcomeError(
            endpoint, f"answer has {len(value)} entries in {key!r}, expected {wanted}"
        )
    return [str(v) for v in value]


def _is_stored_path(value: object) -> bool:
    return isinstance(value, str) and bool(value) and not {".", ".."} & set(value.split("/"))


def copy_body(endpoint: str, response: requests.Response, dest: BinaryIO, chunk_bytes: int) -> int:
    """Stream the body into ``dest`` chunk by chunk; return the bytes written.

    Raises ServiceError when the body breaks off or is shorter than its Content-Length;
    OSError from ``dest.write``.
    """
    written_bytes = 0
    for chunk in _chunks(endpoint, response, chunk_bytes, ServiceError):
        dest.write(chunk)
        written_bytes += len(chunk)
    expected_bytes = _expected_length(response)
    if expected_bytes is not None and written_bytes != expected_bytes:
        raise ServiceError(
            endpoint, f"body has {written_bytes} bytes, Content-Length says {expected_bytes}",
            response.status_code,
        )
    return written_bytes


def _read_bounded(endpoint: str, response: requests.Response) -> bytes:
    received = bytearray()
    for chunk in _chunks(endpoint, response, _JSON_CHUNK_BYTES, AmbiguousOutcomeError):
        received += chunk
        if len(received) > MAX_JSON_BYTES:
            raise AmbiguousOutcomeError(
                endpoint, f"answer larger than {MAX_JSON_BYTES} bytes", response.status_code
            )
    expected_bytes = _expected_length(response)
    if expected_bytes is not None and len(received) != expected_bytes:
        raise AmbiguousOutcomeError(
            endpoint, f"answer has {len(received)} bytes, Content-Length says {expected_bytes}",
            response.status_code,
        )
    return bytes(received)


def _chunks(
    endpoint: str,
    response: requests.Response,
    chunk_bytes: int,
    error_class: type[ServiceError],
) -> Iterator[bytes]:
    """The body's chunks; a read failure becomes ``error_class`` (the caller's own writes,
    done between two ``next`` calls, are outside the ``try``)."""
    chunks = response.iter_content(chunk_bytes)
    received_bytes = 0
    while True:
        try:
            chunk = next(chunks, None)
        except BODY_READ_ERRORS as exc:
            expected = _expected_length(response)
            of_total = f" of {expected}" if expected is not None else ""
            raise error_class(
                endpoint,
                f"body broke off after {received_bytes}{of_total} bytes ({type(exc).__name__})",
                response.status_code,
            ) from None
        if chunk is None:
            return
        received_bytes += len(chunk)
        yield chunk


def _expected_length(response: requests.Response) -> int | None:
    """Content-Length, when it counts the bytes we receive (no content coding applied)."""
    coding = response.headers.get("Content-Encoding", "identity").strip().lower()
    length = response.headers.get("Content-Length")
    if coding not in {"", "identity"} or length is None:
        return None
    try:
        return int(length)
    except ValueError:
        return None
