"""Durable filesystem operations: atomic writes, no-clobber renames, EXDEV-safe moves.

Every effect here follows one recipe: write beside the target under a hidden temporary name,
fsync the file, rename it into place, fsync the directory. After a power cut the target holds
either the old content or the new one, never a part.

Names are ``str`` paths as Python gives them: bytes that are not UTF-8 arrive as lone surrogates
(``surrogateescape``) and go back to the kernel unchanged. Temporary names are derived from a
short hash of the target name, never from the name itself, so a 255-byte target name (NAME_MAX)
still gets a short temporary name.

These functions raise plain :class:`OSError` (callers know which folder they were writing);
:func:`local_disk` turns them into :class:`~bgcut_watchd.errors.LocalDiskError` at the job layer.

Over 300 lines on purpose: a toolbox of small, independent, durable primitives (each under 30
lines) that every other layer shares; splitting it would only scatter them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bgcut_watchd.errors import LocalDiskError

StrPath = str | os.PathLike[str]

TEMP_PREFIX = ".bgcut-"
"""Every temporary name made here starts with this (hidden: the inbox watcher ignores it)."""

_COPY_CHUNK_BYTES = 1024 * 1024
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
# The kernel or filesystem cannot do the no-clobber primitive asked for: try the next one.
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})
_NO_HARDLINKS = _UNSUPPORTED | {errno.EPERM, errno.EMLINK}


def _load_renameat2() -> Callable[..., int] | None:
    """glibc's ``renameat2`` (2.28+), or None where the C library lacks it."""
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    func.restype = ctypes.c_int
    return func


_RENAMEAT2 = _load_renameat2()  # read-only after import; tests may monkeypatch it to None


def short_hash(name: StrPath) -> str:
    """12 hex digits naming ``name`` (its bytes, surrogates included) in temporary names."""
    return hashlib.blake2b(os.fsencode(name), digest_size=6).hexdigest()


def temp_path_beside(path: StrPath, suffix: str = ".tmp") -> Path:
    """A fresh hidden name in ``path``'s directory, short whatever the length of ``path``."""
    target = Path(path)
    return target.with_name(f"{TEMP_PREFIX}{short_hash(target.name)}-{os.urandom(4).hex()}{suffix}")


def discard_stale_temps(path: StrPath) -> int:
    """Remove the hidden temporaries :func:`temp_path_beside` made for ``path`` by an earlier
    attempt (a move across filesystems killed mid-copy); how many. Raises nothing."""
    target = Path(path)
    pattern = f"{TEMP_PREFIX}{short_hash(target.name)}-*.tmp"
    removed = 0
    for stale in target.parent.glob(pattern):
        try:
            stale.unlink()
            removed += 1
        except OSError:
            continue
    return removed


def fsync_dir(path: StrPath) -> None:
    """Make the entries of directory ``path`` durable. Raises OSError.

    Filesystems that cannot fsync a directory (EINVAL, ENOTSUP: some FUSE and SMB mounts) are
    accepted silently: there is nothing more we could do there.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def fsync_file(path: StrPath) -> None:
    """Flush the content of the regular file ``path`` to disk (``fdatasync``: its data and the
    size that reaches it, not its times). Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_new_file(path: StrPath, data: bytes, *, exclusive: bool = True) -> None:
    """Create ``path`` with ``data`` and ``fdatasync`` it (not the directory). Raises OSError.

    ``exclusive`` refuses an existing file (FileExistsError); otherwise it is truncated.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o666)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fdatasync(handle.fileno())


def atomic_write_bytes(path: StrPath, data: bytes) -> None:
    """Replace ``path`` with ``data``, all or nothing, durably. Raises OSError.

    On failure the temporary file is removed and ``path`` is unchanged.
    """
    target = Path(path)
    temp = temp_path_beside(target)
    try:
        write_new_file(temp, data)
        temp.replace(target)
    except BaseException:
        _remove_quietly(temp)
        raise
    fsync_dir(target.parent)


def atomic_write_json(path: StrPath, obj: Any, *, indent: int | None = 2) -> None:
    """:func:`atomic_write_bytes` of ``obj`` as JSON. Raises OSError, TypeError, ValueError.

    ``ensure_ascii`` keeps lone surrogates (names that are not UTF-8) as ``\\udcxx`` escapes,
    which ``json.loads`` turns back into the same string. ``indent=None`` writes one line with
    the C encoder (an indent makes ``json`` use its pure-Python encoder: 4x the CPU).
    """
    text = json.dumps(obj, ensure_ascii=True, indent=indent) + "\n"
    atomic_write_bytes(path, text.encode("ascii"))


def _renameat2_noreplace(src: Path, dst: Path) -> bool:
    """Try renameat2(RENAME_NOREPLACE); False when unsupported here. Raises OSError."""
    if _RENAMEAT2 is None:
        return False
    result = _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_noreplace(src: StrPath, dst: StrPath) -> None:
    """Rename ``src`` to ``dst`` unless ``dst`` exists, without fsync. Raises OSError.

    Raises FileExistsError when ``dst`` exists (it is never clobbered), OSError(EXDEV) across
    filesystems. Tries renameat2(RENAME_NOREPLACE), then link+unlink (a crash in between leaves
    two names for one file: a duplicate, never a loss), then, on filesystems without hard links
    (vfat, some SMB/FUSE mounts), a check followed by rename: racy only against another writer
    creating the very same name in the same instant.
    """
    source, target = Path(src), Path(dst)
    if _renameat2_noreplace(source, target):
        return
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_HARDLINKS:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from exc
        source.rename(target)
        return
    source.unlink()


def durable_rename(src: StrPath, dst: StrPath, *, overwrite: bool) -> None:
    """Rename ``src`` to ``dst`` on one filesystem and fsync both directories. Raises OSError.

    Without ``overwrite`` an existing ``dst`` is left alone and FileExistsError is raised.
    OSError(EXDEV) means the two are on different filesystems (use :func:`move_file`).
    """
    source, target = Path(src), Path(dst)
    if overwrite:
        source.replace(target)
    else:
        rename_noreplace(source, target)
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)


class CopyMismatchError(OSError):
    """A copy made for a move across filesystems does not match its source (the source changed
    while it was copied, or the copy was not written as read): the source stays, the copy goes."""


def _copy_regular(src: Path, temp: Path, st: os.stat_result) -> tuple[int, str]:
    """Copy regular file ``src`` to the new file ``temp`` and fsync it; the bytes copied and
    their sha256 (hashed on the way: the source is read once)."""
    fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:  # checked before fdopen, which refuses a directory naming the fd, not ``src``
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (changed type?)", str(src))
        reader = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    digest = hashlib.sha256()
    size = 0
    with reader:
        out_fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with os.fdopen(out_fd, "wb") as writer:
            while chunk := reader.read(_COPY_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
    with contextlib.suppress(OSError):  # metadata is best effort; the bytes are what matter
        temp.chmod(stat.S_IMODE(st.st_mode))
        os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
    return size, digest.hexdigest()


def _content_id(path: Path) -> tuple[int, str] | None:
    """(size, sha256) of a regular file, read in full; None for anything else or on error."""
    digest = sha256_of_regular_file(path)
    if digest is None:
        return None
    try:
        return os.lstat(path).st_size, digest
    except OSError:
        return None


def same_content(a: StrPath, b: StrPath) -> bool:
    """Whether ``a`` and ``b`` are regular files with the same size and sha256. Raises nothing
    (False when either cannot be read)."""
    first, second = Path(a), Path(b)
    try:
        if first.lstat().st_size != second.lstat().st_size:
            return False
    except OSError:
        return False
    found = _content_id(first)
    return found is not None and found == _content_id(second)


def remove_file(path: StrPath) -> None:
    """Unlink ``path`` and fsync its directory; a file already gone is fine. Raises OSError."""
    target = Path(path)
    try:
        target.unlink()
    except FileNotFoundError:
        return
    fsync_dir(target.parent)


def copy_file_durably(src: StrPath, dst: StrPath) -> str:
    """Copy the regular file ``src`` to the new file ``dst`` and fsync it (not its directory);
    the sha256 of the bytes copied (hashed on the way: the copy is read once).

    Raises FileExistsError when ``dst`` exists, OSError for any other failure (``dst`` removed);
    a failure to open ``src`` (gone, a symlink, not a regular file) names ``src`` in
    ``filename``.
    """
    source, target = Path(src), Path(dst)
    try:
        return _copy_regular(source, target, source.stat())[1]
    except FileExistsError:
        raise
    except BaseException:
        _remove_quietly(target)
        raise


def _copy_entry(src: Path, temp: Path) -> None:
    """Copy one directory entry of any type to ``temp``: content, link, FIFO or node.

    A regular file's copy is verified against its source, read again: same size, same sha256
    (CopyMismatchError otherwise).
    """
    st = os.lstat(src)
    if stat.S_ISREG(st.st_mode):
        copied = _copy_regular(src, temp, st)
        if not copied == _content_id(src) == _content_id(temp):
            raise CopyMismatchError(errno.EAGAIN, "copy differs from its source (the source "
                                    "changed while it was copied?)", str(src))
    elif stat.S_ISLNK(st.st_mode):
        temp.symlink_to(src.readlink())
    elif stat.S_ISFIFO(st.st_mode):
        # Never read a FIFO (it would block forever): recreate it.
        os.mkfifo(temp, stat.S_IMODE(st.st_mode))
    else:  # sockets need no privilege; devices need CAP_MKNOD and fail loudly without it
        os.mknod(temp, st.st_mode, st.st_rdev)


def _copy_then_swap(src: Path, dst: Path, *, overwrite: bool) -> None:
    temp = temp_path_beside(dst)
    try:
        _copy_entry(src, temp)
        durable_rename(temp, dst, overwrite=overwrite)
    except BaseException:
        _remove_quietly(temp)
        raise
    # The copy is durable under its final name: only now may the source go.
    src.unlink()
    fsync_dir(src.parent)


def move_file(src: StrPath, dst: StrPath, *, overwrite: bool = False) -> None:
    """Move ``src`` to ``dst`` durably, on one filesystem or across two. Raises OSError.

    Same filesystem: a rename. Across filesystems (EXDEV): copy to a hidden temporary name beside
    ``dst``, fsync, verify the copy against the source (size and sha256, both read again:
    CopyMismatchError when they differ), rename into place, fsync the directory, and only then
    unlink ``src``. A crash at any point leaves at worst a duplicate (``src`` and ``dst`` both
    present, with the same content: a caller that journaled ``dst`` first finishes the move with
    :func:`same_content` and :func:`remove_file`), never a loss; a failure before the rename
    leaves ``src`` in place and removes the temporary copy.

    Without ``overwrite`` an existing ``dst`` raises FileExistsError and is left alone.
    Directories are not supported. Symlinks, FIFOs and sockets move as themselves, never read.
    """
    source, target = Path(src), Path(dst)
    try:
        durable_rename(source, target, overwrite=overwrite)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_then_swap(source, target, overwrite=overwrite)


def make_dirs(path: StrPath) -> None:
    """Create ``path`` and any missing parents, fsyncing each new entry's parent.

    Raises OSError; NotADirectoryError or FileExistsError when something else is in the way.
    Safe against a concurrent creator of the same folders.
    """
    missing: list[Path] = []
    current = Path(path)
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue
        fsync_dir(folder.parent)


def show_path(path: object) -> str:
    """A path for a message or log line: quoted, newlines and odd bytes escaped."""
    if isinstance(path, bytes | str | os.PathLike):
        return repr(os.fsdecode(path))
    return repr(path)


def disk_error(action: str, exc: OSError, path: StrPath | None = None) -> LocalDiskError:
    """A LocalDiskError saying what failed, on which path, and the system's reason."""
    where = path if path is not None else exc.filename
    text = f"{action} failed for {show_path(where)}: {exc.strerror or type(exc).__name__}"
    if path is not None and exc.filename is not None and str(exc.filename) != str(path):
        text += f" ({show_path(exc.filename)})"
    if exc.filename2 is not None:
        text += f" (-> {show_path(exc.filename2)})"
    return LocalDiskError(text)


@contextlib.contextmanager
def local_disk(
    action: str, path: StrPath | None = None, *, passthrough: tuple[type[OSError], ...] = (),
) -> Iterator[None]:
    """Turn any OSError raised inside into LocalDiskError (chained), except ``passthrough``."""
    try:
        yield
    except passthrough:
        raise
    except OSError as exc:
        raise disk_error(action, exc, path) from exc


def sha256_of_regular_file(path: Path) -> str | None:
    """The content hash of a readable regular file (for an error file); None for anything else.

    Never follows a symlink and never opens a FIFO or device (that could block forever).
    """
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        try:
            return hashlib.file_digest(stream, "sha256").hexdigest()
        except OSError:
            return None
