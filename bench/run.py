"""The one command of the benchmark suite.

    python -m bench.run [--quick] [--only NAME[,NAME...]] [--json FILE] [--keep]

Runs each benchmark (throughput, latency, backlog, memory, idle, calls, scale), prints one line per
figure with its target and "met" / "NOT met", then a summary table. Full mode exits 1 when a
target is missed; ``--quick`` (what CI runs) uses smaller sizes and exits 0 whatever the
figures, non-zero only when a benchmark crashed. Run it from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]

from bench import backlog, calls, idle, latency, memory, scale, throughput
from bench.figures import Figure
from bench.harness import HTTP_ENV, Settings

Benchmark = Callable[[Settings], list[Figure]]
BENCHMARKS: dict[str, Benchmark] = {
    "throughput": throughput.run,
    "latency": latency.run,
    "backlog": backlog.run,
    "memory": memory.run,
    "idle": idle.run,
    "calls": calls.run,
    "scale": scale.run,
}
EXIT_OK, EXIT_MISSED, EXIT_CRASHED = 0, 1, 3


def selected(only: str) -> list[str]:
    """The benchmark names of ``--only``. Raises ArgumentTypeError for an unknown one."""
    names = [n.strip() for n in only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown benchmark(s): {', '.join(unknown)} "
                                         f"(known: {', '.join(BENCHMARKS)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run",
                                     description="bgcut-watchd benchmarks (see bench/README.md)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for CI (about 2 minutes); never fails on a target")
    parser.add_argument("--only", type=selected, default=list(BENCHMARKS),
                        metavar="NAME[,NAME]", help=f"run only these ({', '.join(BENCHMARKS)})")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (for a look)")
    parser.add_argument("--http", action="store_true", help="run every daemon with its HTTP "
                        "listener on, its page refreshed every 5 s and /metrics scraped every "
                        f"15 s (same as ${HTTP_ENV}=1)")
    return parser.parse_args(argv)


def run_one(name: str, settings: Settings) -> tuple[list[Figure], str | None, float]:
    """Run one benchmark: (figures, error text or None, seconds taken)."""
    print(f"== {name}", flush=True)
    started = time.monotonic()
    try:
        figures = BENCHMARKS[name](settings)
    except Exception:
        error = traceback.format_exc()
        print(f"{name}: CRASHED\n{error}", flush=True)
        return [], error, time.monotonic() - started
    for figure in figures:
        print(figure.line(), flush=True)
    return figures, None, time.monotonic() - started


def summary(figures: list[Figure], crashed: list[str]) -> str:
    rows = [("benchmark", "figure", "value", "target", "verdict")]
    rows += [(f.bench, f.name, f.shown_value(), f.target or "-", f.verdict) for f in figures]
    rows += [(name, "-", "-", "-", "CRASHED") for name in crashed]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine() -> dict[str, object]:
    return {"python": platform.python_version(), "cpus": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average": [round(x, 2) for x in psutil.getloadavg()],
            "kernel": platform.release()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.http:
        os.environ[HTTP_ENV] = "1"  # read by harness.make_config and Daemon in this process
    names: list[str] = args.only
    workdir = Path(tempfile.mkdtemp(prefix="bgcut-bench-"))
    settings = Settings(quick=args.quick, workdir=workdir)
    mode = ("quick" if args.quick else "full") + (", listener on" if os.environ.get(HTTP_ENV)
                                                    else "")
    print(f"bgcut-watchd benchmarks ({mode}): {', '.join(names)}; machine {machine()}",
          flush=True)
    figures: list[Figure] = []
    crashed: list[str] = []
    timings: dict[str, float] = {}
    try:
        for name in names:
            found, error, taken_s = run_one(name, settings)
            figures += found
            timings[name] = round(taken_s, 1)
            if error is not None:
                crashed.append(name)
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{summary(figures, crashed)}\n\ntime per benchmark (s): {timings}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "mode": mode, "machine": machine(), "seconds": timings, "crashed": crashed,
            "figures": [f.to_json() for f in figures]}, indent=2) + "\n")
    missed = [f for f in figures if f.met is False]
    if crashed:
        return EXIT_CRASHED
    if missed and not args.quick:
        print(f"{len(missed)} target(s) NOT met")
        return EXIT_MISSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
