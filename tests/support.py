"""Shared test helpers: waiting on conditions, writing configurations, running the daemon.

Two ways to run a real daemon against the real emulator:

* :class:`InProcessDaemon`: the :class:`Service` in a thread of the test process (fast; for
  the pipeline's behaviour);
* :class:`DaemonProcess`: ``python -m bgcut_watchd run`` as a subprocess (for signals,
  ``kill -9`` and exit codes).

Also what the crash, lifecycle and torture tests share: looking into the work area and the
outbox, reading the emulator's request log per job, streaming distinct images into an inbox,
and killing a daemon at random moments.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from bgcut_watchd.commands.demo import DEMO_VARIANTS
from bgcut_watchd.config import Config
from bgcut_watchd.config import folders as config_folders
from bgcut_watchd.daemon.service import Service
from bgcut_watchd.daemon.systemd import Notifier
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.fake_api.reqlog import RequestLogEntry
from bgcut_watchd.mounts import SYSTEM_TABLES, MountTables
from tests.hostile import make_valid_avif, make_valid_jpeg, make_valid_png, make_valid_webp

REPO = Path(__file__).resolve().parent.parent
API_KEY = "test-key-Zq81SECRET"
KILL_STATES = ("claiming", "uploaded", "downloaded", "published")
UPLOAD_PREFIX = "bgcut-watchd"  # the default api.upload_prefix: remote paths are <prefix>/<job>/...
VARIANT_SUFFIXES = ("full.png", "thumb.webp", "white.jpg")  # write_config's default variants
WORK_DIR = ".bgcut-work"


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0,
             interval_s: float = 0.02, what: str = "condition",
             explain: Callable[[], str] | None = None) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout_s`` (with what
    ``explain`` says about the state then, for a failure that happens once in many runs)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{detail}")
        time.sleep(interval_s)  # polling interval of a deadline-bounded wait, not a fixed wait


def poll_until(predicate: Callable[[], object], timeout_s: float) -> bool:
    """Like ``wait_for`` but returns False at the deadline instead of failing."""
    try:
        wait_for(predicate, timeout_s, interval_s=0.005)
    except AssertionError:
        return False
    return True


DEFAULT_VARIANTS = DEMO_VARIANTS  # full (png), thumb (webp, autocrop), white (jpeg)


def write_config(root: Path, base_url: str, *, folders: Iterable[str] = ("studio",),
                 daemon: dict[str, Any] | None = None, retry: dict[str, Any] | None = None,
                 api: dict[str, Any] | None = None, folder: dict[str, Any] | None = None,
                 http: dict[str, Any] | None = None, notify: dict[str, Any] | None = None,
                 variants: str = DEFAULT_VARIANTS,
                 variant_names: tuple[str, ...] = ("full", "thumb", "white")) -> Path:
    """A config.toml under ``root`` with one folder set per name (root/<name>/inbox...);
    ``http`` and ``notify`` add those sections when given."""
    api_keys = {"base_url": base_url, "max_requests_per_minute": 6000,
                "connect_timeout_s": 2, "upload_timeout_s": 5, "process_timeout_s": 5,
                "download_timeout_s": 5, **(api or {})}
    daemon_keys = {"workers": 4, "state_dir": str(root / "state"), "stability_s": 0.2,
                   "shutdown_timeout_s": 10, **(daemon or {})}
    retry_keys = {"base_delay_s": 0.05, "max_delay_s": 0.5, "auth_pause_s": 1.0,
                  "credits_pause_s": 1.0, **(retry or {})}
    lines = [_table("api", api_keys), _table("daemon", daemon_keys), _table("retry", retry_keys),
             variants]
    lines += [_table(name, keys) for name, keys in (("http", http), ("notify", notify)) if keys]
    for name in folders:
        base = root / name
        (base / "inbox").mkdir(parents=True, exist_ok=True)  # an operator made the inbox
        keys = {"name": name, "inbox": str(base / "inbox"), "outbox": str(base / "outbox"),
                "quarantine": str(base / "quarantine"), "archive": str(base / "archive"),
                "variants": list(variant_names), **(folder or {})}
        lines.append(_table("[folders]", keys))
    path = root / "config.toml"
    path.write_text("\n".join(lines), "utf-8")
    return path


def _table(name: str, keys: dict[str, Any]) -> str:
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in keys.items())
    return f"[{name}]\n{body}\n"


def load_checked(path: Path) -> Config:
    """The configuration at ``path`` with its folders checked (and created) like ``run``."""
    return config_folders.load_checked(path)


class InProcessDaemon:
    """The real Service, run on a thread; ``stop()`` is a warm shutdown."""

    def __init__(self, config_path: Path, api_key: str = API_KEY,
                 mount_tables: MountTables = SYSTEM_TABLES) -> None:
        self.config = config_folders.load_checked(config_path, tables=mount_tables)
        self.service = Service(config_path, self.config, api_key, Notifier({}),
                               mount_tables=mount_tables)
        self._thread = threading.Thread(target=self._serve, daemon=True, name="test-daemon")
        self.error: BaseException | None = None

    def _serve(self) -> None:
        try:
            self.service.startup()
            self.service.main_loop()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
        finally:
            self.service.shutdown()

    def start(self) -> InProcessDaemon:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.service.should_exit = True
        self.service._wakeup.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "daemon thread did not stop"
        if self.error is not None:
            raise self.error

    def __enter__(self) -> InProcessDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DaemonProcess:
    """``python -m bgcut_watchd run -c CONFIG`` as a real subprocess.

    ``wrapper`` runs it under another command (e.g. :func:`pid_namespace_wrapper`); signals
    then go to the daemon itself, the wrapper's only child.
    """

    def __init__(self, config_path: Path, api_key: str = API_KEY,
                 env: dict[str, str] | None = None, log_path: Path | None = None,
                 wrapper: Sequence[str] = ()) -> None:
        self.config_path = config_path
        self.log_path = log_path or config_path.parent / "daemon.log"
        self.env = {**os.environ, "BGCUT_API_KEY": api_key, "PYTHONPATH": str(REPO),
                    **(env or {})}
        self.wrapper = list(wrapper)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.wrapper, sys.executable, "-m", "bgcut_watchd", "run", "-c",
             str(self.config_path)],
            env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 30) -> int:
        assert self.proc is not None
        self._signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def _signal(self, signum: int) -> None:
        assert self.proc is not None
        if not self.wrapper:
            self.proc.send_signal(signum)
            return
        os.kill(self._wrapped_pid(), signum)

    def _wrapped_pid(self) -> int:
        found: list[str] = []

        def started() -> bool:
            found[:] = _children_of(self.proc)
            return bool(found)

        wait_for(started, what="the wrapped daemon started")
        return int(found[0])

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _children_of(proc: subprocess.Popen[bytes] | None) -> list[str]:
    assert proc is not None
    try:
        return Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        return []


_PID_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc"]


def pid_namespace_wrapper() -> list[str] | None:
    """A command prefix that runs the daemon in its own PID namespace with its own ``/proc``,
    so it sees no other process of this host: like a daemon on another host than the writer
    of a shared folder. None where that is not possible (no ``unshare``, not privileged)."""
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run([*_PID_NAMESPACE, "true"], check=False, capture_output=True)
    return _PID_NAMESPACE if probe.returncode == 0 else None


def set_immutable(path: Path, immutable: bool) -> bool:
    """``chattr +i`` / ``-i``: an immutable file cannot be unlinked or renamed, even by root.
    False where the filesystem or the tools do not allow it."""
    if shutil.which("chattr") is None:
        return False
    flag = "+i" if immutable else "-i"
    return subprocess.run(["chattr", flag, str(path)], check=False,
                          capture_output=True).returncode == 0


def files_under(folder: Path) -> list[Path]:
    """Every regular file below ``folder`` (none if it does not exist), sorted.

    Safe while a daemon changes the tree: a folder that vanishes between being listed and
    being read is skipped (``os.walk`` ignores it), where ``Path.rglob`` raises.
    """
    found = (Path(top) / name for top, _, names in os.walk(folder) for name in names)
    return sorted(p for p in found if p.is_file())


def visible_files(folder: Path) -> list[Path]:
    """Files below ``folder`` whose path has no hidden component (what a person sees)."""
    return [p for p in files_under(folder)
            if not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def wait_for_log(daemon: DaemonProcess, text: str, timeout_s: float = 10.0) -> None:
    wait_for(lambda: text in daemon.log_text(), timeout_s, what=f"log line {text!r}")


# -- inputs, the work area, the archive and the quarantine --------------------------------------

def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def drop_images(inbox: Path, count: int, prefix: str = "pic") -> dict[str, str]:
    """``count`` distinct valid images in ``inbox``; returns {relative path: sha256}."""
    inbox.mkdir(parents=True, exist_ok=True)
    return {f"{prefix}-{n}.jpg": sha256_of(make_valid_jpeg(inbox, f"{prefix}-{n}.jpg"))
            for n in range(count)}


def journals(inbox: Path) -> list[dict[str, Any]]:
    """Every readable ``job.json`` of the inbox's work area (atomic writes: whole or absent)."""
    records = []
    for path in (inbox / WORK_DIR).glob("*/job.json"):
        try:
            records.append(json.loads(path.read_text("ascii")))
        except (OSError, ValueError):  # finished and removed while we looked
            continue
    return records


def states(inbox: Path) -> list[str]:
    """The journaled states of the inbox's unfinished jobs, sorted."""
    return sorted(record["state"] for record in journals(inbox))


def job_dirs(inbox: Path) -> list[Path]:
    work = inbox / WORK_DIR
    return sorted(p for p in work.iterdir() if p.is_dir()) if work.is_dir() else []


def describe_leftovers(inbox: Path, *logs: str) -> str:
    """What is still in ``inbox``: visible files, and each job dir with its files and journal;
    what the quarantine beside it (``write_config``'s layout) holds, with each reason; and the
    last lines of each of ``logs`` that name one of them."""
    lines = [f"visible: {[str(p.relative_to(inbox)) for p in visible_files(inbox)]}"]
    names = {p.name for p in visible_files(inbox)}
    for error_file in files_under(inbox.parent / "quarantine"):
        if error_file.name.endswith(".error.json"):
            names.add(error_file.name.removesuffix(".error.json"))
            lines.append(f"quarantined: {error_file.read_text('utf-8', 'replace')[:400]}")
    for job_dir in job_dirs(inbox):
        names.add(job_dir.name)
        try:  # the daemon may finish the job while we look
            files = sorted(p.name for p in job_dir.iterdir())
            journal = job_dir / "job.json"
            record = journal.read_text("utf-8")[:600] if journal.exists() else "(no journal)"
        except OSError as exc:
            files, record = [], f"(gone: {exc.strerror})"
        lines.append(f"job {job_dir.name}: {files} journal {record}")
    for log_text in logs:  # the last 40 lines of each log that name one of them
        lines += [line for line in log_text.splitlines() if any(n in line for n in names)][-40:]
    return "\n".join(lines)


def disposed_inputs(root: Path) -> list[Path]:
    """Inputs in the archive or the quarantine (error files left out)."""
    quarantine = files_under(root / "quarantine")
    return files_under(root / "archive") + [p for p in quarantine
                                            if not p.name.endswith(".error.json")]


def inputs_anywhere(root: Path) -> Counter[str]:
    """Hashes of every input in the inbox, the work area, the archive and the quarantine.
    For a stopped (or killed) daemon: a file moved while we hash it would be missed."""
    inbox = root / "inbox"
    work_inputs = [p for p in files_under(inbox / WORK_DIR) if p.name.startswith("input")]
    places = visible_files(inbox) + work_inputs + disposed_inputs(root)
    return Counter(sha256_of(p) for p in places)


# -- outputs ------------------------------------------------------------------------------------

def expected_outputs(relpaths: list[str]) -> list[str]:
    names: list[str] = []
    for relpath in relpaths:
        stem = relpath.rsplit(".", 1)[0]
        names.extend(f"{stem}.{suffix}" for suffix in VARIANT_SUFFIXES)
    return sorted(names)


def assert_outbox_complete_and_decodable(outbox: Path, relpaths: list[str]) -> None:
    assert [p for p in files_under(outbox) if p.name.endswith(".part")] == [], "temps left"
    visible = sorted(str(p.relative_to(outbox)) for p in visible_files(outbox))
    assert visible == expected_outputs(relpaths)  # one complete set per input, no -1 sets
    for path in visible_files(outbox):
        with Image.open(path) as image:
            image.load()  # raises on a truncated or partial file


def assert_no_partial_set_visible(outbox: Path) -> None:
    """Every visible output decodes and belongs to a complete set of three."""
    stems = Counter(p.name.split(".")[0] for p in visible_files(outbox))
    assert all(n == len(VARIANT_SUFFIXES) for n in stems.values()), stems
    published = sorted(f"{stem}.jpg" for stem in stems)
    assert_outbox_complete_and_decodable(outbox, published)


# -- the emulator's request log, per job --------------------------------------------------------

def all_requests(emulator: FakeApiServer, timeout_s: float = 15.0) -> list[RequestLogEntry]:
    """Every request the emulator received, once none is still being served: a call whose
    client gave up (a timeout, a daemon stopped) is logged only when the emulator answers it."""
    wait_for(lambda: emulator.requests_in_progress() == 0, timeout_s,
             what="the emulator to finish the requests it is serving")
    return emulator.requests()


def job_of(entry: RequestLogEntry) -> str | None:
    """The job id in a logged request's stored path (``<prefix>/<job id>/...``), if any."""
    parts = (entry.file_path or "").split("/")
    return parts[1] if len(parts) > 2 and parts[0] == UPLOAD_PREFIX else None


def api_calls_per_job(entries: list[RequestLogEntry]) -> dict[str, Counter[str]]:
    """Successful upload/process calls per job id."""
    calls: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in entries:
        job = job_of(entry)
        if job is not None and entry.status == 200 and entry.endpoint in ("upload", "process"):
            calls[job][entry.endpoint] += 1
    return calls


def calls_after_full_download(entries: list[RequestLogEntry]) -> list[str]:
    """Upload/process requests made for a job after all its outputs were downloaded once."""
    downloaded: dict[str, set[str]] = defaultdict(set)
    done: set[str] = set()
    late = []
    for entry in entries:
        job = job_of(entry)
        if job is None:
            continue
        if entry.endpoint in ("upload", "process") and job in done:
            late.append(f"{entry.endpoint} for job {job}")
        if entry.endpoint == "download" and entry.status == 200 and entry.file_path:
            downloaded[job].add(entry.file_path)
            if len(downloaded[job]) == len(VARIANT_SUFFIXES):
                done.add(job)
    return late


# -- a stream of distinct images ----------------------------------------------------------------

Maker = Callable[[Path, str, tuple[int, int]], Path]
MAKERS: tuple[tuple[Maker, str], ...] = (
    (make_valid_jpeg, "jpg"), (make_valid_png, "png"), (make_valid_webp, "webp"),
    (make_valid_avif, "avif"),
)


class InboxWriter:
    """Streams distinct valid images into an inbox from a thread, the way real senders do.

    Each file is made with a ``tests.hostile`` maker in a staging folder, hashed, then either
    written in place, renamed from a hidden name inside the inbox (ignored until renamed), or
    moved in from outside. Every fifth file goes to the ``batch/`` subfolder. ``pace_s`` bounds
    the random pause between two files.
    """

    MODES = ("write", "rename_hidden", "move_in")

    def __init__(self, inbox: Path, staging: Path, count: int, seed: int,
                 pace_s: float = 0.05) -> None:
        self.inbox, self.staging, self.count, self.pace_s = inbox, staging, count, pace_s
        self.hashes: dict[str, str] = {}  # relative path in the inbox -> sha256
        self.modes: Counter[str] = Counter()
        self.error: BaseException | None = None
        self._rng = random.Random(seed)
        self._pace = threading.Event()  # never set: its wait() paces the stream
        self._thread = threading.Thread(target=self._run, daemon=True, name="inbox-writer")

    def start(self) -> InboxWriter:
        self.staging.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        """True while files are still being written."""
        return self._thread.is_alive()

    def join(self, timeout_s: float = 30.0) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the writer did not finish"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            for index in range(self.count):
                self._write_one(index)
                self._pace.wait(self._rng.uniform(0.0, self.pace_s))  # sender pacing
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def _write_one(self, index: int) -> None:
        maker, ext = self._rng.choice(MAKERS)
        name = f"img-{index:03d}.{ext}"
        relpath = f"batch/{name}" if index % 5 == 4 else name
        size = (48 + index % 200, 40 + index // 200)  # distinct sizes: distinct hashes
        staged = maker(self.staging, name, size)
        self.hashes[relpath] = sha256_of(staged)
        target = self.inbox / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = self._rng.choice(self.MODES)
        self.modes[mode] += 1
        if mode == "write":
            target.write_bytes(staged.read_bytes())
            staged.unlink()
        elif mode == "rename_hidden":
            hidden = target.with_name(f".{name}.part")
            hidden.write_bytes(staged.read_bytes())
            staged.unlink()
            hidden.rename(target)
        else:
            staged.rename(target)


# -- kill -9 at random moments ------------------------------------------------------------------

def check_after_kill(root: Path, sources: dict[str, str]) -> int:
    """Nothing half-written is visible; returns how many visible output sets are incomplete.

    Every visible output decodes fully and every archived input is intact. A set can be
    incomplete only when the kill fell between the renames of one publication.
    """
    outbox = root / "outbox"
    sets: Counter[str] = Counter()
    for path in visible_files(outbox):
        with Image.open(path) as image:
            image.load()
        sets[str(path.relative_to(outbox)).split(".")[0]] += 1
    intact = set(sources.values())
    archived = {p: sha256_of(p) for p in files_under(root / "archive")}
    foreign = {str(p.relative_to(root)): (p.stat().st_size, digest[:12])
               for p, digest in archived.items() if digest not in intact}
    assert foreign == {}, f"archived files that are no input's bytes (size, sha256): {foreign}"
    return sum(1 for count in sets.values() if count != len(VARIANT_SUFFIXES))


def wait_for_kill_moment(rng: random.Random, inbox: Path, emulator: FakeApiServer,
                         scale: float = 1.0) -> str:
    """Wait for a random (seeded) moment; return what it was.

    Once some more API requests were logged, after a delay (measured with a deadline loop),
    or as soon as some job's journal newly shows a given state (not a state a dead daemon left
    behind); at worst until a short deadline. ``scale`` shortens (< 1) or lengthens every wait.
    """
    trigger = rng.choice(("requests", "delay", "state"))
    if trigger == "requests":
        target = len(emulator.requests()) + rng.randint(1, 25)
        poll_until(lambda: len(emulator.requests()) >= target, timeout_s=3.0 * scale)
    elif trigger == "delay":
        due = time.monotonic() + rng.uniform(0.2, 1.2) * scale
        poll_until(lambda: time.monotonic() >= due, timeout_s=5.0 * scale)
    else:
        trigger = rng.choice(KILL_STATES)
        left_behind = {(r["job_id"], r["state"]) for r in journals(inbox)}
        poll_until(lambda: any(r["state"] == trigger and (r["job_id"], trigger) not in left_behind
                               for r in journals(inbox)), timeout_s=1.5 * scale)
    return trigger


def kill_at_random_moments(config: Path, root: Path, emulator: FakeApiServer,
                           writer: InboxWriter, rng: random.Random, rounds: int,
                           scale: float = 1.0,
                           after_kill: Callable[[], None] | None = None) -> list[str]:
    """Start the daemon and SIGKILL it ``rounds`` times; describe each kill.

    The description names the moment, the request count, the journal states the dead daemon
    left behind and the incomplete output sets visible then. ``after_kill`` runs after each
    kill, with the daemon dead, to check more.
    """
    kills: list[str] = []
    for _ in range(rounds):
        daemon = DaemonProcess(config).start()
        try:
            trigger = wait_for_kill_moment(rng, root / "inbox", emulator, scale)
            assert daemon.proc is not None and daemon.proc.poll() is None, "daemon died by itself"
        finally:
            daemon.kill9()
        left = Counter(r["state"] for r in journals(root / "inbox"))
        partial = check_after_kill(root, dict(writer.hashes))
        if after_kill is not None:
            after_kill()
        kills.append(f"{trigger}@{len(emulator.requests())}:{dict(sorted(left.items()))}"
                     + (f" +{partial} incomplete set(s)" if partial else ""))
    return kills
