"""The CLI glue: flags, and the emulator as a real subprocess stopped by a signal."""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bgcut_watchd.fake_api.cli import add_arguments, options_from_args
from bgcut_watchd.fake_api.options import FakeApiOptions

from .conftest import USAGE_URL, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BGCUT_API_KEY", raising=False)
    args = parse([])
    assert (args.host, args.port, args.api_key, args.storage_dir) == (
        "127.0.0.1", 8765, "test-key", None)
    assert options_from_args(args) == FakeApiOptions()


def test_api_key_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGCUT_API_KEY", "from-env")
    assert parse([]).api_key == "from-env"


def test_every_fault_flag_reaches_the_options(tmp_path: Path) -> None:
    args = parse([
        "--latency-upload", "0.1", "--latency-process", "0.2", "--latency-download", "0.3",
        "--fail-5xx", "0.1", "--fail-429", "0.2", "--retry-after", "4", "--fail-reset", "0.3",
        "--fail-truncate", "0.4", "--fail-404", "0.5", "--auth-fail", "--credits-exhausted",
        "--seed", "42", "--request-log", str(tmp_path / "log"), "--max-upload-bytes", "99",
        "--expiry", "30", "--fail-html-200", "0.6", "--fail-cut-body", "0.7",
        "--dribble-upload", "10", "--dribble-process", "20", "--dribble-download", "30.5",
        "--dribble-headers", "--prerendered", "--nagle",
    ])
    assert options_from_args(args) == FakeApiOptions(
        latency_upload_s=0.1, latency_process_s=0.2, latency_download_s=0.3, fail_5xx=0.1,
        fail_429=0.2, retry_after_s=4, fail_reset=0.3, fail_truncate=0.4,
        fail_404_after_upload=0.5, auth_fail=True, credits_exhausted=True, seed=42,
        request_log=tmp_path / "log", max_upload_bytes=99, expiry_s=30.0, fail_html_200=0.6,
        fail_cut_body=0.7, dribble_upload_bytes_per_s=10.0, dribble_process_bytes_per_s=20.0,
        dribble_download_bytes_per_s=30.5, dribble_headers=True, prerendered=True, nagle=True,
    )


def test_a_share_out_of_range_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["--fail-5xx", "1.5"])
    assert exit_info.value.code == 2


def read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            pytest.fail("the emulator printed nothing")
    return process.stdout.readline().strip()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    log_file = tmp_path / "requests.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "BGCUT_API_KEY": "sub-key"}
    process = subprocess.Popen(
        [sys.executable, "-m", "bgcut_watchd.fake_api", "--port", "0", "--request-log",
         str(log_file), "--storage-dir", str(tmp_path / "storage")],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = read_line(process, timeout_s=20)
        assert line.startswith("fake-api listening on http://127.0.0.1:")
        yield process, line.rsplit(" ", 1)[1], log_file
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_subprocess_serves_logs_and_stops_on_signal(
    emulator: tuple[subprocess.Popen[str], str, Path], signum: signal.Signals
) -> None:
    process, base_url, log_file = emulator
    auth = {"Authorization": "Token sub-key"}
    assert requests.get(base_url + USAGE_URL, headers=auth, timeout=10).status_code == 200
    wait_for(lambda: log_file.exists() and bool(log_file.read_text()))
    (entry,) = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert (entry["endpoint"], entry["status"]) == ("usage", 200)
    assert abs(entry["timestamp_s"] - time.monotonic()) < 60  # the system monotonic clock
    process.send_signal(signum)
    assert process.wait(timeout=10) == 0


def test_every_switch_says_what_it_does_in_help() -> None:
    """``fake-api --help`` explains every flag: a fault switch without words is a guess."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    silent = [action.option_strings[0] for action in parser._actions
              if action.option_strings and action.dest != "help" and not action.help]
    assert silent == []


def test_help_shows_each_price_default_and_labels_what_the_public_page_does_not_say() -> None:
    """api-v3.md gives "about 0.5-1.1 credits per image depending on resolution": at which
    resolution 1.1 is reached, and that the price rises in a straight line, are ours."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    for flag, default in (("--price-first-min", "0.5"), ("--price-first-max", "1.1"),
                          ("--price-full-at-pixels", "25000000"),
                          ("--price-extra-variant", "0.25"), ("--price-autocrop", "0.5")):
        action = next(a for a in parser._actions if flag in a.option_strings)
        assert action.help is not None and f"default {default}" in action.help, flag
    assert "assumption" in text and "straight line" in text
