"""Tests for bgcut_watchd.config.secrets: where the API key comes from, and that it never leaks."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from bgcut_watchd.config import ApiConfig
from bgcut_watchd.config.secrets import RedactingFilter, load_api_key, redact
from bgcut_watchd.errors import ConfigError

CRED_KEY = "key-from-credential-0123"
ENV_KEY = "key-from-environment-4567"
FILE_KEY = "key-from-file-89ab"


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """A systemd credentials directory and an api_key_file, each holding a different key."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "api-key").write_text(f"  {CRED_KEY}\n", encoding="utf-8")
    key_file = tmp_path / "api-key"
    key_file.write_text(f"{FILE_KEY}\n\n", encoding="utf-8")
    return {"credentials": credentials, "key_file": key_file}


def _error_of(api: ApiConfig, environ: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_api_key(api, environ)
    return caught.value


def test_systemd_credential_comes_first(places: dict[str, Path]) -> None:
    environ = {"CREDENTIALS_DIRECTORY": str(places["credentials"]), "BGCUT_API_KEY": ENV_KEY}
    assert load_api_key(ApiConfig(api_key_file=places["key_file"]), environ) == CRED_KEY


def test_environment_comes_before_the_key_file(places: dict[str, Path]) -> None:
    environ = {"BGCUT_API_KEY": f" {ENV_KEY} "}
    assert load_api_key(ApiConfig(api_key_file=places["key_file"]), environ) == ENV_KEY


def test_key_file_comes_last(places: dict[str, Path]) -> None:
    assert load_api_key(ApiConfig(api_key_file=places["key_file"]), {}) == FILE_KEY


def test_credentials_directory_without_the_key_falls_through(
    places: dict[str, Path], tmp_path: Path
) -> None:
    other = tmp_path / "other-credentials"
    other.mkdir()
    environ = {"CREDENTIALS_DIRECTORY": str(other)}
    assert load_api_key(ApiConfig(api_key_file=places["key_file"]), environ) == FILE_KEY


def test_empty_sources_fall_through(places: dict[str, Path]) -> None:
    (places["credentials"] / "api-key").write_text(" \n", encoding="utf-8")
    environ = {"CREDENTIALS_DIRECTORY": str(places["credentials"]), "BGCUT_API_KEY": "  "}
    assert load_api_key(ApiConfig(api_key_file=places["key_file"]), environ) == FILE_KEY


def test_no_key_anywhere_names_every_place_looked(tmp_path: Path) -> None:
    error = _error_of(ApiConfig(api_key_file=tmp_path / "missing"), {"BGCUT_API_KEY": ""})
    assert error.problems == [
        "api key: no API key found; looked in $CREDENTIALS_DIRECTORY/api-key"
        " (CREDENTIALS_DIRECTORY not set), $BGCUT_API_KEY (empty), api.api_key_file"
        f" ({tmp_path / 'missing'}: no such file)"
    ]


def test_no_key_without_key_file(places: dict[str, Path]) -> None:
    (places["credentials"] / "api-key").write_text("", encoding="utf-8")
    error = _error_of(ApiConfig(), {"CREDENTIALS_DIRECTORY": str(places["credentials"])})
    credential = places["credentials"] / "api-key"
    assert error.problems == [
        f"api key: no API key found; looked in $CREDENTIALS_DIRECTORY/api-key ({credential}:"
        " empty), $BGCUT_API_KEY (not set), api.api_key_file (not set)"
    ]


def test_unreadable_key_file_is_an_error_without_the_key(places: dict[str, Path]) -> None:
    # root reads any file whatever its mode, so make the key file unreadable as a directory
    key_dir = places["key_file"].parent / "key-dir"
    key_dir.mkdir()
    error = _error_of(ApiConfig(api_key_file=key_dir), {})
    assert error.problems == [f"api.api_key_file: cannot read {key_dir}: Is a directory"]


def test_undecodable_key_file_does_not_quote_its_bytes(tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_bytes(b"abc\xff\xfedef")
    error = _error_of(ApiConfig(api_key_file=key_file), {})
    assert error.problems == [f"api.api_key_file: {key_file} is not UTF-8 text"]
    assert error.__cause__ is None and error.__suppress_context__


def test_key_with_inner_whitespace_is_rejected_without_quoting_it(
    places: dict[str, Path],
) -> None:
    secret = "first-half second-half"
    error = _error_of(ApiConfig(), {"BGCUT_API_KEY": secret})
    assert error.problems == [
        "api key: the key from $BGCUT_API_KEY contains whitespace, control or non-ASCII"
        " characters"
    ]
    assert "half" not in str(error)


def test_errors_never_contain_the_key(places: dict[str, Path]) -> None:
    places["key_file"].write_text(f"{FILE_KEY}\n{FILE_KEY}", encoding="utf-8")
    error = _error_of(ApiConfig(api_key_file=places["key_file"]), {})
    assert FILE_KEY not in str(error)
    assert all(FILE_KEY not in problem for problem in error.problems)


def test_redact() -> None:
    assert redact("Token abc123 and abc123", "abc123") == "Token *** and ***"
    assert redact("nothing to hide", "") == "nothing to hide"


def _logger_with_filter(secret: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(secret))
    logger = logging.getLogger(f"test_secrets.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_redacting_filter_redacts_messages_args_and_tracebacks() -> None:
    secret = "sk-live-0123456789"
    logger, stream = _logger_with_filter(secret)
    logger.info("header was Token %s", secret)
    logger.warning(f"inline {secret}")
    try:
        raise RuntimeError(f"boom with {secret}")
    except RuntimeError:
        logger.exception("request failed")
    logger.info("harmless %d", 42)
    output = stream.getvalue()
    assert secret not in output
    assert "INFO header was Token ***" in output
    assert "WARNING inline ***" in output
    assert "RuntimeError: boom with ***" in output
    assert "INFO harmless 42" in output


def test_redacting_filter_survives_a_broken_format_string() -> None:
    secret = "sk-live-0123456789"
    logger, stream = _logger_with_filter(secret)
    logger.info("two %s %s", secret)  # one argument short
    output = stream.getvalue()
    assert secret not in output
    assert "two %s %s (arguments: ('***',))" in output
