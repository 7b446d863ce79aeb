"""``bgcut-watchd completion bash|zsh|fish``: the shell completion script, generated from the
parser itself by shtab, so it can never disagree with ``--help``. ``install.sh`` installs the
three scripts where bash-completion, zsh and fish look for them.
"""

from __future__ import annotations

import argparse

import shtab

from bgcut_watchd.exitcodes import EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``; exit 0."""
    from bgcut_watchd.cli import build_parser

    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return EXIT_OK
