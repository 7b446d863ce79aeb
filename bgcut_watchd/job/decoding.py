"""Decoding untrusted bytes with Pillow: every failure becomes the input's fault, in plain words.

Shared by the local check (``validate``), the conversion before the upload (``normalize``) and
the split of a multi-page TIFF (``pages``): each decodes the same checked file, and any of them
may meet a page or a frame the others did not. The verdicts are ``LocalInputError``s with the
reason codes of ``validate`` (``too_many_pixels``, ``invalid_image``, ``unreadable``); a
``detail`` names the format and what its decoder said, never the file name.

Also the facts read from a decoded image that normalisation decides from (its declared
orientation, pages, animation, bits per sample).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Callable, Iterator
from typing import Final, TypeVar

from PIL import Image, UnidentifiedImageError

from bgcut_watchd.errors import LocalInputError
from bgcut_watchd.intake.sniff import DISPLAY_NAMES

_T = TypeVar("_T")

TOO_MANY_PIXELS: Final = "too_many_pixels"
INVALID_IMAGE: Final = "invalid_image"
UNREADABLE: Final = "unreadable"

EXIF_ORIENTATION: Final = 0x0112
_TIFF_BITS_PER_SAMPLE: Final = 258
# Pillow's words for a broken file, and ours for an administrator.
_CUT_SHORT: Final = "the file ends before the image does (cut short in a copy?)"
_DAMAGED: Final = "the compressed picture data is damaged"
_PLAIN_WORDS: Final = (
    ("image file is truncated", _CUT_SHORT),
    ("Unexpected end of file", _CUT_SHORT),  # libheif
    ("could not create decoder object", "its data is cut short or damaged (libwebp cannot "
                                        "start decoding it)"),
    ("broken data stream", _DAMAGED),
    ("decoder error", _DAMAGED),  # libtiff, libjpeg and zlib through Pillow's ImageFile
    ("cannot identify image file", "its header cannot be parsed"),
)


def reject(reason: str, detail: str) -> LocalInputError:
    return LocalInputError(detail, reason=reason)


@contextlib.contextmanager
def unreadable_on_os_error() -> Iterator[None]:
    """Turn an OSError of a system call into ``unreadable`` with its strerror (no file name)."""
    try:
        yield
    except OSError as exc:
        cause = exc.strerror or os.strerror(exc.errno or errno.EIO)
        raise reject(UNREADABLE, f"cannot read the file: {cause}") from exc


def pillow_step(image_format: str, step: Callable[[], _T]) -> _T:
    """Run one Pillow call on untrusted bytes; any failure of it is the input's fault.

    Pillow raises many types on malformed data (OSError, SyntaxError, ValueError, EOFError,
    struct.error, IndexError...), so everything but MemoryError is caught: the try holds this
    single call and nothing of ours. An OSError carrying an errno is the disk's, not Pillow's.

    Raises LocalInputError (``too_many_pixels``, ``invalid_image``, ``unreadable``).
    """
    try:
        return step()
    except Image.DecompressionBombError as exc:
        raise reject(TOO_MANY_PIXELS, _bomb_detail(exc)) from exc
    except MemoryError:
        raise
    except OSError as exc:
        if exc.errno is not None:
            with unreadable_on_os_error():
                raise
        raise broken(image_format, exc) from exc
    except Exception as exc:
        raise broken(image_format, exc) from exc


def _bomb_detail(exc: Image.DecompressionBombError) -> str:
    """Our words for Pillow's decompression-bomb refusal, with the image's pixel count when
    Pillow's message gives it."""
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1))} pixels: " if found else ""
    return (f"{size}over {limit:,} pixels, the most any image may have for a safe decode "
            "(whatever daemon.max_input_pixels says); scale it down first")


def broken(image_format: str, exc: BaseException) -> LocalInputError:
    """``invalid_image`` with the decoder's verdict in plain words."""
    name = DISPLAY_NAMES.get(image_format, image_format.upper())
    message = str(exc)
    why = next((words for known, words in _PLAIN_WORDS if known in message), None)
    if isinstance(exc, UnidentifiedImageError):
        why = "its header cannot be parsed"
    if why is None:
        said = " ".join(message.split()) or type(exc).__name__
        why = f"the {name} decoder says: {said}"
    article = "an" if name[:1] in "AEIOU" else "a"
    return reject(INVALID_IMAGE, f"{article} {name} file that does not decode: {why}")


def decode_to_check(image: Image.Image) -> tuple[int, int]:
    """Decode all of ``image``'s data only to know that it decodes: a JPEG at 1/8 scale.

    libjpeg's DCT scaling still decodes every entropy-coded coefficient of every scan (it must,
    to find the next block), so a cut, damaged or misplaced-marker stream fails exactly as in a
    full decode; only the inverse DCT and the colour conversion run on 1/64 of the pixels
    (a 12 MP output: 72 -> 27 ms of CPU). Returns the full image's (width, height): a JPEG's
    ``image.size`` is the reduced one afterwards. Never for pixels that are used (``normalize``
    and ``pages`` decode in full). Raises what ``Image.load`` raises (run it in a pillow step).
    """
    if image.format not in ("JPEG", "MPO"):
        image.load()
        return image.size
    width, height = image.size
    # Pillow takes the largest scale of 8, 4, 2 within size // wanted: width // 8 asks for 1/8
    # (ceil(width / 8) would give 1/4 for a width that is not a multiple of 8).
    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
    image.load()
    return width, height


def refuse_too_many_pixels(width: int, height: int, max_pixels: int) -> None:
    """Raises LocalInputError (``too_many_pixels``) when ``width x height`` is over the limit."""
    if width * height > max_pixels:
        raise reject(TOO_MANY_PIXELS, f"{width}x{height} = {width * height} pixels, over "
                     f"the limit of {max_pixels} (daemon.max_input_pixels); not decoded")


def exif_of(image: Image.Image) -> Image.Exif:
    """An opened image's EXIF without decoding a pixel: a TIFF's own tags, else the EXIF block
    its header carried (``Image.getexif`` decodes a whole PNG to look for one after the pixel
    data: 56 MB for a 14 MP input, outside the decode budget). Raises what Pillow raises for a
    damaged block."""
    if image.format == "TIFF":
        return image.getexif()
    exif = Image.Exif()
    raw = image.info.get("exif")
    if isinstance(raw, bytes) and raw:
        exif.load(raw)
    return exif


def declared_orientation(image: Image.Image) -> int:
    """The EXIF orientation the file declares, read before decoding (the TIFF and HEIF decoders
    apply theirs while decoding); 1 when none, out of range, or in a damaged EXIF block (which
    other readers would not honour either). Raises nothing."""
    try:
        value = image.info.get("original_orientation") or exif_of(image).get(
            EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block is no reason to refuse the pixels
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def page_count(image: Image.Image, image_format: str) -> int:
    """A TIFF's pages (its page chain walked); one for every other format. Raises what Pillow
    raises for a damaged chain (run it through :func:`pillow_step`: a page would be lost)."""
    return int(getattr(image, "n_frames", 1)) if image_format == "tiff" else 1


def is_animated_gif(image: Image.Image, image_format: str) -> bool:
    """True for a GIF with a second frame. Raises nothing: the first frame is the one taken, so
    a damaged later frame only makes it "not animated"."""
    if image_format != "gif":
        return False
    try:
        return bool(getattr(image, "is_animated", False))
    except Exception:  # the first frame decoded: that is the one we take
        return False


def tiff_bits(image: Image.Image) -> int:
    """A TIFF's bits per sample (8 for anything else)."""
    tags = getattr(image, "tag_v2", None)
    bits = tags.get(_TIFF_BITS_PER_SAMPLE) if tags is not None else None
    if isinstance(bits, tuple) and bits:
        bits = bits[0]
    return bits if isinstance(bits, int) and bits > 0 else 8
