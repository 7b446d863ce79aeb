"""The decode budget: how many pixels all workers together may hold decoded at one moment.

Shared by every full decode of an input: the local check (``validate``), the conversion before
the upload (``normalize``) and the split of a multi-page TIFF (``pages``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


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


def reserved(budget: PixelBudget | None, pixels: int) -> contextlib.AbstractContextManager[None]:
    """``budget.reserve(pixels)``, or nothing to wait for without a budget."""
    return budget.reserve(pixels) if budget is not None else contextlib.nullcontext()
