"""The naive client the daemon is compared with: the API's documented example in a loop.

One file at a time, plain ``requests`` calls (no session, no threads): upload, one process call
with the same three variants the daemon asks for, then one download per output. This is what
a user writes from the API documentation before reaching for a daemon.
"""

from __future__ import annotations

import time
from pathlib import Path

import requests

VARIANTS = [
    {"format": "png", "max_resolution": 12000000, "quality": "high", "background_color": None,
     "output_compression": 85, "autocrop": False},
    {"format": "webp", "max_resolution": 40000, "quality": "medium", "background_color": None,
     "output_compression": 85, "autocrop": True},
    {"format": "jpeg", "max_resolution": 12000000, "quality": "high",
     "background_color": "#ffffff", "output_compression": 85, "autocrop": False},
]
EXTENSIONS = ["png", "webp", "jpg"]


def process_one(base_url: str, api_key: str, image: Path, out_dir: Path) -> None:
    """Upload ``image``, process it into the three variants, download each into ``out_dir``.

    Raises requests.HTTPError on any failed call.
    """
    headers = {"Authorization": f"Token {api_key}"}
    with image.open("rb") as stream:
        upload = requests.post(f"{base_url}/v3/file-ops/upload/", headers=headers,
                               files={"files": (image.name, stream)},
                               data={"upload_path": "naive"}, timeout=60)
    upload.raise_for_status()
    stored = upload.json()["file_paths"][0]
    variants = [{**v, "output_file_path": f"naive/out/{image.stem}.{n}.{EXTENSIONS[n]}"}
                for n, v in enumerate(VARIANTS)]
    process = requests.post(f"{base_url}/v3/tools/ai/remove-bg/process/", headers=headers,
                            json={"input_file_path": stored, "output_variants": variants},
                            timeout=300)
    process.raise_for_status()
    for remote in process.json()["output_file_paths"]:
        download = requests.get(f"{base_url}/v3/files/{remote}", headers=headers, timeout=120)
        download.raise_for_status()
        (out_dir / remote.rsplit("/", 1)[1]).write_bytes(download.content)


def run_folder(base_url: str, api_key: str, inbox: Path, out_dir: Path) -> tuple[int, float]:
    """Process every file of ``inbox`` in name order; returns (files, elapsed seconds)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in inbox.iterdir() if p.is_file())
    started = time.monotonic()
    for image in images:
        process_one(base_url, api_key, image, out_dir)
    return len(images), time.monotonic() - started
