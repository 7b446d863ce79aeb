"""The ``bgcut-watchd`` command line: parses arguments and hands over to the right module.

Exit codes (product.md): 0 success, 1 failure, 2 usage error, 78 configuration error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bgcut_watchd import __version__
from bgcut_watchd.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

Handler = Callable[[argparse.Namespace], int]

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
    run = sub.add_parser("run", help="run the daemon in the foreground (what systemd starts)")
    run.add_argument("-c", "--config", help=CONFIG_HELP)
    run.set_defaults(handler=_cmd_run)

    check = sub.add_parser("check-config", help="validate the configuration and the folders; "
                           "list every problem with its key path; exit 0 or 78")
    check.add_argument("-c", "--config", help=CONFIG_HELP)
    check.set_defaults(handler=_cmd_check_config)

    process = sub.add_parser("process", help="one-shot: run the pipeline over the given files "
                             "or folders, show progress, exit non-zero if any input failed. A "
                             "file inside the folder's inbox is moved and archived like the "
                             "daemon does; any other file is copied, never moved or deleted")
    process.add_argument("-c", "--config", help=CONFIG_HELP)
    process.add_argument("--folder", help="configured folder whose variants and outbox to use "
                         "(default: the folder whose inbox holds the path, else the first)")
    process.add_argument("--no-progress", action="store_true", help="no progress bar")
    process.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    process.set_defaults(handler=_cmd_process)

    status = sub.add_parser("status", help="per folder: waiting, in progress, done, "
                            "quarantined; pause state; last errors")
    status.add_argument("-c", "--config", help=CONFIG_HELP)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_cmd_status)

    requeue = sub.add_parser("requeue", help="move quarantined inputs back into their inbox "
                             "and remove their error files")
    requeue.add_argument("-c", "--config", help=CONFIG_HELP)
    requeue.add_argument("--folder", help="only this configured folder")
    group = requeue.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="every quarantined input")
    group.add_argument("files", nargs="*", type=Path, default=[], metavar="FILE")
    requeue.set_defaults(handler=_cmd_requeue)

    explain = sub.add_parser("explain", help="dry run for one path: matching folder and rule, "
                             "ignored or not and why, the remote calls and output names; "
                             "no API call")
    explain.add_argument("-c", "--config", help=CONFIG_HELP)
    explain.add_argument("path", type=Path, metavar="PATH")
    explain.set_defaults(handler=_cmd_explain)


def _add_tool_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bgcut_watchd.fake_api import cli as fake_api_cli

    fake = sub.add_parser("fake-api", help="the built-in BackgroundCut v3 emulator")
    fake_api_cli.add_arguments(fake)
    fake.set_defaults(handler=fake_api_cli.run)

    demo = sub.add_parser("demo", help="offline tour: emulator + daemon on a temporary folder "
                          "set, sample images in, outputs shown")
    demo.add_argument("--clean", action="store_true",
                      help="remove the demo folders at the end (by default they are kept)")
    demo.add_argument("--dir", type=Path, help="use this folder instead of a temporary one")
    demo.set_defaults(handler=_cmd_demo)


def _cmd_run(args: argparse.Namespace) -> int:
    from bgcut_watchd.service import run_daemon

    return run_daemon(args.config, args.log_level)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from bgcut_watchd.commands import check_config

    return check_config(args.config)


def _cmd_process(args: argparse.Namespace) -> int:
    from bgcut_watchd.commands import process_paths

    return process_paths(args.config, args.folder, args.paths, progress=not args.no_progress)


def _cmd_status(args: argparse.Namespace) -> int:
    from bgcut_watchd.commands import show_status

    return show_status(args.config, as_json=args.json)


def _cmd_requeue(args: argparse.Namespace) -> int:
    from bgcut_watchd.commands import requeue

    return requeue(args.config, args.folder, args.files, everything=args.all)


def _cmd_explain(args: argparse.Namespace) -> int:
    from bgcut_watchd.commands import explain

    return explain(args.config, args.path)


def _cmd_demo(args: argparse.Namespace) -> int:
    from bgcut_watchd.demo import run_demo

    return run_demo(args.dir, clean=args.clean)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from bgcut_watchd.logsetup import configure_logging

    configure_logging(args.log_level)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        # `bgcut-watchd status | head` must not print a traceback.
        sys.stderr.close()
        return EXIT_OK


__all__ = ["EXIT_CONFIG", "build_parser", "main"]
