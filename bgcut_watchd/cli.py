"""The ``bgcut-watchd`` command line: the parser, and a table of commands, each run by the
``run(args)`` of its module ``bgcut_watchd.commands.<name>``.

Global options (``-c``, ``--log-level``, ``--json`` where it applies) are accepted before or
after the command: each sub-parser repeats them with a suppressed default, so a value given after
the command wins and one given before it is kept.

Exit codes (product.md): 0 success, 1 failure, 2 usage error, 3 daemon not running (``status``),
78 configuration error (mapped here, for every command, from ``ConfigError``; 2 from
``UsageError``). With ``--json`` both print one error document on stdout, the same for every
command, instead of the command's own::

    {"ok": false, "error": {"kind": "config"|"usage", "message": str}, "problems": [str]}

``problems`` lists every configuration problem with its key path (the usage error's message
alone for a usage error); ``message`` is what the text output prints on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bgcut_watchd import __version__
from bgcut_watchd.errors import ConfigError, UsageError
from bgcut_watchd.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

CONFIG_HELP = (
    "configuration file (default: $BGCUT_WATCHD_CONFIG, else /etc/bgcut-watchd/config.toml)"
)
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


@dataclass(frozen=True)
class Command:
    """One row of the table: its module in ``bgcut_watchd.commands`` and what it accepts."""

    module: str
    help: str
    config: bool = True   # takes -c/--config
    json: bool = False    # takes --json


COMMANDS = {
    "run": Command("run", "run the daemon in the foreground (what systemd starts)"),
    "check-config": Command(
        "check_config", "validate the configuration and the folders; list every problem with "
        "its key path; exit 0 or 78; --online also checks the API key and the API",
        json=True),
    "process": Command(
        "process", "one-shot: run the pipeline over the given files or folders, show progress, "
        "exit non-zero if any input failed. A file inside the folder's inbox is moved and "
        "archived like the daemon does; any other file is copied, never moved or deleted",
        json=True),
    "status": Command(
        "status", "per folder: waiting, in progress, done, quarantined; pause state; last "
        "errors; exit 3 when no daemon is running", json=True),
    "resume": Command(
        "resume", "end the running daemon's API pause now (after fixing the key or buying "
        "credits); exit 3 when no daemon is running", json=True),
    "requeue": Command(
        "requeue", "move quarantined inputs back into their inbox and remove their error "
        "files", json=True),
    "explain": Command(
        "explain", "dry run for one path: matching folder and rule, ignored or not and why, the "
        "remote calls and output names; no API call. Exit 0 when the daemon would process it, "
        "1 when not (ignored, rejected, outside every inbox, already an output, archived or "
        "quarantined)", json=True),
    "fake-api": Command("fake_api", "the built-in BackgroundCut v3 emulator", config=False),
    "demo": Command("demo", "offline tour: emulator + daemon on a temporary folder set, sample "
                    "images in, outputs shown", config=False),
    "completion": Command("completion", "print the shell completion script for bash, zsh or "
                          "fish (install.sh installs them)", config=False),
}
"""Command name -> its row; the order is the order of ``--help``."""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, one sub-parser per command of product.md."""
    parser = argparse.ArgumentParser(
        prog="bgcut-watchd",
        description="Watch folders and remove image backgrounds through the BackgroundCut API v3.",
        epilog="Global options may also follow the command. Exit codes: 0 ok, 1 failure, "
               "2 usage error, 3 daemon not running (status), 78 configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"bgcut-watchd {__version__}")
    _add_globals(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        _ARGUMENTS.get(name, _no_arguments)(_command(sub, name, command))
    return parser


def _add_globals(parser: argparse.ArgumentParser, *, top: bool, config: bool = True,
                 json: bool = True) -> None:
    """The global options; below the top level their defaults are suppressed so that a value
    given before the command survives."""
    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    if config:
        parser.add_argument("-c", "--config", default=default(None), help=CONFIG_HELP)
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="log verbosity (default: "
                        "$BGCUT_WATCHD_LOG_LEVEL, else INFO)",
                        default=default(os.environ.get("BGCUT_WATCHD_LOG_LEVEL", "INFO")))
    if json:
        parser.add_argument("--json", action="store_true", default=default(False),
                            help="machine-readable output (one JSON document on stdout)")


def _command(sub: SubParsers, name: str, command: Command) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=command.help, description=command.help)
    _add_globals(parser, top=False, config=command.config, json=command.json)
    parser.set_defaults(command_row=command)
    return parser


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """Commands without arguments of their own."""


def _check_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--online", action="store_true", help="also resolve the API key "
                        "(naming its source, never the key), reach the API with a harmless "
                        "authenticated call and report reachability, key validity and latency")


def _process_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", help="configured folder whose variants and outbox to use "
                        "(required when several folders are configured)")
    parser.add_argument("--output", type=Path, metavar="DIR", help="write the outputs to DIR "
                        "and touch nothing else: no folder created, no inbox, archive or "
                        "quarantine written (the work area is DIR/.bgcut-work; the job history "
                        "still records what was paid, so a second run pays nothing)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")


def _requeue_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", help="only this configured folder")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="every quarantined input")
    group.add_argument("files", nargs="*", type=Path, default=[], metavar="FILE")


def _explain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH")


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    from bgcut_watchd.commands.status import LEGEND

    parser.epilog = LEGEND
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def _fake_api_arguments(parser: argparse.ArgumentParser) -> None:
    from bgcut_watchd.fake_api.cli import add_arguments

    add_arguments(parser)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clean", action="store_true",
                        help="remove the demo folders at the end (by default they are kept)")
    parser.add_argument("--dir", type=Path, help="use this folder instead of a temporary one")


def _completion_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=["bash", "zsh", "fish"])


_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "check-config": _check_config_arguments, "process": _process_arguments,
    "status": _status_arguments, "requeue": _requeue_arguments,
    "explain": _explain_arguments, "fake-api": _fake_api_arguments, "demo": _demo_arguments,
    "completion": _completion_arguments,
}


def _handler(command: Command) -> Handler:
    """The ``run(args)`` of the command's module, imported on use (so that ``--help`` and light
    commands do not import the engine)."""
    module = importlib.import_module(f"bgcut_watchd.commands.{command.module}")
    handler: Handler = module.run
    return handler


def _refuse_misplaced_globals(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A global option given before a command that does not take it is a usage error."""
    command: Command = args.command_row
    if args.json and not command.json:
        parser.error(f"--json does not apply to {args.command}")
    if args.config is not None and not command.config:
        parser.error(f"-c/--config does not apply to {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _refuse_misplaced_globals(parser, args)
    args.parser = parser  # for the commands that describe the command line (completion)
    from bgcut_watchd.daemon.logsetup import configure_logging

    configure_logging(args.log_level)
    try:
        return _handler(args.command_row)(args)
    except ConfigError as exc:  # the one place a configuration error becomes exit 78
        return _error(args, "config", str(exc), exc.problems, EXIT_CONFIG)
    except UsageError as exc:
        message = f"{args.command}: {exc}"
        return _error(args, "usage", message, [message], EXIT_USAGE)
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        # `bgcut-watchd status | head` must not print a traceback.
        sys.stderr.close()
        return EXIT_OK


def _error(args: argparse.Namespace, kind: str, message: str, problems: list[str],
           code: int) -> int:
    """Print a configuration or usage error (the error document with ``--json``); ``code``."""
    if args.json:
        document = {"ok": False, "error": {"kind": kind, "message": message},
                    "problems": problems}
        print(json.dumps(document, indent=2))
    else:
        print(message, file=sys.stderr)
    return code


__all__ = ["COMMANDS", "build_parser", "main"]
