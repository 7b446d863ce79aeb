"""Thumbnails: upright, small, cached by file identity, and never from what is not an image."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from bgcut_watchd.daemon.web.thumbs import THUMB_PX, ThumbnailCache
from tests.hostile import make_truncated_jpeg, make_valid_png


def test_a_picture_is_made_once_and_remade_when_the_file_changes(tmp_path: Path) -> None:
    cache = ThumbnailCache(max_source_pixels=10_000_000)
    source = make_valid_png(tmp_path, "a.png", (640, 320))
    first = cache.get(source)
    assert first is not None and cache.get(source) is first  # from the cache
    with Image.open(io.BytesIO(first)) as picture:
        assert picture.format == "WEBP" and picture.size == (THUMB_PX, THUMB_PX // 2)
    make_valid_png(tmp_path, "a.png", (100, 100))
    assert cache.get(source) != first


def test_no_picture_from_what_is_not_a_small_regular_image(tmp_path: Path) -> None:
    cache = ThumbnailCache(max_source_pixels=1000, max_items=1)
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)  # opening it for reading would block the listener's thread
    assert cache.get(fifo) is None
    assert cache.get(make_truncated_jpeg(tmp_path)) is None
    assert cache.get(make_valid_png(tmp_path, "big.png", (100, 100))) is None  # 10000 px
    assert cache.get(tmp_path / "gone.png") is None
