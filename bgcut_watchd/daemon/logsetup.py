"""Logging: journald with structured fields under systemd, else one line per event on stderr.

Under systemd (``JOURNAL_STREAM`` names our stderr) and with systemd-python installed (the
``systemd`` extra), each record goes to the journal with ``SYSLOG_IDENTIFIER=bgcut-watchd``,
its priority, and the job's fields when the caller passed them: ``extra=job_fields(...)``
(``job.logfields``)
becomes ``JOB_ID=``, ``FOLDER=``, ``INPUT=``, ``STAGE=``, ``REASON=``, so that
``journalctl -u bgcut-watchd JOB_ID=...`` follows one job. Anywhere else: one line per event on
stderr. The API key is redacted on both paths (``secrets.RedactingFilter``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from bgcut_watchd.config.secrets import RedactingFilter, redact

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SYSLOG_IDENTIFIER = "bgcut-watchd"
JOB_FIELDS = {"job_id": "JOB_ID", "folder": "FOLDER", "input": "INPUT", "stage": "STAGE",
              "reason": "REASON"}
"""LogRecord attribute (as set by ``extra=``) -> journal field name."""

JournalSend = Callable[..., Any]
"""``systemd.journal.send``: ``send(MESSAGE, **FIELDS)``."""

_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))  # syslog levels; anything lower is 7 (debug)


def configure_logging(level: str = "INFO", secret: str | None = None, *,
                      environ: Mapping[str, str] = os.environ, stream: TextIO | None = None,
                      journal_send: JournalSend | None = None) -> logging.Handler:
    """Route every log record to the journal or to ``stream`` (stderr), key redacted.

    Raises nothing; calling it again replaces the previous handler. Returns the handler.
    """
    handler = build_handler(environ=environ, stream=stream or sys.stderr, secret=secret,
                            journal_send=journal_send)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # urllib3 logs full URLs at debug level; they never carry the key, but keep it quiet.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    _quiet_watchdog_stop_race()
    logging.captureWarnings(True)  # a library's RuntimeWarning becomes one log line, not three
    return handler


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != self.text


def _quiet_watchdog_stop_race() -> None:
    """Two pieces of watchdog 7 noise that say nothing is wrong:

    * an ERROR when an inotify read returns while its observer is being stopped
      (inotify.py, ``queue_events``): the event is dropped on purpose;
    * a RuntimeWarning "Callback with id ... already exists ... It will be Overwritten" when a
      folder created inside a watched inbox (each job's ``.bgcut-work/<job>``) gets its watch
      registered twice (by its IN_CREATE and by the recursive add): the same callback.

    Neither may read as a failure in the journal at every job or every stop.
    """
    logger = logging.getLogger("watchdog.observers.inotify")
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(
            "InotifyEmitter.queue_events() called when the thread is inactive"))
    warnings.filterwarnings("ignore", message=r"Callback with id .* already exists",
                            category=RuntimeWarning, module=r"watchdog\.")


def build_handler(*, environ: Mapping[str, str], stream: TextIO, secret: str | None = None,
                  journal_send: JournalSend | None = None) -> logging.Handler:
    """The journald handler when ``stream`` is systemd's journal stream, else a stream one.

    ``journal_send`` replaces ``systemd.journal.send`` (tests); without either, a journal
    stream gets plain lines with a ``<priority>`` prefix that journald understands.
    """
    to_journal = stderr_is_journal(environ, stream)
    send = journal_send or (_systemd_journal_send() if to_journal else None)
    handler: logging.Handler
    if to_journal and send is not None:
        handler = JournaldHandler(send, secret or "")
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(OneLineFormatter(journal_prefix=to_journal))
    add_redaction(handler, secret)
    return handler


def journal_active() -> bool:
    """True when log records go to journald as structured entries (not as stderr lines)."""
    return any(isinstance(h, JournaldHandler) for h in logging.getLogger().handlers)


def stderr_is_journal(environ: Mapping[str, str], stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd connected (``JOURNAL_STREAM``).

    systemd sets ``JOURNAL_STREAM=<device>:<inode>`` of that stream; a child whose stderr was
    redirected inherits the variable, hence the comparison (systemd.exec(5)).
    """
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        info = os.fstat(stream.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):  # no fd (captured), or a malformed value
        return False


def add_redaction(handler: logging.Handler, secret: str | None) -> None:
    """Install the API-key redaction filter on ``handler`` (belt and braces: no code logs it)."""
    if secret:
        handler.addFilter(RedactingFilter(secret))


class OneLineFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message>``, the message's line breaks escaped.

    A file name may hold a newline; escaping keeps one line per event (a traceback, when
    there is one, still follows on its own lines). ``journal_prefix``: journald stamps the
    time itself and reads a leading ``<N>`` as the priority, sd-daemon(3).
    """

    def __init__(self, journal_prefix: bool = False) -> None:
        fmt = "<%(priority)d>%(name)s: %(message)s" if journal_prefix else LOG_FORMAT
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%S%z")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.priority = syslog_priority(record.levelno)
        record.message = _escape_breaks(record.message)
        return super().formatMessage(record)


class JournaldHandler(logging.Handler):
    """Sends each record to journald with a fixed set of fields (``send`` is journal.send).

    Not systemd-python's JournalHandler, whose ``emit`` forwards every LogRecord attribute
    (raw ``args`` as CODE_ARGS, ``exc_info`` as EXCEPTION_INFO, lower-case junk): those would
    bypass the key redaction. This one sends MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, LOGGER,
    THREAD_NAME, CODE_FILE/LINE/FUNC and the job fields, each redacted.
    """

    def __init__(self, send: JournalSend, secret: str = "") -> None:
        super().__init__()
        self._send = send
        self._secret = secret
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # journal.send wants CODE_LINE as an int, every other field as text
            self._send(self._clean(self.format(record)), CODE_LINE=record.lineno,
                       **self.fields(record))
        except Exception:  # logging must not take the daemon down
            self.handleError(record)

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        """The journal fields for ``record`` other than MESSAGE and CODE_LINE."""
        fields = {
            "PRIORITY": str(syslog_priority(record.levelno)),
            "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
            "LOGGER": record.name, "THREAD_NAME": record.threadName or "",
            "CODE_FILE": record.pathname, "CODE_FUNC": record.funcName,
        }
        for attribute, name in JOB_FIELDS.items():
            value = record.__dict__.get(attribute)
            if value is not None:
                fields[name] = str(value)
        return {name: self._clean(value) for name, value in fields.items()}

    def _clean(self, text: str) -> str:
        # Lone surrogates (undecodable file names) cannot be encoded as UTF-8: escape them.
        text = redact(text, self._secret)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def syslog_priority(levelno: int) -> int:
    """The syslog priority (0 emerg .. 7 debug) for a logging level."""
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return 7


def _escape_breaks(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _systemd_journal_send() -> JournalSend | None:
    try:
        # import_module: mypy would take the repository's systemd/ folder (the unit) for it
        journal = importlib.import_module("systemd.journal")
    except ImportError:
        return None
    send: JournalSend = journal.send
    return send
