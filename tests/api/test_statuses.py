"""Unit tests of the one place where HTTP answers become exceptions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from bgcut_watchd.api.statuses import (
    DETAIL_MAX_CHARS,
    RETRY_AFTER_MAX_S,
    AmbiguousOutcomeError,
    error_for_status,
    parse_retry_after,
    transport_error,
)
from bgcut_watchd.errors import (
    ApiInputError,
    AuthError,
    CreditsError,
    InputError,
    PauseError,
    RateLimitedError,
    RemoteFileMissingError,
    ServiceError,
    TransientError,
    UnreachableError,
)

NOW_S = 1_700_000_000.0


def _detail(text: str) -> bytes:
    return json.dumps({"detail": text}).encode()


@pytest.mark.parametrize(
    ("status", "expected", "family"),
    [
        (400, ApiInputError, InputError),
        (413, ApiInputError, InputError),
        (401, AuthError, PauseError),
        (403, AuthError, PauseError),
        (402, CreditsError, PauseError),
        (404, RemoteFileMissingError, TransientError),
        (410, RemoteFileMissingError, TransientError),
        (429, RateLimitedError, TransientError),
        (500, ServiceError, TransientError),
        (503, ServiceError, TransientError),
        (502, AmbiguousOutcomeError, TransientError),
        (504, AmbiguousOutcomeError, TransientError),
        (418, ServiceError, TransientError),
    ],
)
def test_each_status_becomes_its_class(status: int, expected: type, family: type) -> None:
    error = error_for_status("process", status, _detail("why"), None, NOW_S)
    assert error is not None and type(error) is expected
    assert isinstance(error, family)
    assert error.http_status == status
    assert error.endpoint == "process"
    assert "process" in str(error) and str(status) in str(error) and "why" in str(error)


@pytest.mark.parametrize("status", [200, 201, 204])
def test_success_is_no_error(status: int) -> None:
    assert error_for_status("upload", status, b"", None, NOW_S) is None


def test_413_and_400_carry_their_quarantine_reasons() -> None:
    too_large = error_for_status("upload", 413, _detail("too big"), None, NOW_S)
    rejected = error_for_status("upload", 400, _detail("Invalid image format"), None, NOW_S)
    assert isinstance(too_large, ApiInputError) and too_large.reason == "too_large"
    assert isinstance(rejected, ApiInputError) and rejected.reason == "rejected_by_api"


def test_429_carries_the_clamped_retry_after() -> None:
    error = error_for_status("process", 429, _detail("slow down"), "99999", NOW_S)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after_s == RETRY_AFTER_MAX_S == 3600.0


def test_429_without_retry_after_has_none() -> None:
    error = error_for_status("process", 429, b"", None, NOW_S)
    assert isinstance(error, RateLimitedError) and error.retry_after_s is None


def test_long_detail_is_truncated() -> None:
    error = error_for_status("process", 500, _detail("x" * 5000), None, NOW_S)
    assert error is not None
    assert len(error.detail) == DETAIL_MAX_CHARS
    assert error.detail.endswith("…")


def test_non_json_error_body_is_quoted_flat() -> None:
    html = b"<html>\n<body>502   Bad Gateway</body></html>"
    error = error_for_status("upload", 503, html, None, NOW_S)
    assert error is not None and error.detail == "<html> <body>502 Bad Gateway</body></html>"


def test_structured_detail_is_rendered_as_json() -> None:
    body = json.dumps({"detail": [{"loc": ["format"], "msg": "bad"}]}).encode()
    error = error_for_status("process", 400, body, None, NOW_S)
    assert error is not None and '"msg": "bad"' in error.detail


def test_empty_error_body_says_so() -> None:
    error = error_for_status("download", 500, b"", None, NOW_S)
    assert error is not None and error.detail == "(empty body)"


def _http_date(epoch_s: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch_s, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("header", "expected_s"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("3600", 3600.0),
        ("3601", 3600.0),
        ("99999999", 3600.0),
        (_http_date(NOW_S + 90), 90.0),
        (_http_date(NOW_S - 90), 0.0),
        (_http_date(NOW_S + 86400), 3600.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Mon, 99 Foo 2015 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, expected_s: float | None) -> None:
    assert parse_retry_after(header, NOW_S) == expected_s


def _identity(text: str) -> str:
    return text


def test_connect_timeout_is_unreachable_not_ambiguous() -> None:
    error = transport_error("upload", requests.ConnectTimeout("connect timed out"), _identity)
    assert type(error) is UnreachableError and isinstance(error, ServiceError)
    assert "upload" in str(error) and "request not sent" in str(error)


def test_refused_connection_is_unreachable_not_ambiguous() -> None:
    refused = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    exc = requests.ConnectionError(MaxRetryError(None, "/v3/", refused))  # type: ignore[arg-type]
    assert type(transport_error("process", exc, _identity)) is UnreachableError


def test_read_timeout_may_have_run() -> None:
    error = transport_error("process", requests.ReadTimeout("read timed out"), _identity)
    assert isinstance(error, AmbiguousOutcomeError)
    assert "timed out" in str(error)


def test_reset_after_sending_may_have_run() -> None:
    reset = ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))
    error = transport_error("process", requests.ConnectionError(reset), _identity)
    assert isinstance(error, AmbiguousOutcomeError)
    assert "connection lost" in str(error)


def test_transport_error_text_is_redacted() -> None:
    error = transport_error(
        "usage", requests.ReadTimeout("Token hunter2 leaked"),
        lambda text: text.replace("hunter2", "[redacted]"),
    )
    assert "hunter2" not in str(error) and "[redacted]" in str(error)
