"""Command-line glue: ``bgcut-watchd fake-api`` and ``python -m bgcut_watchd.fake_api``.

``add_arguments`` fills a parser, ``run`` serves in the foreground until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from bgcut_watchd.fake_api.options import DEFAULT_EXPIRY_S, DEFAULT_QUOTA_BYTES, FakeApiOptions
from bgcut_watchd.fake_api.server import FakeApiServer

API_KEY_ENV = "BGCUT_API_KEY"
EXIT_OK = 0
EXIT_USAGE = 2


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share in 0..1, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 bytes per second, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's flags to ``parser`` (one per ``FakeApiOptions`` field, plus address)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765, 0: any)")
    parser.add_argument(
        "--api-key", default=os.environ.get(API_KEY_ENV) or "test-key",
        help=f"the accepted API key (default ${API_KEY_ENV}, else test-key)",
    )
    parser.add_argument("--storage-dir", type=Path, help="where stored files live (default: temp)")
    for endpoint in ("upload", "process", "download"):
        parser.add_argument(f"--latency-{endpoint}", type=_seconds, default=0.0, metavar="S",
                            help=f"extra delay before answering {endpoint}")
    faults = parser.add_argument_group("faults (shares of API requests, 0..1)")
    faults.add_argument("--fail-5xx", type=_share, default=0.0, metavar="SHARE",
                        help="answer 503 Service Unavailable without doing the request")
    faults.add_argument("--fail-429", type=_share, default=0.0, metavar="SHARE",
                        help="answer 429 Too Many Requests, with --retry-after")
    faults.add_argument("--retry-after", type=int, default=1, metavar="S",
                        help="Retry-After seconds sent with 429 (default 1)")
    faults.add_argument("--fail-reset", type=_share, default=0.0, metavar="SHARE",
                        help="read the request, then reset the connection without an answer")
    faults.add_argument("--fail-truncate", type=_share, default=0.0, metavar="SHARE",
                        help="downloads: send half the file under the full Content-Length, "
                             "then close")
    faults.add_argument("--fail-404", type=_share, default=0.0, metavar="SHARE",
                        help="process/download answer 404 for an existing file")
    faults.add_argument("--fail-html-200", type=_share, default=0.0, metavar="SHARE",
                        help="downloads answered 200 with a small HTML page instead of the file "
                             "(a maintenance page, captive portal or CDN error)")
    faults.add_argument("--fail-cut-body", type=_share, default=0.0, metavar="SHARE",
                        help="downloads send the first half of the file with a Content-Length "
                             "that matches it: a cut nothing at the HTTP level reveals")
    faults.add_argument("--auth-fail", action="store_true", help="answer 401 to every request")
    faults.add_argument("--credits-exhausted", action="store_true", help="answer 402 to process")
    dribble = parser.add_argument_group("dribbling (answers sent slowly, byte by byte)")
    for endpoint in ("upload", "process", "download"):
        dribble.add_argument(f"--dribble-{endpoint}", type=_rate, default=0.0,
                             metavar="BYTES_PER_S",
                             help=f"send every {endpoint} answer's body at this rate (0: at once)")
    dribble.add_argument("--dribble-headers", action="store_true",
                         help="dribble the status line and headers too, not only the body")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault dice")
    parser.add_argument("--request-log", type=Path, metavar="FILE",
                        help="append every API request to FILE as JSON lines")
    parser.add_argument("--max-upload-bytes", type=int, default=None, metavar="N",
                        help="answer 413 to larger uploaded files")
    parser.add_argument("--expiry", type=float, default=DEFAULT_EXPIRY_S, metavar="S",
                        help="stored files vanish after S seconds (default 7200)")
    parser.add_argument("--quota-bytes", type=int, default=DEFAULT_QUOTA_BYTES, metavar="N",
                        help="the storage quota the usage endpoint reports (default 10 GB, the "
                             "API's); reported only, not enforced")
    _add_credit_arguments(parser)
    _add_bench_arguments(parser)


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    bench = parser.add_argument_group("benchmarking")
    bench.add_argument("--prerendered", action="store_true",
                       help="render each variant once per input size (width x height) and serve "
                            "those bytes for every later input of that size: valid outputs of "
                            "the right format and size at almost no CPU (inputs are checked by "
                            "their header only)")
    bench.add_argument("--nagle", action="store_true",
                       help="leave Nagle's algorithm on for accepted connections (no "
                            "TCP_NODELAY), like a server that never sets it")


def _add_credit_arguments(parser: argparse.ArgumentParser) -> None:
    credits = parser.add_argument_group(
        "credits (every process call is charged; GET /v3/file-ops/usage/ shows the balance)",
        "The public page (api-v3.md, \"Credits\") gives about 0.5-1.1 credits for the first "
        "variant depending on resolution, about 0.25 per further variant and about 0.5 per "
        "autocrop. Two things are assumptions of ours, not published: that the first "
        "variant's price rises in a straight line with the pixels rendered, and that it "
        "reaches its maximum at --price-full-at-pixels (25000000, the largest max_resolution).")
    credits.add_argument("--credits-balance", type=float, default=None, metavar="N",
                         help="starting balance; a call it cannot pay answers 402 "
                              "(default: unlimited)")
    credits.add_argument("--price-first-min", type=float, default=0.5, metavar="C",
                         help="first variant at 0 pixels (rising in a straight line, an "
                              "assumption; default 0.5)")
    credits.add_argument("--price-first-max", type=float, default=1.1, metavar="C",
                         help="first variant at --price-full-at-pixels or more (default 1.1)")
    credits.add_argument("--price-full-at-pixels", type=int, default=25_000_000, metavar="N",
                         help="pixels from which the first variant costs the most (an "
                              "assumption, not on the public page; default 25000000)")
    credits.add_argument("--price-extra-variant", type=float, default=0.25, metavar="C",
                         help="each further variant of the same call (default 0.25)")
    credits.add_argument("--price-autocrop", type=float, default=0.5, metavar="C",
                         help="each autocrop variant, on top (default 0.5)")


def options_from_args(args: argparse.Namespace) -> FakeApiOptions:
    """Build the options from parsed flags.

    Raises:
        ValueError: a value out of range.
    """
    return FakeApiOptions(
        latency_upload_s=args.latency_upload, latency_process_s=args.latency_process,
        latency_download_s=args.latency_download, fail_5xx=args.fail_5xx,
        fail_429=args.fail_429, retry_after_s=args.retry_after, fail_reset=args.fail_reset,
        fail_truncate=args.fail_truncate, fail_404_after_upload=args.fail_404,
        fail_html_200=args.fail_html_200, fail_cut_body=args.fail_cut_body,
        dribble_upload_bytes_per_s=args.dribble_upload,
        dribble_process_bytes_per_s=args.dribble_process,
        dribble_download_bytes_per_s=args.dribble_download, dribble_headers=args.dribble_headers,
        auth_fail=args.auth_fail, credits_exhausted=args.credits_exhausted,
        prerendered=args.prerendered, nagle=args.nagle, seed=args.seed,
        request_log=args.request_log, max_upload_bytes=args.max_upload_bytes,
        expiry_s=args.expiry, quota_bytes=args.quota_bytes,
        credits_balance=args.credits_balance, price_first_min=args.price_first_min,
        price_first_max=args.price_first_max, price_full_at_pixels=args.price_full_at_pixels,
        price_extra_variant=args.price_extra_variant, price_autocrop=args.price_autocrop,
    )


def run(args: argparse.Namespace) -> int:
    """Serve in the foreground until SIGINT/SIGTERM; 0 on a clean stop, 2 on bad options."""
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"fake-api: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop_requested = threading.Event()

    def handle_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, handle_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = FakeApiServer(options, host=args.host, port=args.port, api_key=args.api_key,
                           storage_dir=args.storage_dir)
    try:
        server.start()
        print(f"fake-api listening on {server.base_url}", flush=True)
        while not stop_requested.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bgcut_watchd.fake_api``."""
    parser = argparse.ArgumentParser(prog="bgcut-watchd fake-api",
                                     description="BackgroundCut API v3 emulator")
    add_arguments(parser)
    return run(parser.parse_args(argv))
