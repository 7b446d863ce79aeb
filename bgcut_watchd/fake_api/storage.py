"""The emulator's file space: stored paths on disk under ``<root>/files``, with expiry.

Creation times come from the injected monotonic ``clock`` so tests can age files without
waiting. Uploads never overwrite: a taken name gets a ``-1``, ``-2``... suffix on its stem (the
client must use the path the API returns). Process outputs replace any file at their path.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from bgcut_watchd.fake_api.paths import validate_remote_path

MAX_NAME_TRIES = 1000


@dataclass(frozen=True)
class StoredFile:
    """One file in the emulator's space."""

    path: str
    size_bytes: int
    created_s: float


class Storage:
    """Thread-safe store of remote paths; files older than ``expiry_s`` are gone (404)."""

    def __init__(self, root: Path, clock: Callable[[], float]) -> None:
        self.root = root
        self.files_dir = root / "files"
        self.tmp_dir = root / "tmp"
        self._clock = clock
        self._lock = threading.Lock()
        self._index: dict[str, StoredFile] = {}
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._index_existing()

    def _index_existing(self) -> None:
        """Files left by an earlier run count as created now."""
        now = self._clock()
        for local in self.files_dir.rglob("*"):
            if local.is_file():
                path = local.relative_to(self.files_dir).as_posix()
                self._index[path] = StoredFile(path, local.stat().st_size, now)

    def new_temp(self) -> IO[bytes]:
        """An open, named temporary file in the storage's own folder (caller commits or drops)."""
        return tempfile.NamedTemporaryFile(dir=self.tmp_dir, delete=False)

    def local_path(self, path: str) -> Path:
        """Where the remote ``path`` lives on disk (``path`` must be validated)."""
        return self.files_dir.joinpath(*path.split("/"))

    def commit_upload(self, temp: Path, upload_path: str, file_name: str) -> str:
        """Move ``temp`` to ``<upload_path>/<file_name>`` or a suffixed free name; return it.

        Raises:
            ValueError: the folder cannot be made (a file is in the way) or no free name.
        """
        folder = PurePosixPath(upload_path)
        stem, dot, ext = file_name.partition(".")
        try:
            self._make_parent(self.local_path(f"{upload_path}/{file_name}"))
            for attempt in range(MAX_NAME_TRIES):
                name = file_name if attempt == 0 else f"{stem}-{attempt}{dot}{ext}"
                path = str(folder / name)
                if self._link_new(temp, path):
                    return path
        finally:
            temp.unlink(missing_ok=True)
        raise ValueError(f"no free file name under {upload_path!r}")

    def _link_new(self, temp: Path, path: str) -> bool:
        """Hard-link ``temp`` at ``path`` unless that name exists; True when it was free."""
        local = self.local_path(path)
        try:
            os.link(temp, local)
        except FileExistsError:
            return False
        self._record(path, local)
        return True

    def store_output(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path`` atomically, replacing any file there.

        Raises:
            ValueError: a file or folder in the way makes ``path`` impossible.
        """
        local = self.local_path(path)
        self._make_parent(local)
        with self.new_temp() as temp:
            temp.write(data)
        try:
            Path(temp.name).replace(local)
        except OSError as exc:
            Path(temp.name).unlink(missing_ok=True)
            raise ValueError(f"cannot store a file at {path!r}") from exc
        self._record(path, local)

    def check_output(self, path: str) -> None:
        """Whether ``store_output`` could store a file at ``path`` now, without storing it.

        Raises:
            ValueError: a stored file is in the way of its folder, or a folder is at ``path``.
        """
        local = self.local_path(path)
        for parent in local.relative_to(self.files_dir).parents:
            if (self.files_dir / parent).is_file():
                raise ValueError("a stored file is in the way of that folder")
        if local.is_dir():
            raise ValueError(f"cannot store a file at {path!r}")

    def _make_parent(self, local: Path) -> None:
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ValueError("a stored file is in the way of that folder") from exc

    def _record(self, path: str, local: Path) -> None:
        entry = StoredFile(path, local.stat().st_size, self._clock())
        with self._lock:
            self._index[path] = entry

    def find(self, path: str, expiry_s: float) -> StoredFile | None:
        """The live file at ``path``, or None when it never existed, expired, or is invalid."""
        try:
            validate_remote_path(path, "path")
        except ValueError:
            return None
        with self._lock:
            entry = self._index.get(path)
        if entry is None:
            return None
        if self._clock() - entry.created_s >= expiry_s:
            self._forget(entry)
            return None
        return entry

    def purge_expired(self, expiry_s: float) -> None:
        """Delete every file older than ``expiry_s``."""
        now = self._clock()
        with self._lock:
            expired = [e for e in self._index.values() if now - e.created_s >= expiry_s]
        for entry in expired:
            self._forget(entry)

    def _forget(self, entry: StoredFile) -> None:
        with self._lock:
            if self._index.get(entry.path) is entry:
                del self._index[entry.path]
                self.local_path(entry.path).unlink(missing_ok=True)

    def live_files(self, expiry_s: float) -> list[StoredFile]:
        """Every file not yet expired."""
        self.purge_expired(expiry_s)
        with self._lock:
            return list(self._index.values())
