"""``bgcut-watchd demo``: the offline tour.

Starts the built-in emulator and a real daemon (watchers, workers, journal, ledger) on a
temporary folder set, drops sample images into the inbox, waits for the outputs and shows
where everything went, then stops. No network and no API key needed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from bgcut_watchd.config.folders import load_checked
from bgcut_watchd.config.model import Config
from bgcut_watchd.daemon.service import Service
from bgcut_watchd.daemon.systemd import Notifier
from bgcut_watchd.exitcodes import EXIT_FAILURE, EXIT_OK
from bgcut_watchd.fake_api import FakeApiOptions, FakeApiServer
from bgcut_watchd.fake_api.samples import write_sample

DEMO_KEY = "demo-key"
DEMO_TIMEOUT_S = 60.0
SAMPLES = [("product-shot.jpg", "jpeg", 0), ("portrait.png", "png", 1),
           ("catalogue/mug.webp", "webp", 2), ("not-an-image.jpg", "text", 0)]

# The three presets of product.md's example, small enough to render in milliseconds.
DEMO_VARIANTS = """\
[variants.full]
format = "png"

[variants.thumb]
format = "webp"
max_resolution = 40000
quality = "medium"
autocrop = true

[variants.white]
format = "jpeg"
background_color = "#ffffff"
output_compression = 85
"""

CONFIG_TEMPLATE = """\
[api]
base_url = "{base_url}"
max_requests_per_minute = 600

[daemon]
workers = 4
state_dir = "state"
stability_s = 0.3

[retry]
base_delay_s = 0.2
max_delay_s = 2.0

{variants}
[[folders]]
name = "studio"
inbox = "inbox"
outbox = "outbox"
quarantine = "quarantine"
archive = "archive"
variants = ["full", "thumb", "white"]
"""


def run(args: argparse.Namespace) -> int:
    """``demo [--dir DIR] [--clean]``: exit 0 when every output appeared."""
    return run_demo(args.dir, clean=args.clean)


def run_demo(directory: Path | None, *, clean: bool = False) -> int:
    """Run the tour in ``directory`` (or a new temporary one, kept so the outputs can be
    looked at, unless ``clean``); exit 0 when every output appeared."""
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="bgcut-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        with FakeApiServer(FakeApiOptions(), api_key=DEMO_KEY,
                           storage_dir=root / "emulator-storage") as api:
            print(f"emulator:  {api.base_url} (BackgroundCut API v3, offline)")
            return _tour(root, _write_config(root, api.base_url))
    finally:
        if clean:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"\nthe demo folders are in {root} (remove them with: rm -r {root})")


def _write_config(root: Path, base_url: str) -> Config:
    path = root / "config.toml"
    path.write_text(CONFIG_TEMPLATE.format(base_url=base_url, variants=DEMO_VARIANTS), "utf-8")
    (root / "inbox").mkdir(exist_ok=True)  # the daemon never creates an inbox; the demo does
    config = load_checked(path)
    print(f"config:    {path}")
    return config


def _tour(root: Path, config: Config) -> int:
    folder = config.folders[0]
    service = Service(root / "config.toml", config, DEMO_KEY, Notifier({}))
    thread = threading.Thread(target=_serve, args=(service,), name="demo-daemon", daemon=True)
    thread.start()
    print(f"daemon:    watching {folder.inbox}\n")
    for name, fmt, seed in SAMPLES:
        path = folder.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "text":
            path.write_text("this is not a picture\n", "utf-8")
        else:
            write_sample(path, fmt, seed=seed)
        print(f"dropped    {path.relative_to(root)}")
    finished = _wait_until_settled(folder.inbox, len(SAMPLES))
    service.should_exit = True
    thread.join(timeout=config.daemon.shutdown_timeout_s + 5)
    _show(root, ("outbox", "archive", "quarantine"))
    if not finished:
        print("\ndemo: timed out waiting for the daemon", file=sys.stderr)
        return EXIT_FAILURE
    print("\nEvery image became three variants in outbox/ and moved to archive/; the text file "
          "named .jpg went to quarantine/ with the reason beside it, with no API call.")
    return EXIT_OK


def _serve(service: Service) -> None:
    service.startup()
    try:
        service.main_loop()
    finally:
        service.shutdown()


def _wait_until_settled(inbox: Path, count: int) -> bool:
    """True once the inbox and its work area are empty again (every input disposed)."""
    deadline = time.monotonic() + DEMO_TIMEOUT_S
    root = inbox.parent
    while time.monotonic() < deadline:
        archived = [p for p in (root / "archive").rglob("*") if p.is_file()]
        quarantined = [p for p in (root / "quarantine").rglob("*")
                       if p.is_file() and not p.name.endswith(".error.json")]
        if len(archived) + len(quarantined) >= count:
            return True
        time.sleep(0.1)  # a person watches this; polling the folders is the point
    return False


def _show(root: Path, names: tuple[str, ...]) -> None:
    for name in names:
        print(f"\n{name}/")
        for path in sorted(p for p in (root / name).rglob("*") if p.is_file()):
            size = path.stat().st_size
            print(f"  {path.relative_to(root / name)}  ({size:,} bytes)")
            if path.name.endswith(".error.json"):
                error = json.loads(path.read_text("utf-8"))
                print(f"    reason: {error['reason']} (stage {error['stage']}): {error['detail']}")
