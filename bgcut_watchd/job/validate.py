"""The local check of one claimed input, before any API call (product.md, step 5).

``validate_input`` opens the file without following a symlink and without blocking, checks that
it is a regular file within the byte limit, hashes it while reading, identifies its real format
from its first bytes (never from its name), checks the pixel count from the header, then decodes
it fully with Pillow restricted to the four formats the API takes. It returns a
``ValidatedInput`` or raises ``errors.LocalInputError`` whose ``reason`` is one of these stable
codes (they reach quarantine error files, logs and ``status``; never rename one)::

    reason              when
    ------------------  ------------------------------------------------------------------------
    not_regular_file    a symlink (never followed), FIFO, socket, device or directory
    empty_file          zero bytes
    too_large           over max_bytes, seen by fstat before a byte is read
    too_many_pixels     header width x height over max_pixels (checked before decoding), or over
                        Pillow's own decompression-bomb limit (DecompressionBombError)
    unsupported_format  another real format (GIF, TIFF, BMP, PDF, HEIF...); the detail names it
    invalid_image       no known signature (text named .jpg, garbage), or a JPEG/PNG/WebP/AVIF
                        that does not decode fully (truncated, bad PNG CRC, corrupt data)
    unreadable          the system refused or failed to read it (EACCES, EIO...): strerror

A ``detail`` tells an administrator what to do and never contains the file name: names may carry
newlines or invalid UTF-8, so callers log the name themselves.

Choices worth knowing:

* Non-regular files are refused from ``lstat``, unopened (opening a device or FIFO can have side
  effects); the ``O_NOFOLLOW | O_NONBLOCK`` open and ``fstat`` re-check what was really opened, so
  a file swapped in meanwhile is neither followed nor able to hang the worker.
* Pixels: Pillow's guard reads the process-global ``Image.MAX_IMAGE_PIXELS``; writing it per call
  would race between workers, so it is never written. ``Image.open`` parses the header only and
  ``max_pixels`` is checked before ``load()``; Pillow's guard stays as a second net, so the
  effective limit is ``min(max_pixels, 2 * Image.MAX_IMAGE_PIXELS)`` (~179 MP by default). WebP
  alone creates its decoder in ``open`` (a calloc'ed, untouched canvas under Pillow's limit).
* Warnings are not turned into errors: ``warnings.catch_warnings`` swaps process-global filters,
  unsafe across threads in Python 3.11. No decision needs one: ``DecompressionBombWarning`` is
  superseded by the ``max_pixels`` check, the malformed-MPO and invalid-APNG fallbacks still
  decode a full base image, and the PNG CRCs Pillow skips (IDAT, IEND) and a missing IEND are
  checked here with Pillow's ``ChunkStream``.
* ``ImageFile.LOAD_TRUNCATED_IMAGES`` is read, never written: if something in the process set it,
  truncated files would pass, so ``validate_input`` refuses to run (RuntimeError).

Over 300 lines on purpose: one ordered pipeline of checks, and the format sniffing stays
beside the decoder that trusts it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import stat
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Literal, TypeVar

from PIL import Image, ImageFile, PngImagePlugin, UnidentifiedImageError

from bgcut_watchd.errors import LocalInputError

ImageFormat = Literal["jpeg", "png", "webp", "avif"]
_T = TypeVar("_T")

NOT_REGULAR_FILE: Final = "not_regular_file"
EMPTY_FILE: Final = "empty_file"
TOO_LARGE: Final = "too_large"
TOO_MANY_PIXELS: Final = "too_many_pixels"
UNSUPPORTED_FORMAT: Final = "unsupported_format"
INVALID_IMAGE: Final = "invalid_image"
UNREADABLE: Final = "unreadable"
REASONS: Final = frozenset({
    NOT_REGULAR_FILE, EMPTY_FILE, TOO_LARGE, TOO_MANY_PIXELS,
    UNSUPPORTED_FORMAT, INVALID_IMAGE, UNREADABLE,
})

_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_READ_CHUNK_BYTES: Final = 1 << 20
SNIFF_BYTES: Final = 4096
_ACCEPTED: Final = "JPEG, PNG, WebP or AVIF"
PILLOW_FORMATS: Final[dict[ImageFormat, str]] = {
    "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF",
}
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# Leading bytes -> format name; lower case = one we take, upper case = named in the refusal.
_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\xff\xd8\xff", "jpeg"), (_PNG_SIGNATURE, "png"),
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"II+\x00", "BigTIFF"), (b"MM\x00+", "BigTIFF"), (b"%PDF-", "PDF"), (b"%!PS", "PostScript"),
    (b"8BPS", "PSD"), (b"\x00\x00\x01\x00", "ICO"), (b"qoif", "QOI"), (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"PK\x03\x04", "ZIP"), (b"<?xml", "XML/SVG"),
    (b"<svg", "SVG"),
)
_HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1",
                                 b"msf1"})
_FILE_KINDS: Final = (
    (stat.S_ISLNK, "a symbolic link (never followed)"), (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
)


@dataclass(frozen=True)
class ValidatedInput:
    """An input that passed the local check; ``st_dev``/``st_ino`` identify the file read."""

    format: ImageFormat
    width: int
    height: int
    size_bytes: int
    sha256: str
    st_dev: int
    st_ino: int


class PixelBudget:
    """Bounds the pixels being decoded at once by all workers together (memory, not time).

    A full decode holds every pixel in memory: eight workers decoding 14 MP inputs at once
    peaked at 401 MB (bench/memory.py). A decode waits until its pixels fit the budget; one
    larger than the whole budget runs alone. Small images (the common case) never wait.
    """

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max(1, max_pixels)
        self._in_use = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` of the budget for the duration of the ``with`` block."""
        with self._cond:
            while self._in_use and self._in_use + pixels > self.max_pixels:
                self._cond.wait()
            self._in_use += pixels
        try:
            yield
        finally:
            with self._cond:
                self._in_use -= pixels
                self._cond.notify_all()


M_MMAP_THRESHOLD: Final = -3  # mallopt's parameter number (glibc <malloc.h>)
FREED_PIXELS_MMAP_BYTES: Final = 4 * 2**20


def return_freed_pixels_to_the_system() -> bool:
    """Make glibc give large freed blocks (decoded pixels) back to the system at once.

    Pillow holds pixels in blocks of up to 16 MB. glibc serves the first such block with mmap,
    but freeing it raises its mmap threshold to that size, so later blocks come from each
    worker thread's own arena and stay resident once freed: the budget then bounds the pixels
    in use, not the memory held. Eight threads each checking an input then verifying a PNG and
    a JPEG output, all under one 16 MP budget, peaked at 130-236 MB; with a fixed threshold of
    4 MiB (allocations this large always mmapped, which disables the dynamic threshold), at
    84 MB. Process-wide and idempotent: the engine calls it once. Returns False where it does
    not apply (a C library without ``mallopt``). Raises nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
        return bool(mallopt(M_MMAP_THRESHOLD, FREED_PIXELS_MMAP_BYTES))
    except (OSError, AttributeError):
        return False


def validate_input(path: Path, *, max_bytes: int, max_pixels: int,
                   budget: PixelBudget | None = None) -> ValidatedInput:
    """Check ``path`` locally and describe it; safe to call from many threads at once.

    ``budget``, when given, bounds the pixels decoded at once across threads.

    Raises:
        LocalInputError: the input is refused; ``reason`` is one of ``REASONS``.
        ValueError: ``max_bytes`` or ``max_pixels`` is not positive.
        RuntimeError: ``ImageFile.LOAD_TRUNCATED_IMAGES`` was switched on in this process.
    """
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError(f"limits must be positive: {max_bytes=} {max_pixels=}")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on: truncated inputs would pass")
    _refuse_non_regular_by_lstat(path)
    fd = _open_no_follow(path)
    try:
        opened = _check_opened(fd, max_bytes)
        fp = os.fdopen(fd, "rb")
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    with fp:
        sha256, head, size_bytes = _hash_and_sniff(fp, max_bytes)
        image_format = _identify(head)
        width, height = _decode_fully(fp, image_format, size_bytes, max_pixels, budget)
    return ValidatedInput(
        format=image_format, width=width, height=height, size_bytes=size_bytes,
        sha256=sha256, st_dev=opened.st_dev, st_ino=opened.st_ino,
    )


def _reject(reason: str, detail: str) -> LocalInputError:
    return LocalInputError(detail, reason=reason)


@contextlib.contextmanager
def _unreadable_on_os_error() -> Iterator[None]:
    """Turn an OSError of a system call into ``unreadable`` with its strerror (no file name)."""
    try:
        yield
    except OSError as exc:
        cause = exc.strerror or os.strerror(exc.errno or errno.EIO)
        raise _reject(UNREADABLE, f"cannot read the file: {cause}") from exc


def _refuse_non_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
    raise _reject(NOT_REGULAR_FILE, f"{kind}, not a regular file; only regular files are taken")


def _refuse_non_regular_by_lstat(path: Path) -> None:
    """Refuse a symlink, FIFO, device... before opening it: opening one can have side effects."""
    with _unreadable_on_os_error():
        mode = path.lstat().st_mode
    _refuse_non_regular(mode)


def _open_no_follow(path: Path) -> int:
    """Open read-only, never following a final symlink, never blocking on a FIFO."""
    try:
        return os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink swapped in after lstat
            raise _reject(NOT_REGULAR_FILE, "a symbolic link (never followed)") from exc
        if exc.errno == errno.ENXIO:  # a socket (or a device with no driver)
            raise _reject(NOT_REGULAR_FILE, "a socket or a special file") from exc
        with _unreadable_on_os_error():
            raise


def _check_opened(fd: int, max_bytes: int) -> os.stat_result:
    """fstat what was really opened: a regular, non-empty file within ``max_bytes``."""
    with _unreadable_on_os_error():
        opened = os.fstat(fd)
    _refuse_non_regular(opened.st_mode)
    if opened.st_size == 0:
        raise _reject(EMPTY_FILE, "the file is empty (0 bytes)")
    _refuse_too_large(opened.st_size, max_bytes)
    with _unreadable_on_os_error():
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return opened


def _refuse_too_large(size_bytes: int, max_bytes: int) -> None:
    if size_bytes > max_bytes:
        raise _reject(TOO_LARGE, f"{size_bytes} bytes, over the limit of {max_bytes} bytes "
                                 "(daemon.max_input_bytes); shrink the image or raise the limit")


def _hash_and_sniff(fp: BinaryIO, max_bytes: int) -> tuple[str, bytes, int]:
    """Read it all in chunks: sha256 hex, first bytes, length (growth stops at the limit)."""
    digest = hashlib.sha256()
    head = b""
    size_bytes = 0
    with _unreadable_on_os_error():
        while chunk := fp.read(_READ_CHUNK_BYTES):
            head = head or chunk[:SNIFF_BYTES]
            size_bytes += len(chunk)
            _refuse_too_large(size_bytes, max_bytes)
            digest.update(chunk)
    if size_bytes == 0:
        raise _reject(EMPTY_FILE, "the file is empty (0 bytes)")
    return digest.hexdigest(), head, size_bytes


def sniff_format(head: bytes) -> str | None:
    """Name the format from the first bytes (lower case: one the API takes, e.g. ``png``;
    otherwise a name such as ``GIF``), or None when no known signature matches."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF":
        return "webp" if head[8:12] == b"WEBP" else f"RIFF {_ascii(head[8:12])}"
    if head[4:8] == b"ftyp":
        return _sniff_iso_media(head)
    if head[:2] == b"BM" and head[6:10] == b"\x00\x00\x00\x00":  # BMP's reserved bytes are 0
        return "BMP"
    return None


def _sniff_iso_media(head: bytes) -> str:
    """An ISO base media file: AVIF, HEIF/HEIC, Canon CR3 or some video, from its ftyp brands."""
    (box_bytes,) = struct.unpack(">I", head[:4])
    brands = {head[8:12]} | {head[i:i + 4] for i in range(16, min(box_bytes, len(head)) - 3, 4)}
    if brands & {b"avif", b"avis"}:
        return "avif"
    if brands & _HEIF_BRANDS:
        return "HEIF/HEIC"
    if b"crx " in brands:
        return "Canon CR3"
    return f"ISO media (brand {_ascii(head[8:12])})"


def _ascii(raw: bytes) -> str:
    return raw.decode("ascii", errors="replace").strip()


def _identify(head: bytes) -> ImageFormat:
    """The real format from the magic bytes, whatever the file is called."""
    name = sniff_format(head)
    if name in PILLOW_FORMATS:
        return name
    if name is not None:
        raise _reject(UNSUPPORTED_FORMAT, f"the content is {name}, not {_ACCEPTED} (the name "
                                          "does not matter); convert it first")
    raise _reject(INVALID_IMAGE, f"not an image: no {_ACCEPTED} signature (starts with "
                                 f"{head[:8].hex(' ')})")


def _decode_fully(fp: BinaryIO, image_format: ImageFormat, size_bytes: int,
                  max_pixels: int, budget: PixelBudget | None) -> tuple[int, int]:
    """Check the header's pixel count, then decode every pixel; return (width, height)."""
    if image_format == "png":
        verify_png_chunks(fp, size_bytes)
    fp.seek(0)
    pillow_formats = [PILLOW_FORMATS[image_format]]
    image = _pillow_step(image_format, lambda: Image.open(fp, formats=pillow_formats))
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise _reject(TOO_MANY_PIXELS, f"{width}x{height} = {width * height} pixels, over "
                          f"the limit of {max_pixels} (daemon.max_input_pixels); not decoded")
        with budget.reserve(width * height) if budget else contextlib.nullcontext():
            _pillow_step(image_format, image.load)
    return width, height


def _pillow_step(image_format: ImageFormat, step: Callable[[], _T]) -> _T:
    """Run one Pillow call on untrusted bytes; any failure of it is the input's fault.

    Pillow raises many types on malformed data (OSError, SyntaxError, ValueError, EOFError,
    struct.error, IndexError...), so everything but MemoryError is caught: the try holds this
    single call and nothing of ours. An OSError carrying an errno is the disk's, not Pillow's.
    """
    try:
        return step()
    except Image.DecompressionBombError as exc:
        raise _reject(TOO_MANY_PIXELS, f"{exc} (Pillow's own limit, 2 x Image.MAX_IMAGE_PIXELS, "
                                       "applies whatever daemon.max_input_pixels says)") from exc
    except MemoryError:
        raise
    except OSError as exc:
        if exc.errno is not None:
            with _unreadable_on_os_error():
                raise
        raise _broken(image_format, exc) from exc
    except Exception as exc:
        raise _broken(image_format, exc) from exc


def _broken(image_format: ImageFormat, exc: BaseException) -> LocalInputError:
    why = ("Pillow cannot parse its header" if isinstance(exc, UnidentifiedImageError)
           else f"{type(exc).__name__}: {exc}")
    return _reject(INVALID_IMAGE, f"a {image_format.upper()} signature, but it does not "
                                  f"decode fully: {why}")


def verify_png_chunks(fp: BinaryIO, size_bytes: int) -> None:
    """Check every chunk's CRC up to IEND; Pillow itself skips those of IDAT and IEND.

    Raises LocalInputError (``invalid_image``, or ``unreadable`` for a read failure).
    """
    fp.seek(len(_PNG_SIGNATURE))
    chunks = PngImagePlugin.ChunkStream(fp)
    try:
        with _unreadable_on_os_error():
            while True:
                cid, position, length = chunks.read()
                if length > size_bytes - position:
                    raise SyntaxError(f"chunk {cid!r} runs past the end of the file")
                chunks.crc(cid, fp.read(length))
                if cid == b"IEND":
                    return
    except struct.error as exc:
        raise _reject(INVALID_IMAGE, "a broken PNG: it ends before its IEND chunk") from exc
    except SyntaxError as exc:
        raise _reject(INVALID_IMAGE, f"a broken PNG: {exc}") from exc
