"""``bgcut-watchd demo``: the README's first command, end to end and offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def test_demo_runs_offline_and_shows_every_output(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bgcut_watchd", "demo", "--dir", str(tmp_path / "demo")],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},  # no API key, no config
    )
    assert done.returncode == 0, done.stderr
    for name in ("product-shot.full.png", "product-shot.thumb.webp", "product-shot.white.jpg",
                 "catalogue/mug.full.png", "not-an-image.jpg.error.json"):
        assert name in done.stdout
    outbox = tmp_path / "demo" / "outbox"
    assert len([p for p in outbox.rglob("*") if p.is_file()]) == 9
    assert "reason: invalid_image" in done.stdout
