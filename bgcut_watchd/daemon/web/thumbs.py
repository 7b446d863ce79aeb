"""Small pictures for the status page, made on demand with Pillow and cached.

Bounded three ways: a source larger than ``max_source_bytes`` or ``max_source_pixels`` gets no
picture; one picture is made at a time (a second request waits up to ``wait_s``, then gets
none); the cache keeps at most ``max_items`` pictures and ``max_bytes`` in all, dropping the
least recently used. A cached picture is keyed by the file's identity (device, inode, size,
mtime), so a file replaced under the same name gets a new one. Pictures are WebP, at most
``THUMB_PX`` on their longer side, upright (EXIF orientation applied).
"""

from __future__ import annotations

import io
import os
import stat
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

from PIL import Image, ImageOps

THUMB_PX = 160
MAX_SOURCE_BYTES = 64 * 1024 * 1024

FileKey = tuple[str, int, int, int, int]


class ThumbnailCache:
    """Makes and keeps thumbnails. Thread-safe; raises nothing."""

    def __init__(self, max_source_pixels: int, *, max_source_bytes: int = MAX_SOURCE_BYTES,
                 max_items: int = 256, max_bytes: int = 8 * 1024 * 1024,
                 wait_s: float = 10.0) -> None:
        self.max_source_pixels = max_source_pixels
        self.max_source_bytes = max_source_bytes
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.wait_s = wait_s
        self._cache: OrderedDict[FileKey, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._making = threading.Semaphore(1)

    def get(self, path: Path) -> bytes | None:
        """The WebP thumbnail of ``path``, or None (gone, too big, not an image, busy)."""
        try:
            st = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):  # a FIFO put in its place would block the thread
            return None
        key = (os.fsdecode(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        if st.st_size > self.max_source_bytes or not self._making.acquire(timeout=self.wait_s):
            return None
        try:
            data = make_thumbnail(path, self.max_source_pixels)
        finally:
            self._making.release()
        if data is not None:
            self._keep(key, data)
        return data

    def _keep(self, key: FileKey, data: bytes) -> None:
        with self._lock:
            if key in self._cache:
                return
            self._cache[key] = data
            self._cached_bytes += len(data)
            while self._cache and (len(self._cache) > self.max_items
                                   or self._cached_bytes > self.max_bytes):
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= len(dropped)


def make_thumbnail(path: Path, max_pixels: int) -> bytes | None:
    """A WebP of ``path`` at most THUMB_PX wide and high, or None when it is not a decodable
    image within ``max_pixels``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        return _encode(stream, max_pixels)


def _encode(stream: io.BufferedReader, max_pixels: int) -> bytes | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: checked below
            with Image.open(stream) as image:
                if image.width * image.height > max_pixels:
                    return None
                image.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))  # JPEG: decode at 1/2..1/8
                upright = ImageOps.exif_transpose(image)
                upright.thumbnail((THUMB_PX, THUMB_PX))
                mode = "RGBA" if "A" in upright.getbands() or "transparency" in upright.info \
                    else "RGB"
                out = io.BytesIO()
                upright.convert(mode).save(out, "WEBP", quality=75)
                return out.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
