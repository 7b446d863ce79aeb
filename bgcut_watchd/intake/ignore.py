"""Ignore rules (product.md, "What happens to one file", step 2): names the daemon never touches.

Every rule is tested against every component of the path relative to the inbox, from the top
down, so a rule that hides a folder hides everything below it. That makes the answer for
``a/b/c.jpg`` the same whether the file was reached by a scan (which skips ignored folders
early) or by an event (which sees the whole path at once).

- Built-in: any hidden name (leading ``.``; this hides the work area ``.bgcut-work``), the
  partial-download and editor patterns, the Synology/Syncthing/NAS folders, and the Windows
  names ``Thumbs.db`` / ``desktop.ini`` (these two case-insensitively, as Windows writes them in
  any case).
- The folder's ``ignore`` list: a pattern without ``/`` is a glob on a name; a pattern with ``/``
  is a glob on the relative path, anchored at the inbox (``*`` also matches ``/``, so ``raw/*``
  hides everything under ``raw``). Leading and trailing slashes are dropped. Case-sensitive.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import PurePath

BUILTIN_NAME_PATTERNS: tuple[str, ...] = (
    "*.part", "*.partial", "*.tmp", "*.crdownload", "*.download", "~$*", "*~", "*.swp",
    ".syncthing.*", "~syncthing~*", "._*", ".DS_Store",
)
BUILTIN_CASELESS_NAMES: tuple[str, ...] = ("Thumbs.db", "desktop.ini")
BUILTIN_FOLDER_NAMES: tuple[str, ...] = ("@eaDir", ".stfolder", ".stversions", "#recycle")


def _any_of(patterns: tuple[str, ...], flags: int = 0) -> re.Pattern[str] | None:
    """One regex matching any of the globs (the fast "no match" path), or None when empty."""
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns), flags)


@dataclass(frozen=True)
class _GlobSet:
    """Glob patterns with one combined regex to reject quickly and the rule text for a hit."""

    label: str
    patterns: tuple[str, ...]
    flags: int = 0
    _combined: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_combined", _any_of(self.patterns, self.flags))

    def match(self, text: str) -> str | None:
        """The rule description of the first pattern matching ``text``, or None."""
        if self._combined is None or self._combined.match(text) is None:
            return None
        for pattern in self.patterns:
            if re.match(fnmatch.translate(pattern), text, self.flags):
                return f"{self.label} {pattern!r}"
        return None  # pragma: no cover - the combined regex and the loop agree


class IgnoreRules:
    """The built-in ignore rules plus one folder's ``ignore`` patterns. Immutable, thread-safe."""

    def __init__(self, extra_patterns: tuple[str, ...] = ()) -> None:
        names: list[str] = []
        paths: list[str] = []
        for raw in extra_patterns:
            pattern = raw.strip("/")
            if not pattern:
                continue
            (paths if "/" in raw else names).append(pattern)
        self.extra_patterns = tuple(extra_patterns)
        self._name_sets = (
            _GlobSet("built-in folder", BUILTIN_FOLDER_NAMES),
            _GlobSet("built-in name", BUILTIN_CASELESS_NAMES, re.IGNORECASE),
            _GlobSet("built-in pattern", BUILTIN_NAME_PATTERNS),
            _GlobSet("ignore pattern", tuple(names)),
        )
        self._path_set = _GlobSet("ignore pattern", tuple(paths))

    def is_ignored(self, relpath: PurePath, *, parents_checked: bool = False) -> str | None:
        """The rule that hides ``relpath`` (relative to the inbox), or None if it is not ignored.

        With ``parents_checked`` the caller vouches that every ancestor folder was already
        found not ignored (a scan descending the tree), so only the last component is tested.
        Raises nothing.
        """
        parts = relpath.parts
        first = len(parts) - 1 if parents_checked else 0
        for depth in range(max(first, 0), len(parts)):
            rule = self._match_component(parts, depth)
            if rule is not None:
                return rule
        return None

    def _match_component(self, parts: tuple[str, ...], depth: int) -> str | None:
        """The rule matching ``parts[depth]`` by name, or ``parts[:depth+1]`` by path."""
        name = parts[depth]
        for glob_set in self._name_sets:
            rule = glob_set.match(name)
            if rule is not None:
                return rule
        if name.startswith("."):
            return f"built-in hidden name {name!r}"
        return self._path_set.match("/".join(parts[: depth + 1]))
