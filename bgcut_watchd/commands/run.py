"""``bgcut-watchd run``: load the configuration and the API key, then serve until a signal.

Exit 0 after a clean stop; 78 for a bad configuration, a missing key or an unusable ledger (so
systemd's ``RestartPreventExitStatus`` does not restart-loop).
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3

from bgcut_watchd.commands.status import collect_status
from bgcut_watchd.config.folders import load_checked
from bgcut_watchd.config.load import resolve_config_path
from bgcut_watchd.config.secrets import load_api_key
from bgcut_watchd.daemon.logsetup import configure_logging, journal_active
from bgcut_watchd.daemon.service import Service
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.exitcodes import EXIT_CONFIG
from bgcut_watchd.fsops import show_path

log = logging.getLogger("bgcut_watchd.daemon.service")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT. Raises ConfigError (exit 78, printed by ``cli``)."""
    config_path = resolve_config_path(args.config, os.environ)
    try:
        config = load_checked(config_path)
    except ConfigError as exc:
        # ``cli`` prints the problems as readable lines on stderr; under systemd they also
        # become one structured journal entry (a terminal gets no second, escaped copy).
        if journal_active():
            log.error("%s", exc)
        raise
    api_key = load_api_key(config.api)
    configure_logging(args.log_level, secret=api_key)
    for warning in config.warnings:
        log.warning("configuration: %s", warning)
    try:
        service = Service(config_path, config, api_key, status_document=collect_status)
    except sqlite3.Error as exc:
        # A damaged ledger needs the administrator: say so rather than restart-loop.
        log.error("daemon.state_dir: cannot open the ledger in %s (%s); move the file away "
                  "to start a new history", show_path(config.daemon.state_dir), exc)
        return EXIT_CONFIG
    service.install_signal_handlers()
    return service.run()
