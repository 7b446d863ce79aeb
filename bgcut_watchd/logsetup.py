"""Logging: one line per event on stderr (journald takes over under systemd, see systemd.py)."""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO", secret: str | None = None) -> None:
    """Send every log record to stderr, one line each, with the API key redacted.

    Raises nothing; calling it twice replaces the previous handler.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    add_redaction(handler, secret)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # urllib3 logs full URLs at debug level; they never carry the key, but keep it quiet.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def add_redaction(handler: logging.Handler, secret: str | None) -> None:
    """Install the API-key redaction filter on ``handler`` (belt and braces: no code logs it)."""
    if not secret:
        return
    from bgcut_watchd.secrets import RedactingFilter

    handler.addFilter(RedactingFilter(secret))
