"""The API key: where it comes from (product.md, "The API key") and how logs never show it.

Lookup order: the systemd credential ``$CREDENTIALS_DIRECTORY/api-key`` (``LoadCredential=``),
the environment variable ``BGCUT_API_KEY``, then the file named by ``api.api_key_file``. Error
messages name the places looked at, never the key or any part of a key file's content.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from bgcut_watchd.config.model import API_KEY_CREDENTIAL, API_KEY_ENV, ApiConfig, HttpConfig
from bgcut_watchd.errors import ConfigError

REDACTED = "***"
_CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


def load_api_key(api: ApiConfig, environ: Mapping[str, str] = os.environ) -> str:
    """The API key from the first place that holds a non-empty one, whitespace stripped.

    Raises ConfigError when no place holds a key, when a key file exists but cannot be read, or
    when the key contains whitespace or control characters (it could not go in an HTTP header).
    """
    return find_api_key(api, environ)[0]


def find_api_key(api: ApiConfig, environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The API key and where it was found (e.g. ``$BGCUT_API_KEY``), like :func:`load_api_key`.

    The place never contains any part of the key. Raises ConfigError like :func:`load_api_key`.
    """
    looked: list[str] = []
    credential_dir = environ.get(_CREDENTIALS_ENV, "")
    place = f"${_CREDENTIALS_ENV}/{API_KEY_CREDENTIAL}"
    if not credential_dir:
        looked.append(f"{place} ({_CREDENTIALS_ENV} not set)")
    else:
        path = Path(credential_dir) / API_KEY_CREDENTIAL
        key = _read_key_file(place, path, looked)
        if key:
            return _checked(key, f"{place} ({path})"), f"the systemd credential {place}"
    key = environ.get(API_KEY_ENV, "").strip()
    if key:
        return _checked(key, f"${API_KEY_ENV}"), f"the environment variable ${API_KEY_ENV}"
    looked.append(f"${API_KEY_ENV} ({'empty' if API_KEY_ENV in environ else 'not set'})")
    if api.api_key_file is None:
        looked.append("api.api_key_file (not set)")
    else:
        key = _read_key_file("api.api_key_file", api.api_key_file, looked)
        if key:
            place = f"api.api_key_file ({api.api_key_file})"
            return _checked(key, place), place
    raise ConfigError([f"api key: no API key found; looked in {', '.join(looked)}"])


def _read_key_file(place: str, path: Path, looked: list[str]) -> str:
    """The stripped content of ``path``, or "" (noted in ``looked``) when missing or empty.

    Raises ConfigError when the file exists but cannot be read or is not UTF-8 text.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        looked.append(f"{place} ({path}: no such file)")
        return ""
    except OSError as exc:
        raise ConfigError([f"{place}: cannot read {path}: {exc.strerror or exc}"]) from None
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        # from None: the decode error would quote bytes of the key
        raise ConfigError([f"{place}: {path} is not UTF-8 text"]) from None
    if not key:
        looked.append(f"{place} ({path}: empty)")
    return key


def _checked(key: str, place: str) -> str:
    """``key`` when it can be sent in an ``Authorization`` header; never quotes it."""
    if all(char.isascii() and char.isprintable() and not char.isspace() for char in key):
        return key
    problem = "contains whitespace, control or non-ASCII characters"
    raise ConfigError([f"api key: the key from {place} {problem}"])


def load_http_token(http: HttpConfig) -> str | None:
    """The bearer token of ``http.token_file`` (stripped), or None when no file is named.

    Raises ConfigError when the file cannot be read, is empty, or holds characters that cannot
    go in an HTTP header; the message never quotes the file's content.
    """
    if http.token_file is None:
        return None
    looked: list[str] = []
    token = _read_key_file("http.token_file", http.token_file, looked)
    if not token:
        raise ConfigError([f"http.token_file: {looked[0].partition('(')[2].rstrip(')')}"])
    if not all(char.isascii() and char.isprintable() and not char.isspace() for char in token):
        raise ConfigError([f"http.token_file: {http.token_file} holds whitespace, control or "
                           "non-ASCII characters"])
    return token


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***`` (no-op for "")."""
    return text.replace(secret, REDACTED) if secret else text


class RedactingFilter(logging.Filter):
    """Replaces the secret in a record's message, arguments, traceback and stack text.

    Install it on a handler: a belt-and-braces guard, since no code should log the key at all.
    """

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secret:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: the handler would print msg and args raw
            message = f"{record.msg!s} (arguments: {record.args!r})"
            record.msg, record.args = message, None
        if self._secret in message:
            record.msg = redact(message, self._secret)
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secret)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secret)
        return True
