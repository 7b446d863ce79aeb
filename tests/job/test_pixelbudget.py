"""The decode budget: bounds the pixels decoded at once by all workers together."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile

from bgcut_watchd.job.metadata import metadata_of
from bgcut_watchd.job.validate import (
    PixelBudget,
    return_freed_pixels_to_the_system,
    validate_input,
)
from tests.support import wait_for


def test_reservations_that_fit_run_together_and_one_that_does_not_waits() -> None:
    budget = PixelBudget(100)
    release = threading.Event()
    entered: list[str] = []

    def hold(name: str, pixels: int) -> None:
        with budget.reserve(pixels):
            entered.append(name)
            release.wait(10)

    small = [threading.Thread(target=hold, args=(f"s{n}", 40)) for n in range(2)]
    for thread in small:
        thread.start()
    wait_for(lambda: len(entered) == 2, what="both small decodes inside")
    big = threading.Thread(target=hold, args=("big", 40))
    big.start()
    assert not wait_for_quietly(lambda: "big" in entered)  # 40 + 40 + 40 > 100: it waits
    release.set()
    for thread in [*small, big]:
        thread.join(10)
    assert entered[-1] == "big"


def test_a_decode_larger_than_the_whole_budget_runs_alone_rather_than_never() -> None:
    budget = PixelBudget(10)
    with budget.reserve(1_000):
        pass  # did not deadlock
    done = threading.Event()

    def huge() -> None:
        with budget.reserve(1_000):
            done.set()

    with budget.reserve(5):
        thread = threading.Thread(target=huge)
        thread.start()
        assert not wait_for_quietly(done.is_set)  # waits for the running decode to end
    thread.join(10)
    assert done.is_set()


def wait_for_quietly(predicate: Callable[[], object], timeout_s: float = 0.3) -> bool:
    """True if ``predicate`` became true within ``timeout_s`` (used to show something waits)."""
    try:
        wait_for(predicate, timeout_s)
    except AssertionError:
        return False
    return True


def test_freed_pixels_go_back_to_the_system_on_glibc() -> None:
    """mallopt(M_MMAP_THRESHOLD) is accepted (glibc): large freed blocks are unmapped at once.
    Its effect is measured by bench/memory.py (peak RSS 201 MB before, 97 MB after)."""
    assert return_freed_pixels_to_the_system() is True
    assert return_freed_pixels_to_the_system() is True  # idempotent


def test_every_pixel_decode_of_the_local_check_happens_inside_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading a PNG's EXIF with Pillow's getexif() decodes the whole image when no eXIf chunk
    precedes the pixels: the orientation must not be read that way, or eight workers decode
    eight 14 MP inputs at once (the memory bench measured 490 MB)."""
    reserved = threading.local()
    outside: list[str] = []

    class Spy(PixelBudget):
        @contextlib.contextmanager
        def reserve(self, pixels: int) -> Iterator[None]:
            reserved.active = True
            try:
                with super().reserve(pixels):
                    yield
            finally:
                reserved.active = False

    real_load = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> Any:
        if self.tile and not getattr(reserved, "active", False):
            outside.append(self.format or "?")
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    for name, fmt in (("a.png", "PNG"), ("b.jpg", "JPEG"), ("c.webp", "WEBP"), ("d.tif", "TIFF")):
        Image.new("RGB", (64, 48), (200, 40, 60)).save(tmp_path / name, fmt)
        validate_input(tmp_path / name, max_bytes=10**7, max_pixels=10**7, budget=Spy(10**6))
    assert outside == []


def test_reading_the_studios_metadata_decodes_no_pixel(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (640, 480), (200, 40, 60)).save(path, "PNG")
    with Image.open(path) as image:
        metadata_of(image)
        assert image.tile  # still undecoded
