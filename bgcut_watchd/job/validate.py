"""The local check of one claimed input, before any API call (product.md, step 5).

``validate_input`` opens the file without following a symlink and without blocking, checks that
it is a regular file within the byte limit, hashes it while reading, identifies its real format
from its first bytes (never from its name), checks the pixel count from the header, then decodes
it fully with Pillow restricted to the formats the daemon takes: the API's four (JPEG, PNG, WebP,
AVIF) and those it converts first (TIFF, BMP, GIF, HEIC/HEIF; ``job.normalize``). A JPEG is
decoded at 1/8 scale (``decoding.decode_to_check``: every entropy-coded byte still decoded, the
same verdicts; a 3 MP camera JPEG 17 -> 7.5 ms of CPU, progressive 42 -> 28 ms); the pixels
the upload needs are decoded again in full by ``job.normalize``. It returns a
``ValidatedInput`` (with the facts normalisation decides from: mode, orientation, pages, bit
depth, ICC profile) or raises ``errors.LocalInputError`` whose ``reason`` is one of these
stable codes (they reach quarantine error files, logs and ``status``; never rename one)::

    reason              when
    ------------------  ------------------------------------------------------------------------
    not_regular_file    a symlink (never followed), FIFO, socket, device or directory
    empty_file          zero bytes
    too_large           over max_bytes, seen by fstat before a byte is read
    too_many_pixels     header width x height over max_pixels (checked before decoding), or over
                        Pillow's own decompression-bomb limit (DecompressionBombError)
    unsupported_format  another real format (PDF, PSD, JPEG XL...); the detail names it
    camera_raw          a camera RAW file (CR2, CR3, NEF, ARW, RAF, ORF, RW2, DNG...), by content
    invalid_image       no known signature (text named .jpg, garbage), or a file of a format we
                        take that does not decode fully (truncated, bad PNG CRC, corrupt data):
                        the detail gives the decoder's verdict in plain words
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
* HEIC/HEIF is decoded by pi-heif (a decode-only build of libheif), registered with Pillow once
  when this module is imported: one decoding thread, no thumbnails, depth or auxiliary images.
  Without it, HEIC is ``unsupported_format`` with a word on what to install.
* A multi-page TIFF has its first page decoded here; the others are decoded when they are split
  into jobs of their own (``job.pages``). The signatures are ``intake.sniff``'s (one place).

Over 300 lines on purpose: one ordered pipeline of checks, each small, read top to bottom.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Literal, cast

# The plugins of exactly the formats the daemon opens, registered at import: ``Image.open``
# with a format Pillow's ``preinit`` did not load (WebP, AVIF, TIFF) otherwise runs
# ``Image.init()``, which imports all ~45 plugins under the import lock in the middle of the
# first job that needs one (5% of a 48-photo benchmark round's CPU, and that job's latency).
from PIL import (  # noqa: F401 - most plugins are imported for their registration only
    AvifImagePlugin,
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from bgcut_watchd.intake.sniff import ACCEPTED, CONVERTED, camera_raw, format_of
from bgcut_watchd.job.colour import declared_icc
from bgcut_watchd.job.decoding import INVALID_IMAGE as INVALID_IMAGE
from bgcut_watchd.job.decoding import TOO_MANY_PIXELS as TOO_MANY_PIXELS
from bgcut_watchd.job.decoding import UNREADABLE as UNREADABLE
from bgcut_watchd.job.decoding import (
    declared_orientation,
    decode_to_check,
    is_animated_gif,
    page_count,
    pillow_step,
    refuse_too_many_pixels,
    reject,
    tiff_bits,
    unreadable_on_os_error,
)
from bgcut_watchd.job.pixelbudget import PixelBudget as PixelBudget
from bgcut_watchd.job.pixelbudget import reserved

try:  # a normal dependency, but a HEIC must not stop the daemon if its wheel is missing
    import pi_heif
except ImportError:  # pragma: no cover - pi-heif has wheels for every platform we run on
    HEIF_DECODER = False
else:
    pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False,
                                 decode_threads=1)
    HEIF_DECODER = True

ImageFormat = Literal["jpeg", "png", "webp", "avif", "tiff", "bmp", "gif", "heif"]

NOT_REGULAR_FILE: Final = "not_regular_file"
EMPTY_FILE: Final = "empty_file"
TOO_LARGE: Final = "too_large"
UNSUPPORTED_FORMAT: Final = "unsupported_format"
CAMERA_RAW: Final = "camera_raw"
REASONS: Final = frozenset({
    NOT_REGULAR_FILE, EMPTY_FILE, TOO_LARGE, TOO_MANY_PIXELS,
    UNSUPPORTED_FORMAT, CAMERA_RAW, INVALID_IMAGE, UNREADABLE,
})

_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_READ_CHUNK_BYTES: Final = 1 << 20
_SNIFF_BYTES: Final = 4096
_TAKEN: Final = "JPEG, PNG, WebP, AVIF, TIFF, BMP, GIF or HEIC"
PILLOW_FORMAT: Final[dict[ImageFormat, str]] = {
    "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "tiff": "TIFF", "bmp": "BMP",
    "gif": "GIF", "heif": "HEIF",
}
# An output's or a converted upload's format by its configured name or file extension.
FORMAT_OF_NAME: Final[dict[str, ImageFormat]] = {
    "png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp", "avif": "avif",
}
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_FILE_KINDS: Final = (
    (stat.S_ISLNK, "a symbolic link (never followed)"), (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
)


@dataclass(frozen=True)
class ValidatedInput:
    """An input that passed the local check; ``st_dev``/``st_ino`` identify the file read.

    ``width``/``height`` are the decoded first page's; ``mode`` its Pillow mode; ``orientation``
    the EXIF orientation the file declares (1 = upright; TIFF and HEIF decoders apply theirs
    while decoding); ``pages`` a TIFF's page count; ``animated`` a GIF with more frames;
    ``bits`` the bits per sample of a PNG or TIFF; ``icc_profile`` the embedded profile (or
    the one a HEIC's ``nclx`` colours declare: ``colour.declared_icc``); ``ycck`` a JPEG
    whose CMYK is stored as YCCK.
    """

    format: ImageFormat
    width: int
    height: int
    size_bytes: int
    sha256: str
    st_dev: int
    st_ino: int
    mode: str = "RGB"
    orientation: int = 1
    pages: int = 1
    animated: bool = False
    bits: int = 8
    icc_profile: bytes | None = field(default=None, repr=False)
    ycck: bool = False


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
        image_format = _identify(head, fp)
        facts = _decode_fully(fp, image_format, size_bytes, max_pixels, budget)
    return ValidatedInput(
        format=image_format, width=facts.width, height=facts.height, size_bytes=size_bytes,
        sha256=sha256, st_dev=opened.st_dev, st_ino=opened.st_ino, mode=facts.mode,
        orientation=facts.orientation, pages=facts.pages, animated=facts.animated,
        bits=_png_bits(head) if image_format == "png" else facts.bits,
        icc_profile=facts.icc_profile, ycck=facts.ycck,
    )


def _refuse_non_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
    raise reject(NOT_REGULAR_FILE, f"{kind}, not a regular file; only regular files are taken")


def _refuse_non_regular_by_lstat(path: Path) -> None:
    """Refuse a symlink, FIFO, device... before opening it: opening one can have side effects."""
    with unreadable_on_os_error():
        mode = path.lstat().st_mode
    _refuse_non_regular(mode)


def _open_no_follow(path: Path) -> int:
    """Open read-only, never following a final symlink, never blocking on a FIFO."""
    try:
        return os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink swapped in after lstat
            raise reject(NOT_REGULAR_FILE, "a symbolic link (never followed)") from exc
        if exc.errno == errno.ENXIO:  # a socket (or a device with no driver)
            raise reject(NOT_REGULAR_FILE, "a socket or a special file") from exc
        with unreadable_on_os_error():
            raise


def _check_opened(fd: int, max_bytes: int) -> os.stat_result:
    """fstat what was really opened: a regular, non-empty file within ``max_bytes``."""
    with unreadable_on_os_error():
        opened = os.fstat(fd)
    _refuse_non_regular(opened.st_mode)
    if opened.st_size == 0:
        raise reject(EMPTY_FILE, "the file is empty (0 bytes)")
    _refuse_too_large(opened.st_size, max_bytes)
    with unreadable_on_os_error():
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return opened


def _refuse_too_large(size_bytes: int, max_bytes: int) -> None:
    if size_bytes > max_bytes:
        raise reject(TOO_LARGE, f"{size_bytes} bytes, over the limit of {max_bytes} bytes "
                     "(daemon.max_input_bytes); shrink the image or raise the limit")


def _hash_and_sniff(fp: BinaryIO, max_bytes: int) -> tuple[str, bytes, int]:
    """Read it all in chunks: sha256 hex, first bytes, length (growth stops at the limit)."""
    digest = hashlib.sha256()
    head = b""
    size_bytes = 0
    with unreadable_on_os_error():
        while chunk := fp.read(_READ_CHUNK_BYTES):
            head = head or chunk[:_SNIFF_BYTES]
            size_bytes += len(chunk)
            _refuse_too_large(size_bytes, max_bytes)
            digest.update(chunk)
    if size_bytes == 0:
        raise reject(EMPTY_FILE, "the file is empty (0 bytes)")
    return digest.hexdigest(), head, size_bytes


def _identify(head: bytes, fp: BinaryIO) -> ImageFormat:
    """The real format from the magic bytes, whatever the file is called.

    Camera RAW is told apart first: most RAW formats are TIFF inside.
    """
    def read_at(offset: int, size: int) -> bytes:
        fp.seek(offset)
        return fp.read(size)

    with unreadable_on_os_error():
        raw = camera_raw(head, read_at)
    if raw is not None:
        raise reject(CAMERA_RAW, f"a camera RAW file ({raw}): never uploaded; cameras that "
                     "shoot RAW+JPEG write a JPEG beside it, that one is processed")
    name = format_of(head)
    if name in ACCEPTED or name in CONVERTED:
        if name == "heif" and not HEIF_DECODER:
            raise reject(UNSUPPORTED_FORMAT, "HEIC/HEIF, but its decoder is not installed: "
                         "pip install pi-heif")
        return cast(ImageFormat, name)
    if name is not None:
        raise reject(UNSUPPORTED_FORMAT, f"the content is {name}, not {_TAKEN} (the name "
                     "does not matter); convert it first")
    raise reject(INVALID_IMAGE, f"not an image: no {_TAKEN} signature (starts with "
                 f"{head[:8].hex(' ')})")


@dataclass(frozen=True)
class _Facts:
    width: int
    height: int
    mode: str
    orientation: int
    pages: int
    animated: bool
    bits: int
    icc_profile: bytes | None
    ycck: bool


def _decode_fully(fp: BinaryIO, image_format: ImageFormat, size_bytes: int,
                  max_pixels: int, budget: PixelBudget | None) -> _Facts:
    """Check the header's pixel count, then decode every pixel of the first page."""
    if image_format == "png":
        verify_png_chunks(fp, size_bytes)
    fp.seek(0)
    pillow_formats = [PILLOW_FORMAT[image_format]]
    image = pillow_step(image_format, lambda: Image.open(fp, formats=pillow_formats))
    with image:
        width, height = image.size
        refuse_too_many_pixels(width, height, max_pixels)
        orientation = declared_orientation(image)
        with reserved(budget, width * height):
            width, height = pillow_step(image_format, lambda: decode_to_check(image))
        pages = pillow_step(image_format, lambda: page_count(image, image_format))
        return _Facts(width=width, height=height, mode=image.mode,
                      orientation=orientation, pages=pages,
                      animated=is_animated_gif(image, image_format), bits=tiff_bits(image),
                      icc_profile=declared_icc(image.info),
                      ycck=image_format == "jpeg" and image.info.get("adobe_transform") == 2)


def _png_bits(head: bytes) -> int:
    """A PNG's bit depth, from its IHDR chunk (always first)."""
    return head[24] if len(head) > 24 and head[12:16] == b"IHDR" else 8


def verify_png_chunks(fp: BinaryIO, size_bytes: int, *, idat_crcs: bool = True) -> None:
    """Check every chunk's CRC up to IEND; Pillow itself skips those of IDAT and IEND.

    ``idat_crcs=False`` skips the IDAT chunks' data (their length still checked): for a caller
    that checks those CRCs while it reads the data anyway (``pngdata.check_pixel_data``).
    """
    fp.seek(len(_PNG_SIGNATURE))
    chunks = PngImagePlugin.ChunkStream(fp)
    try:
        with unreadable_on_os_error():
            while True:
                cid, position, length = chunks.read()
                if length > size_bytes - position:
                    raise SyntaxError(f"chunk {cid!r} runs past the end of the file")
                if cid == b"IDAT" and not idat_crcs:
                    fp.seek(length + 4, 1)  # its data and its CRC
                    continue
                chunks.crc(cid, fp.read(length))
                if cid == b"IEND":
                    return
    except struct.error as exc:
        raise reject(INVALID_IMAGE, "a broken PNG: it ends before its IEND chunk") from exc
    except SyntaxError as exc:
        raise reject(INVALID_IMAGE, f"a broken PNG: {exc}") from exc
