"""The ``bgcut-watchd`` command line: the parser, and a table of commands, each run by the
``run(args)`` of its module ``bgcut_watchd.commands.<name>``.

Exit codes (product.md): 0 success, 1 failure, 2 usage error, 78 configuration error (mapped
here, for every command, from ``ConfigError``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bgcut_watchd import __version__
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

Handler = Callable[[argparse.Namespace], int]

COMMANDS = {
    "run": "run", "check-config": "check_config", "process": "process", "status": "status",
    "requeue": "requeue", "explain": "explain", "fake-api": "fake_api", "demo": "demo",
}
"""Command name -> its module in ``bgcut_watchd.commands``."""

CONFIG_HELP = (
    "configuration file (default: $BGCUT_WATCHD_CONFIG, else /etc/bgcut-watchd/config.toml)"
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, one sub-parser per command of product.md."""
    parser = argparse.ArgumentParser(
        prog="bgcut-watchd",
        description="Watch folders and remove image backgrounds through the BackgroundCut API v3.",
    )
    parser.add_argument("--version", action="version", version=f"bgcut-watchd {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("BGCUT_WATCHD_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_config_commands(sub)
    _add_tool_commands(sub)
    return parser


def _add_config_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = _command(sub, "run", "run the daemon in the foreground (what systemd starts)")
    run.add_argument("-c", "--config", help=CONFIG_HELP)

    check = _command(sub, "check-config", "validate the configuration and the folders; "
                     "list every problem with its key path; exit 0 or 78")
    check.add_argument("-c", "--config", help=CONFIG_HELP)

    process = _command(sub, "process", "one-shot: run the pipeline over the given files "
                       "or folders, show progress, exit non-zero if any input failed. A "
                       "file inside the folder's inbox is moved and archived like the "
                       "daemon does; any other file is copied, never moved or deleted")
    process.add_argument("-c", "--config", help=CONFIG_HELP)
    process.add_argument("--folder", help="configured folder whose variants and outbox to use "
                         "(default: the folder whose inbox holds the path, else the first)")
    process.add_argument("--no-progress", action="store_true", help="no progress bar")
    process.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    status = _command(sub, "status", "per folder: waiting, in progress, done, "
                      "quarantined; pause state; last errors")
    status.add_argument("-c", "--config", help=CONFIG_HELP)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    requeue = _command(sub, "requeue", "move quarantined inputs back into their inbox "
                       "and remove their error files")
    requeue.add_argument("-c", "--config", help=CONFIG_HELP)
    requeue.add_argument("--folder", help="only this configured folder")
    group = requeue.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="every quarantined input")
    group.add_argument("files", nargs="*", type=Path, default=[], metavar="FILE")

    explain = _command(sub, "explain", "dry run for one path: matching folder and rule, "
                       "ignored or not and why, the remote calls and output names; "
                       "no API call")
    explain.add_argument("-c", "--config", help=CONFIG_HELP)
    explain.add_argument("path", type=Path, metavar="PATH")


def _add_tool_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bgcut_watchd.fake_api.cli import add_arguments

    add_arguments(_command(sub, "fake-api", "the built-in BackgroundCut v3 emulator"))
    demo = _command(sub, "demo", "offline tour: emulator + daemon on a temporary folder "
                    "set, sample images in, outputs shown")
    demo.add_argument("--clean", action="store_true",
                      help="remove the demo folders at the end (by default they are kept)")
    demo.add_argument("--dir", type=Path, help="use this folder instead of a temporary one")


def _command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
             help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text)
    parser.set_defaults(command_module=COMMANDS[name])
    return parser


def _handler(module_name: str) -> Handler:
    """The ``run(args)`` of ``bgcut_watchd.commands.<module_name>``, imported on use (so that
    ``--help`` and light commands do not import the engine)."""
    module = importlib.import_module(f"bgcut_watchd.commands.{module_name}")
    handler: Handler = module.run
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from bgcut_watchd.daemon.logsetup import configure_logging

    configure_logging(args.log_level)
    try:
        return _handler(args.command_module)(args)
    except ConfigError as exc:  # the one place a configuration error becomes exit 78
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        # `bgcut-watchd status | head` must not print a traceback.
        sys.stderr.close()
        return EXIT_OK


__all__ = ["COMMANDS", "build_parser", "main"]
