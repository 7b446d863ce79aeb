"""Memory: eight 40 MB inputs at once, with eight workers.

The inputs are PNGs of random noise (about 13.9 million pixels each, the fewest pixels a 40 MB
8-bit image can have), one of them an uncompressed TIFF, which the daemon decodes again,
scales down and encodes once as the PNG it uploads; each PNG is likewise scaled down to the
12 MP its largest variant needs (``downscale_before_upload``). The emulator holds every
upload for 1 s before reading it, so uploads the daemon lets go at once are in flight
together; the note says how many were.
The shared decode budget (``job.pixelbudget``, 16 MP: ``engine.DECODE_BUDGET_PIXELS``) lets the
workers hold only so many decoded pixels at once, so such large inputs are checked and scaled
about one at a time: that, not the eight workers, is what keeps the peak down. The outputs (a
full-size PNG among them) are streamed back. The figure is the daemon's peak resident memory
(the kernel's VmHWM) once every input is archived. To tell where memory goes, the bench also
measures, in a fresh interpreter, what the daemon's local check (``validate_input``) of one
such input adds to the peak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.figures import Figure, at_most, info
from bench.harness import API_KEY, Daemon, Emulator, Settings, count_files, make_config, wait_for
from bench.images import large_png, large_tiff
from tests.support import REPO

NAME = "memory"
INPUT_BYTES = 40 * 2**20
TARGET_PEAK_RSS_MB = 200.0
UPLOAD_HOLD_S = 1.0

_VALIDATE_PEAK = """
import json, sys
from pathlib import Path
from bgcut_watchd.job.validate import validate_input

def hwm_kb():  # VmHWM, not ru_maxrss: that one keeps the forked parent's peak across exec
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])

before = hwm_kb()
validate_input(Path(sys.argv[1]), max_bytes=52428800, max_pixels=50000000)
print(json.dumps({"before_kb": before, "after_kb": hwm_kb()}))
"""

_CONVERT_PEAK = """
import json, sys, tempfile
from pathlib import Path
from bgcut_watchd.job.normalize import Limits, converted_page, write_within
from bgcut_watchd.job.validate import validate_input

def hwm_kb():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])

checked = validate_input(Path(sys.argv[1]), max_bytes=52428800, max_pixels=50000000)
before = hwm_kb()
with tempfile.TemporaryDirectory() as folder:
    with converted_page(Path(sys.argv[1]), checked.format, 12_000_000,  # its largest variant
                        Limits(52428800, 50000000)) as page:
        write_within(page, Path(folder), "upload", 52428800)
print(json.dumps({"before_kb": before, "after_kb": hwm_kb()}))
"""


def run(settings: Settings) -> list[Figure]:
    inputs = settings.pick(8, 2)
    root = settings.workdir / NAME
    inbox = root / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    paths = [large_png(inbox / f"large-{n}.png", INPUT_BYTES, seed=n)
             for n in range(inputs - 1)]
    paths.append(large_tiff(inbox / "scan.tif", INPUT_BYTES, seed=inputs))
    validate_mb = peak_mb(_VALIDATE_PEAK, paths[0])
    convert_mb = peak_mb(_CONVERT_PEAK, paths[-1])
    with Emulator(root / "emulator", latency_upload_s=UPLOAD_HOLD_S) as api:
        config = make_config(root, api.base_url, daemon={"workers": 8, "stability_s": 0.5},
                             api={"max_requests_per_minute": 100000, "upload_timeout_s": 120,
                                  "process_timeout_s": 300, "download_timeout_s": 120})
        peak_bytes, overlap = peak_while_processing(api, config, root, inputs)
    return [
        at_most(NAME, f"peak RSS, {inputs} x 40 MB inputs", peak_bytes / 2**20, "MB",
                TARGET_PEAK_RSS_MB,
                note=f"{overlap} upload(s) in flight at once; 8 workers; one input a TIFF"),
        info(NAME, "validate_input of one input adds", validate_mb, "MB",
             note="peak RSS of a fresh interpreter, after minus before"),
        info(NAME, "converting the TIFF to the scaled PNG it uploads adds", convert_mb, "MB",
             note="after its local check, in a fresh interpreter"),
    ]


def peak_while_processing(api: Emulator, config: Path, root: Path,
                          inputs: int) -> tuple[int, int]:
    """Run the daemon until every input is archived: (peak RSS bytes, uploads overlapping)."""
    archive = root / "studio" / "archive"
    api.reset_log()
    with Daemon(config, API_KEY) as daemon:
        wait_for(lambda: count_files(archive) >= inputs or daemon.exited(),
                 timeout_s=120 + 30 * inputs, interval_s=0.1, what="every large input archived")
        daemon.assert_running()
        peak_bytes = daemon.peak_rss_bytes()
        daemon.stop()
    uploads = [(e["timestamp_s"], e["timestamp_s"] + e["duration_s"])
               for e in api.log() if e["endpoint"] == "upload"]
    return peak_bytes, max_overlap(uploads)


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) spans open at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    open_now = best = 0
    for _, step in edges:
        open_now += step
        best = max(best, open_now)
    return best


def peak_mb(script: str, path: Path) -> float:
    """MB that ``script`` (the local check, or the conversion) of ``path`` adds to a fresh
    interpreter's peak RSS."""
    done = subprocess.run([sys.executable, "-c", script, str(path)], check=True,
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    figures = json.loads(done.stdout)
    return float(figures["after_kb"] - figures["before_kb"]) / 1024

