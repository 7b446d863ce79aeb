"""Mounts: what is mounted now (``/proc/self/mountinfo``) and what the administrator declared
(``/etc/fstab``, systemd ``.mount`` units), so the daemon can tell a share that is not mounted
yet (a late NFS/SMB mount at boot) from a local folder.

A folder under a declared mount point that is not mounted is on *standby*: the daemon neither
watches it nor writes into it (it would fill the empty mount point on the local disk) until the
share is there.
"""

from __future__ import annotations

import os
import re
import select
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO_PATH = Path("/proc/self/mountinfo")
FSTAB_PATH = Path("/etc/fstab")
# The administrator's unit files and the runtime's (``systemd-mount``). Not the packages'
# (``/usr/lib/systemd/system``): they ship units such as ``tmp.mount`` that are seldom enabled,
# and a folder under ``/tmp`` would wait forever for a mount that never comes.
MOUNT_UNITS_DIRS = (Path("/etc/systemd/system"), Path("/run/systemd/system"))
_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")
_NOT_MOUNT_POINTS = {"none", "swap", "-"}


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: where it is mounted and its filesystem type."""

    mount_point: str
    fstype: str


@dataclass(frozen=True)
class MountTables:
    """Where to read the three tables (tests point them at files of their own)."""

    mountinfo: Path = MOUNTINFO_PATH
    fstab: Path = FSTAB_PATH
    units_dirs: tuple[Path, ...] = MOUNT_UNITS_DIRS


SYSTEM_TABLES = MountTables()


def _unescape(field: bytes) -> str:
    """Undo the octal escapes of mountinfo and fstab (``\\040`` is a space)."""
    return os.fsdecode(_OCTAL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), field))


def parse_mountinfo(text: bytes) -> list[Mount]:
    """The mounts listed in a mountinfo text, in order; malformed lines are skipped."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split(b" ")
        try:
            separator = fields.index(b"-", 6)
            mounts.append(Mount(_unescape(fields[4]), _unescape(fields[separator + 1])))
        except (ValueError, IndexError):
            continue
    return mounts


def parse_fstab(text: bytes) -> list[str]:
    """The mount points declared in an fstab text (no swap, no comments)."""
    points: list[str] = []
    for line in text.splitlines():
        fields = line.split(b"#", 1)[0].split()
        if len(fields) >= 2 and fields[1].decode("ascii", "replace") not in _NOT_MOUNT_POINTS:
            points.append(os.path.normpath(_unescape(fields[1])))
    return points


def parse_mount_unit(text: str) -> str | None:
    """The ``Where=`` of a systemd ``.mount`` unit, or None."""
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "Where" and value.strip():
            return os.path.normpath(value.strip())
    return None


def contains(mount_point: str, path: str) -> bool:
    """True when ``path`` is ``mount_point`` or lies below it."""
    if mount_point == "/":
        return True
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def current_mounts(tables: MountTables = SYSTEM_TABLES) -> list[Mount]:
    """What is mounted now; empty when mountinfo cannot be read. Raises nothing."""
    try:
        return parse_mountinfo(tables.mountinfo.read_bytes())
    except OSError:
        return []


def declared_mount_points(tables: MountTables = SYSTEM_TABLES) -> dict[str, str]:
    """Mount point -> where it is declared (``/etc/fstab`` or a unit file). Raises nothing."""
    declared: dict[str, str] = {}
    try:
        for point in parse_fstab(tables.fstab.read_bytes()):
            declared.setdefault(point, str(tables.fstab))
    except OSError:
        pass
    for unit in _unit_files(tables.units_dirs):
        try:
            where = parse_mount_unit(unit.read_text("utf-8", "replace"))
        except OSError:
            continue
        if where is not None:
            declared.setdefault(where, str(unit))
    return declared


def _unit_files(directories: Iterable[Path]) -> Iterable[Path]:
    """The ``.mount`` units of ``directories``, a name's first one only (``/etc`` overrides
    ``/run``)."""
    seen: dict[str, Path] = {}
    for directory in directories:
        try:
            units = sorted(directory.glob("*.mount"))
        except OSError:
            continue
        for unit in units:
            seen.setdefault(unit.name, unit)
    return list(seen.values())


def standby_reason(path: Path, tables: MountTables = SYSTEM_TABLES) -> str | None:
    """Why ``path`` must wait: it lies under a declared mount point that is not mounted now;
    None when it can be used. Raises nothing."""
    return standby_reason_of_resolved(str(Path(path).resolve()), tables)


@dataclass(frozen=True)
class MountSnapshot:
    """The mount points mounted now and the declared ones (point -> where declared)."""

    mounted: frozenset[str]
    declared: dict[str, str]


def snapshot(tables: MountTables = SYSTEM_TABLES) -> MountSnapshot:
    """Read the three tables once. Raises nothing."""
    return MountSnapshot(frozenset(m.mount_point for m in current_mounts(tables)),
                         declared_mount_points(tables))


class MountView:
    """The tables as of now, re-read only when they changed: mountinfo when ``poll`` says so
    (the kernel flags ``POLLPRI`` on it at every mount and unmount), fstab and the ``.mount``
    units when their list or a modification time changes. For a caller asking every second
    (issue 14: re-reading all three for every path of every folder cost 0.3 s of CPU a minute
    idle with 10 folders). Not thread-safe; raises nothing."""

    def __init__(self, tables: MountTables = SYSTEM_TABLES) -> None:
        self._tables = tables
        self._poll = select.poll()
        self._stamp: tuple[object, ...] | None = None
        self._current: MountSnapshot | None = None
        self._fd: int | None = None
        if not str(tables.mountinfo).startswith("/proc/"):
            return  # a plain file (tests) flags no change: it is read every time
        try:
            self._fd = os.open(tables.mountinfo, os.O_RDONLY | os.O_CLOEXEC)
            self._poll.register(self._fd, select.POLLPRI | select.POLLERR)
            weakref.finalize(self, os.close, self._fd)
        except OSError:
            self._fd = None  # not a kernel file that can be polled: read it every time

    def now(self) -> MountSnapshot:
        """The tables, read again if anything changed since the last call."""
        stamp = self._declared_stamp()
        if self._current is None or self._mountinfo_changed() or stamp != self._stamp:
            self._current = snapshot(self._tables)
            self._stamp = stamp
        return self._current

    def _mountinfo_changed(self) -> bool:
        if self._fd is None:
            return True
        if not self._poll.poll(0):
            return False
        os.lseek(self._fd, 0, os.SEEK_SET)  # reading it to the end acknowledges the event
        while os.read(self._fd, 65536):
            pass
        return True

    def _declared_stamp(self) -> tuple[object, ...]:
        stamps: list[object] = []
        for path in (self._tables.fstab, *self._tables.units_dirs,
                     *_unit_files(self._tables.units_dirs)):
            try:
                st = path.stat()
                stamps.append((st.st_mtime_ns, st.st_ino, st.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)


def standby_reason_of_resolved(target: str, tables: MountTables = SYSTEM_TABLES,
                               tables_now: MountSnapshot | None = None) -> str | None:
    """:func:`standby_reason` of a path already resolved (symlinks followed, like the mount
    table): reads only the mount tables (or uses ``tables_now``, read once by the caller),
    never the path itself, so a share that stopped answering cannot block the caller. Raises
    nothing."""
    seen = tables_now if tables_now is not None else snapshot(tables)
    mounted, declared = seen.mounted, seen.declared
    for point in sorted(declared, key=len, reverse=True):
        if point != "/" and contains(point, target) and point not in mounted:
            return (f"{point} is declared in {declared[point]} but not mounted: waiting for "
                    "it (nothing is watched or written there until it is)")
    return None
