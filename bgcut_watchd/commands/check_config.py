"""``bgcut-watchd check-config``: validate the configuration and the folders.

Every problem is listed with its key path and the exit is 78 (``cli`` prints them); else a
summary of the folders and exit 0.
"""

from __future__ import annotations

import argparse

from bgcut_watchd.commands.common import load, print_warnings
from bgcut_watchd.config.describe import describe
from bgcut_watchd.exitcodes import EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Print the summary and ``configuration OK``; exit 0. Raises ConfigError (exit 78)."""
    config = load(args)
    print_warnings(config)
    print(describe(config))
    print("configuration OK")
    return EXIT_OK
