"""``bgcut-watchd completion bash|zsh|fish``: the shell completion script, generated from the
parser itself by shtab, so it can never disagree with ``--help``. ``install.sh`` installs the
three scripts where bash-completion, zsh and fish look for them.
"""

from __future__ import annotations

import argparse

import shtab

from bgcut_watchd.exitcodes import EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``, from ``args.parser`` (the whole command line, put
    there by ``cli``); exit 0."""
    print(shtab.complete(args.parser, shell=args.shell), end="")
    return EXIT_OK
