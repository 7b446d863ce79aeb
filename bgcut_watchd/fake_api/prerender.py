"""The benchmark mode's renderer (``prerendered``): one real render per input size and variant.

Rendering a 2-4 MP photo costs the emulator a few hundred milliseconds of CPU, on the same
cores as the client being measured; a benchmark of the client at realistic sizes would measure
the emulator. In this mode the first input of a given (width, height) is decoded and rendered
for real, and the encoded bytes of each variant are kept: every later input of that size gets
them without being decoded. The outputs are still what a client checks: the variant's format,
the input's proportions (or the subject's box with ``autocrop``), at most ``max_resolution``
pixels, a complete file. Only their pixels are those of the first input of that size.

Inputs are checked by their header only (format and size): a truncated file of a size already
seen is accepted. Rendering under one lock makes "once per key" exact; a miss is rare.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bgcut_watchd.fake_api.render import (
    INPUT_FORMATS,
    INVALID_IMAGE_DETAIL,
    RenderSpec,
    UnreadableImageError,
    decode_image,
    render_decoded,
)

MAX_CACHE_BYTES = 512 * 1024**2  # the oldest renders are dropped beyond this

Key = tuple[int, int, RenderSpec]


def header_size(path: Path) -> tuple[int, int]:
    """The (width, height) of an input from its header, pixels as stored.

    Raises:
        UnreadableImageError: not a JPEG/PNG/WebP/AVIF file.
    """
    try:
        with Image.open(path, formats=sorted(INPUT_FORMATS)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(INVALID_IMAGE_DETAIL) from exc
    except Image.DecompressionBombError as exc:
        raise UnreadableImageError(INVALID_IMAGE_DETAIL) from exc


class PrerenderCache:
    """Encoded outputs by (input width, input height, variant); thread-safe."""

    def __init__(self, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self._max_bytes = max_bytes
        self._outputs: OrderedDict[Key, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.renders = 0  # real renders done (one per key, unless evicted)

    def outputs(self, source: Path, size: tuple[int, int],
                specs: Sequence[RenderSpec]) -> list[bytes]:
        """The outputs of ``specs`` for an input of ``size``, rendering ``source`` on a miss.

        Raises:
            UnreadableImageError: a miss, and ``source`` does not decode.
        """
        keys = [(size[0], size[1], spec) for spec in specs]
        with self._lock:
            missing = [key for key in dict.fromkeys(keys) if key not in self._outputs]
            if missing:
                self._render(source, missing)
            found = [self._outputs[key] for key in keys]
            self._evict()
        return found

    def _render(self, source: Path, keys: list[Key]) -> None:
        """Decode ``source`` once and keep the render of every key (under the lock)."""
        rendered = render_decoded(decode_image(source), [spec for _, _, spec in keys])
        self.renders += len(keys)
        for key, data in zip(keys, rendered, strict=True):
            self._outputs[key] = data
            self._bytes += len(data)

    def _evict(self) -> None:
        """Drop the oldest renders beyond ``max_bytes`` (under the lock; the newest stays)."""
        while self._bytes > self._max_bytes and len(self._outputs) > 1:
            _, dropped = self._outputs.popitem(last=False)
            self._bytes -= len(dropped)
