"""Logging: journald with structured fields under systemd, one line per event on stderr otherwise,
and the API key redacted on both paths.

The in-process tests replace ``systemd.journal.send`` (the one seam: libsystemd always writes to
/run/systemd/journal/socket). The end-to-end test gives a real daemon subprocess its own mount
namespace in which that path is a datagram socket the test reads, and parses journald's native
protocol from it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd.daemon.logsetup import JOB_FIELDS, configure_logging
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.logfields import job_fields
from tests.hostile import make_text_named_jpg
from tests.support import API_KEY, REPO, files_under, wait_for, write_config

log = logging.getLogger("bgcut_watchd.test")


class Journal:
    """Captures ``systemd.journal.send(MESSAGE, **fields)`` calls, checking the types the real
    one insists on (MESSAGE text, CODE_LINE an int, the rest text or bytes)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, str]] = []

    def send(self, message: str, **fields: Any) -> None:
        assert isinstance(message, str)
        assert isinstance(fields.pop("CODE_LINE"), int)
        assert all(isinstance(v, str | bytes) for v in fields.values()), fields
        self.entries.append({"MESSAGE": message, **{k: str(v) for k, v in fields.items()}})


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def journal_environ(stream_path: Path) -> dict[str, str]:
    info = stream_path.stat()
    return {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}


@pytest.fixture
def stderr_file(tmp_path: Path) -> Iterator[Any]:
    with (tmp_path / "stderr.txt").open("w+", encoding="utf-8") as stream:
        yield stream


def test_job_fields_leave_out_what_is_unknown() -> None:
    assert job_fields("j1", "studio", Path("sub/a.jpg"), stage="upload") == {
        "job_id": "j1", "folder": "studio", "input": "sub/a.jpg", "stage": "upload"}
    assert job_fields(None, "studio", None) == {"folder": "studio"}
    assert set(JOB_FIELDS.values()) == {"JOB_ID", "FOLDER", "INPUT", "STAGE", "REASON"}


def test_under_systemd_records_go_to_the_journal_with_the_job_fields(
    tmp_path: Path, stderr_file: Any, restore_logging: None,
) -> None:
    journal = Journal()
    configure_logging("INFO", environ=journal_environ(tmp_path / "stderr.txt"),
                      stream=stderr_file, journal_send=journal.send)
    log.warning("job %s [%s] %s: quarantined at %s: %s", "j1", "studio", "a.jpg", "validate",
                "invalid_image", extra=job_fields("j1", "studio", "sub/a.jpg",
                                                  stage="validate", reason="invalid_image"))
    log.debug("not at INFO")
    (entry,) = journal.entries
    assert entry["MESSAGE"] == "job j1 [studio] a.jpg: quarantined at validate: invalid_image"
    assert {k: entry[k] for k in ("JOB_ID", "FOLDER", "INPUT", "STAGE", "REASON")} == {
        "JOB_ID": "j1", "FOLDER": "studio", "INPUT": "sub/a.jpg", "STAGE": "validate",
        "REASON": "invalid_image"}
    assert (entry["PRIORITY"], entry["SYSLOG_IDENTIFIER"], entry["LOGGER"]) == (
        "4", "bgcut-watchd", "bgcut_watchd.test")
    assert all(name.isupper() or name.startswith("CODE_") for name in entry)  # journald names
    stderr_file.seek(0)
    assert stderr_file.read() == ""  # not twice


def test_the_key_is_redacted_in_every_journal_field(
    tmp_path: Path, stderr_file: Any, restore_logging: None,
) -> None:
    journal = Journal()
    configure_logging("DEBUG", secret=API_KEY, environ=journal_environ(tmp_path / "stderr.txt"),
                      stream=stderr_file, journal_send=journal.send)
    log.error("header was %s", f"Bearer {API_KEY}",
              extra=job_fields("j2", "studio", f"/in/{API_KEY}.jpg", reason=API_KEY))
    try:
        raise ValueError(f"server echoed {API_KEY}")
    except ValueError:
        log.exception("call failed")
    assert len(journal.entries) == 2
    text = repr(journal.entries)
    assert API_KEY not in text
    assert journal.entries[0]["MESSAGE"] == "header was Bearer ***"
    assert journal.entries[0]["INPUT"] == "/in/***.jpg"
    assert "server echoed ***" in journal.entries[1]["MESSAGE"]  # the traceback, redacted


def test_elsewhere_one_line_per_event_on_stderr_with_the_key_redacted(
    stderr_file: Any, restore_logging: None,
) -> None:
    journal = Journal()
    configure_logging("INFO", secret=API_KEY, environ={}, stream=stderr_file,
                      journal_send=journal.send)
    log.warning("file %s\nfake 2020-01-01 ERROR line, key %s", "evil\rname.jpg", API_KEY,
                extra=job_fields("j3", "studio", "evil.jpg"))
    log.info("second event")
    stderr_file.seek(0)
    lines = stderr_file.read().splitlines()
    assert journal.entries == []
    assert len(lines) == 2
    assert " WARNING bgcut_watchd.test: file evil\\rname.jpg\\nfake 2020-01-01 ERROR line, key " \
        "***" in lines[0]
    assert API_KEY not in lines[0]


def test_an_inherited_journal_stream_does_not_count_when_stderr_is_elsewhere(
    tmp_path: Path, stderr_file: Any, restore_logging: None,
) -> None:
    other = tmp_path / "the-journal-stream-of-a-parent"
    other.write_text("")
    journal = Journal()
    configure_logging("INFO", environ=journal_environ(other), stream=stderr_file,
                      journal_send=journal.send)
    log.info("to the file")
    stderr_file.seek(0)
    assert journal.entries == [] and "to the file" in stderr_file.read()


def test_without_systemd_python_the_journal_stream_gets_priority_prefixed_lines(
    tmp_path: Path, stderr_file: Any, restore_logging: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "systemd.journal", None)  # import fails: extra missing
    configure_logging("INFO", environ=journal_environ(tmp_path / "stderr.txt"),
                      stream=stderr_file)
    log.error("disk full")
    log.info("fine")
    stderr_file.seek(0)
    # journald reads "<N>" as the priority (SyslogLevelPrefix=) and stamps the time itself
    assert stderr_file.read().splitlines() == ["<3>bgcut_watchd.test: disk full",
                                               "<6>bgcut_watchd.test: fine"]


# -- end to end: a real daemon, real libsystemd, a socket where journald's would be -------------

def parse_native(datagram: bytes) -> dict[str, bytes]:
    """journald's native protocol: ``KEY=value\\n``, or ``KEY\\n<le64 size><value>\\n``."""
    fields: dict[str, bytes] = {}
    rest = datagram
    while rest:
        line, _, after = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value
            rest = after
        else:
            (size,) = struct.unpack("<Q", after[:8])
            fields[line.decode()] = after[8:8 + size]
            rest = after[8 + size + 1:]
    return fields


def can_fake_journald() -> str | None:
    """Why the end-to-end test cannot run here, or None."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare/mount not installed"
    try:
        import systemd.journal  # noqa: F401
    except ImportError:
        return "the systemd extra (systemd-python) is not installed"
    probe = subprocess.run(["unshare", "--mount", "mount", "-t", "tmpfs", "tmpfs", "/run"],
                           capture_output=True, check=False)
    return None if probe.returncode == 0 else "no mount namespaces here (needs root)"


@pytest.fixture
def fake_journald() -> Iterator[tuple[Path, list[dict[str, bytes]]]]:
    reason = can_fake_journald()
    if reason:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="bgcut-journal-") as folder:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(os.path.join(folder, "socket"))
        sock.settimeout(0.05)
        entries: list[dict[str, bytes]] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                try:
                    entries.append(parse_native(sock.recv(1 << 20)))
                except TimeoutError:
                    continue

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            yield Path(folder), entries
        finally:
            stop.set()
            reader.join(timeout=5)
            sock.close()


JOURNAL_WRAPPER = ('mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && '
                   'mount --bind "$0" /run/systemd/journal && exec "$@"')


def run_until_quarantine_logged(tmp_path: Path, base_url: str, journal_dir: Path,
                                entries: list[dict[str, bytes]]) -> Path:
    """A daemon in its own mount namespace, stderr being "the journal stream"; it quarantines
    one input, then gets SIGTERM. Returns the stderr file."""
    config = write_config(tmp_path, base_url)
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    make_text_named_jpg(inbox)  # quarantined: a warning about one job
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        env = {**os.environ, "PYTHONPATH": str(REPO), "BGCUT_API_KEY": API_KEY,
               "BGCUT_WATCHD_LOG_LEVEL": "DEBUG", **journal_environ(stderr_path)}
        proc = subprocess.Popen(
            ["unshare", "--mount", "sh", "-c", JOURNAL_WRAPPER, str(journal_dir),
             sys.executable, "-m", "bgcut_watchd", "run", "-c", str(config)],
            env=env, stdout=stderr, stderr=stderr, stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: any(b"quarantined" in e.get("MESSAGE", b"") for e in entries),
                     what="the quarantine logged to the journal")
            proc.terminate()
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return stderr_path


def test_a_daemon_under_systemd_logs_to_journald_and_never_the_key(
    tmp_path: Path, emulator: FakeApiServer,
    fake_journald: tuple[Path, list[dict[str, bytes]]],
) -> None:
    stderr_path = run_until_quarantine_logged(tmp_path, emulator.base_url, *fake_journald)
    entries = fake_journald[1]
    assert any(p.name.endswith(".error.json") for p in files_under(tmp_path / "studio"))
    assert stderr_path.read_text() == ""  # everything went to the journal
    assert "stopped" in [e["MESSAGE"].decode() for e in entries]
    assert {e["SYSLOG_IDENTIFIER"] for e in entries} == {b"bgcut-watchd"}
    assert {e["PRIORITY"] for e in entries} >= {b"4", b"6", b"7"}  # warning, info, debug
    assert not any(API_KEY.encode() in b"".join(e.values()) for e in entries)
    assert not any(API_KEY[-8:].encode() in b"".join(e.values()) for e in entries)


def test_a_quarantine_entry_carries_the_job_fields(
    tmp_path: Path, emulator: FakeApiServer,
    fake_journald: tuple[Path, list[dict[str, bytes]]],
) -> None:
    run_until_quarantine_logged(tmp_path, emulator.base_url, *fake_journald)
    (entry,) = [e for e in fake_journald[1] if b"quarantined at" in e["MESSAGE"]]
    assert (entry["FOLDER"], entry["STAGE"], entry["INPUT"]) == (b"studio", b"validate",
                                                                 b"notes.jpg")
    assert entry["JOB_ID"] and entry["REASON"]


def test_a_bad_configuration_under_systemd_is_one_journal_entry(
    tmp_path: Path, stderr_file: Any, restore_logging: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``run`` with a bad configuration: readable lines on stderr (printed by ``cli``) and one
    structured journal entry with every problem, not one escaped line per problem."""
    import argparse

    from bgcut_watchd.commands import run as run_command
    from bgcut_watchd.errors import ConfigError

    journal = Journal()
    configure_logging("INFO", environ=journal_environ(tmp_path / "stderr.txt"),
                      stream=stderr_file, journal_send=journal.send)
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon]\nworkers = 0\nwrokers = 1\n", "utf-8")
    args = argparse.Namespace(config=str(bad), log_level="INFO")
    with pytest.raises(ConfigError):
        run_command.run(args)
    (entry,) = journal.entries
    assert "daemon.workers: must be >= 1, got 0" in entry["MESSAGE"]
    assert "daemon.wrokers: unknown key" in entry["MESSAGE"] and "\n" in entry["MESSAGE"]
    assert entry["PRIORITY"] == "3"
