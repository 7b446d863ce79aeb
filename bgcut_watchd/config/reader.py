"""Typed reads with key paths and the value rules of the configuration (product.md).

Every reader records a problem as ``"<key path>: <problem>"`` and returns a usable fallback, so a
single pass over the file collects every problem; ``config.load`` raises them together
in one ``ConfigError``. Nothing here touches the filesystem (``config.folders`` does).

Over 300 lines on purpose: one reader type and the value checks it applies, each a few
lines; a check lives beside the reader that reports it by key path, so a rule is in one place.
"""

from __future__ import annotations

import difflib
import enum
import json
import math
import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from urllib.parse import urlsplit

OUTPUT_PLACEHOLDERS = ("stem", "variant", "ext", "folder")
_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
    (list, "array"), (tuple, "array"), (Mapping, "table"),
    (datetime, "datetime"), (date, "date"), (time, "time"),
)
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


class _Absent(enum.Enum):
    MISSING = enum.auto()


MISSING = _Absent.MISSING
Check = Callable[[str], str | None]  # a value rule: the problem, or None when the value is fine


def quote(text: str) -> str:
    """``text`` in double quotes, escaped like a TOML/JSON basic string."""
    return json.dumps(text, ensure_ascii=False)


def type_name(value: object) -> str:
    """The TOML name of ``value``'s type (``string``, ``integer``, ``table``...)."""
    for kind, name in _TOML_TYPES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


class Problems:
    """Collects errors and warnings, each as ``"<key path>: <problem>"``."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, key: str, problem: str) -> None:
        self.errors.append(f"{key}: {problem}")

    def warn(self, key: str, problem: str) -> None:
        self.warnings.append(f"{key}: {problem}")


class Table:
    """One TOML table, read key by key; ``prefix`` is its key path (``""`` for the root)."""

    def __init__(self, data: Mapping[str, object], prefix: str, problems: Problems) -> None:
        self.data = data
        self.prefix = prefix
        self.problems = problems

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, problem: str) -> None:
        self.problems.error(self.key(name), problem)

    def has(self, name: str) -> bool:
        return name in self.data

    def reject_unknown(self, allowed: Sequence[str]) -> None:
        """Report every key not in ``allowed``, with a "did you mean" for a near miss."""
        for name in self.data:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.75)
                hint = f" (did you mean {quote(close[0])}?)" if close else ""
                self.error(name, f"unknown key{hint}")

    def _fetch(self, name: str, expected: str, accepts: Callable[[object], bool]) -> object:
        """The raw value, ``MISSING`` when absent, or ``None`` (reported) when of the wrong type."""
        value = self.data.get(name, MISSING)
        if value is MISSING or accepts(value):
            return value
        self.error(name, f"expected {expected}, got {type_name(value)}")
        return None

    def table(self, name: str) -> Table:
        """The sub-table ``name``, empty when absent or (reported) not a table."""
        value = self._fetch(name, "a table", lambda v: isinstance(v, Mapping))
        data = value if isinstance(value, Mapping) else {}
        return Table(data, self.key(name), self.problems)

    def string(self, name: str, default: str, check: Check | None = None) -> str:
        value = self.optional_string(name, check)
        return default if value is None else value

    def optional_string(self, name: str, check: Check | None = None) -> str | None:
        """The string, or None when absent, of the wrong type or rejected by ``check``."""
        value = self._fetch(name, "a string", lambda v: isinstance(v, str))
        if not isinstance(value, str):
            return None
        problem = check(value) if check is not None else None
        if problem is not None:
            self.error(name, problem)
            return None
        return value

    def required_string(self, name: str, check: Check) -> str | None:
        if not self.has(name):
            self.error(name, "missing required key")
        return self.optional_string(name, check)

    def array_of_tables(self, name: str) -> list[tuple[int, Table]]:
        """``[[name]]`` as ``(index, table)`` pairs; at least one is required."""
        value = self.data.get(name, MISSING)
        if value is MISSING or (isinstance(value, list | tuple) and not value):
            self.error(name, f"at least one [[{name}]] table is required")
            return []
        if not isinstance(value, list | tuple):
            self.error(name, f"expected an array of tables ([[{name}]]), got {type_name(value)}")
            return []
        tables: list[tuple[int, Table]] = []
        for index, item in enumerate(value):
            key = f"{self.key(name)}[{index}]"
            if isinstance(item, Mapping):
                tables.append((index, Table(item, key, self.problems)))
            else:
                self.problems.error(key, f"expected a table, got {type_name(item)}")
        return tables

    def choice(self, name: str, default: str, allowed: Sequence[str]) -> str:
        def check(value: str) -> str | None:
            if value in allowed:
                return None
            return f"must be one of {', '.join(allowed)}, got {quote(value)}"

        return self.string(name, default, check)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._fetch(name, "a boolean", lambda v: isinstance(v, bool))
        return value if isinstance(value, bool) else default

    def integer(
        self, name: str, default: int, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self._fetch(name, "an integer", _is_integer)
        if not isinstance(value, int) or isinstance(value, bool):
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.error(name, f"{_range_text(minimum, maximum)}, got {value}")
            return default
        return value

    def number(
        self, name: str, default: float, minimum: float = 0, exclusive: bool = True
    ) -> float:
        """A finite float (an integer is accepted), > ``minimum`` (or >= when not exclusive)."""
        value = self._fetch(name, "a number", _is_number)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return default
        if not math.isfinite(value):
            self.error(name, f"must be a finite number, got {value}")
            return default
        if value < minimum or (exclusive and value == minimum):
            self.error(name, f"must be {'>' if exclusive else '>='} {minimum}, got {value}")
            return default
        return float(value)

    def strings(self, name: str, check: Check | None = None) -> list[tuple[str, str]] | None:
        """An array of strings as ``(key path, item)`` pairs; None when absent or invalid."""
        value = self._fetch(name, "an array of strings", lambda v: isinstance(v, list | tuple))
        if not isinstance(value, list | tuple):
            return None
        items: list[tuple[str, str]] = []
        for index, item in enumerate(value):
            key = f"{self.key(name)}[{index}]"
            problem = check(item) if check is not None and isinstance(item, str) else None
            if not isinstance(item, str):
                self.problems.error(key, f"expected a string, got {type_name(item)}")
            elif problem is not None:
                self.problems.error(key, problem)
            else:
                items.append((key, item))
        return items if len(items) == len(value) else None

    def required_path(self, name: str, base: Path) -> Path | None:
        if not self.has(name):
            self.error(name, "missing required key")
        return self.path(name, base)

    def path(self, name: str, base: Path) -> Path | None:
        """An absolute path: ``~`` expanded, relative paths resolved against ``base``."""
        text = self.optional_string(name, _check_path_text)
        if text is None:
            return None
        try:
            expanded = Path(text).expanduser()
        except RuntimeError:
            self.error(name, f"cannot expand the home directory in {quote(text)}")
            return None
        return Path(os.path.normpath(base / expanded))


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"must be between {minimum} and {maximum}"
    if minimum is not None:
        return f"must be >= {minimum}"
    return f"must be <= {maximum}"


def _check_path_text(text: str) -> str | None:
    if not text:
        return "must not be empty"
    if "\0" in text:
        return "must not contain a NUL character"
    return None


def check_name(text: str) -> str | None:
    """A folder or variant name: it appears in output names, logs and the command line."""
    if not text or text in (".", ".."):
        return f"invalid name {quote(text)}"
    if "/" in text or any(not char.isprintable() for char in text):
        return f'invalid name {quote(text)}: must not contain "/" or control characters'
    return None


def check_base_url(text: str) -> str | None:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"must be an http:// or https:// URL, got {quote(text)}"
    if parts.query or parts.fragment:
        return f"must not have a query or a fragment, got {quote(text)}"
    return None


def check_webhook_url(text: str) -> str | None:
    """"" (no webhook) or an http(s) URL; a query is allowed (some webhooks carry a token)."""
    parts = urlsplit(text)
    if text and (parts.scheme not in ("http", "https") or not parts.netloc):
        return "must be an http:// or https:// URL (or \"\" for none)"
    return None


def check_upload_prefix(text: str) -> str | None:
    segments = text.split("/")
    if all(_PREFIX_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        return None
    return f'must be a relative path of [A-Za-z0-9._-] segments separated by "/", got {quote(text)}'


def check_color(text: str) -> str | None:
    return None if _COLOR.fullmatch(text) else f'must be a colour "#rrggbb", got {quote(text)}'


def check_glob(text: str) -> str | None:
    return "must not be empty" if not text else None


def check_output_name(template: str) -> str | None:
    """The ``output_name`` rules: known placeholders only, ``{stem}``, and a part per variant."""
    if "/" in template or "\0" in template:
        return f'must not contain "/" or a NUL character, got {quote(template)}'
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"invalid template {quote(template)}: {exc}"
    names = set()
    for _literal, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in OUTPUT_PLACEHOLDERS or spec or conversion:
            allowed = ", ".join(f"{{{n}}}" for n in OUTPUT_PLACEHOLDERS)
            return f"unknown placeholder {{{name}}} (allowed: {allowed})"
        names.add(name)
    if "stem" not in names:
        return f"must contain {{stem}}, got {quote(template)}"
    if not names & {"variant", "ext"}:
        return f"must contain {{variant}} or {{ext}}, got {quote(template)}"
    return None

