"""Remote ("stored") paths: validation of client-chosen paths and sanitising of upload names.

A remote path is relative, uses ``/`` between segments, and has no empty, ``.`` or ``..``
segment, no backslash and no control character, so it maps safely below the storage folder.
"""

from __future__ import annotations

import re

MAX_PATH_CHARS = 1024
MAX_SEGMENT_BYTES = 255
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def validate_remote_path(value: object, field: str) -> str:
    """Return ``value`` if it is a safe remote path.

    Raises:
        ValueError: with a client-facing message naming ``field``.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: must be a non-empty string")
    if len(value) > MAX_PATH_CHARS:
        raise ValueError(f"{field}: longer than {MAX_PATH_CHARS} characters")
    if value.startswith("/") or "\\" in value or any(ord(c) < 32 or c == "\x7f" for c in value):
        raise ValueError(f"{field}: must be a relative path without backslashes or controls")
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"{field}: empty, '.' or '..' path segment")
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise ValueError(f"{field}: a path segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return value


def sanitise_file_name(name: str | None) -> str:
    """The stored name for an uploaded file: its base name with unsafe characters as ``_``.

    Directory parts (``/`` or ``\\``) are dropped; a leading dot becomes ``_`` so no stored
    file is hidden; an empty result becomes ``file``.
    """
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    safe = _UNSAFE_NAME_CHARS.sub("_", base).strip("_") or "file"
    if safe.startswith("."):
        safe = "_" + safe[1:]
    if safe in ("_", "__"):
        safe = "file"
    return safe[:200]
