"""``bgcut-watchd process``: the daemon's pipeline run once over the files and folders given.

SAFETY: a file inside the folder's inbox is claimed by rename exactly like the daemon does, and
ends in the archive (or is deleted, ``on_success``) or in the quarantine. A file anywhere else
(and, with ``--output DIR``, every file) is NEVER moved or deleted: a copy is claimed into the
inbox's work area as a *detached* job (same journal and lock); its outputs go to the outbox (or
DIR), mirroring its subfolder below the folder given; the copy is deleted when done and, on a
failure, its ``.error.json`` goes beside where the outputs would have been. No copy ever enters
a live folder's archive or quarantine. Only the chosen folder's outbox, archive and quarantine
are created when missing (no other folder's), and with ``--output DIR`` none at all: DIR and the
job history (``state_dir``) are all a run writes, and its work area is ``DIR/.bgcut-work``
(removed when empty), never the live inbox's, so the daemon never sees its jobs (one left
unfinished there is resumed by nothing: remove it and run the command again). A copy whose
outputs already exist with the recorded bytes is "up to date": nothing is paid again. See
``commands.process_inputs`` for how each PATH finds its folder (``--folder`` is required when
several folders are configured).

``--json`` prints ``{"ok", "stopped" (why it stopped early, or null), "results": [{"input",
"outcome" (done, up_to_date, quarantined, failed, unfinished), "folder", "copied", "where" (the
outputs, or the quarantined input or error file), "reason", "job_id"}], "failed": [{"path",
"why"}], "ignored": [{"path", "why"}]}``.

Inputs are claimed just in time (a few more than there are workers), so Ctrl-C (or SIGTERM)
leaves the rest untouched: it stops like the daemon (running jobs get ``shutdown_timeout_s``; a
second signal stops waiting) and whatever was claimed and unfinished stays resumable in the work
area (the daemon resumes it at its next start). A 401/402, or a folder paused for a disk error,
stops the run the same way instead of waiting: a one-shot does not sit out ``auth_pause_s``.

Exit 0 when every input ended done (or up to date); 1 when any was quarantined, failed or left
unfinished; 2 for a usage error (an unknown folder, or none named when several exist).

Over 300 lines on purpose: the feeding loop, the signal handling and the summary are one
command's story, read top to bottom; its input collection is already apart (``process_inputs``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from signal import SIGINT, SIGTERM
from types import FrameType
from typing import Never

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from bgcut_watchd.commands.common import load, print_warnings
from bgcut_watchd.commands.process_inputs import Input, collect_inputs
from bgcut_watchd.commands.process_report import Result, document, job_ends, print_summary
from bgcut_watchd.config.folders import check_folders
from bgcut_watchd.config.model import Config, FolderConfig, variant_key
from bgcut_watchd.config.secrets import load_api_key
from bgcut_watchd.control.pause import PauseReason
from bgcut_watchd.control.tickets import JobTicket, Outcome, OutcomeKind
from bgcut_watchd.daemon.logsetup import add_redaction
from bgcut_watchd.daemon.wakeup import Wakeup
from bgcut_watchd.engine import Engine
from bgcut_watchd.errors import ConfigError, UsageError
from bgcut_watchd.exitcodes import EXIT_FAILURE, EXIT_OK
from bgcut_watchd.fsops import make_dirs, sha256_of_regular_file, show_path
from bgcut_watchd.job.duplicates import intact_earlier_outputs
from bgcut_watchd.job.naming import output_names, relative_subfolder, split_name
from bgcut_watchd.job.workarea import WORK_DIR_NAME, ClaimedJob
from bgcut_watchd.ledger import JobEnd

log = logging.getLogger("bgcut_watchd.process")

WAIT_TICK_S = 0.2   # the feeding loop looks at pauses this often while it waits
EXTRA_CLAIMS = 2    # inputs claimed ahead of the free workers
_FINAL = {OutcomeKind.DONE: "done", OutcomeKind.QUARANTINED: "quarantined",
          OutcomeKind.SKIPPED: "failed"}


class _Run:
    """What the feeding thread and the workers' callbacks share; every access under ``lock``."""

    def __init__(self, bar: tqdm[Never]) -> None:
        self.lock = threading.Lock()
        self.changed = Wakeup()  # rung by workers and signal handlers: no lock (daemon.wakeup)
        self.jobs: dict[str, Input] = {}  # claimed, not finished: job id -> input
        self.results: list[Result] = []
        self.bar = bar

    def ticket_done(self, ticket: JobTicket, outcome: Outcome) -> None:
        """Engine's ``on_ticket_done`` (a worker thread): record final outcomes only."""
        if outcome.kind not in _FINAL or ticket.job_id is None:
            return  # a retry or a pause: the job goes on
        with self.lock:
            item = self.jobs.pop(ticket.job_id, None)
            if item is not None:
                detail = "skipped by the pipeline" if outcome.kind is OutcomeKind.SKIPPED else ""
                self._add(Result(item, _FINAL[outcome.kind], detail, ticket.job_id))
        self.changed.set()

    def adopt(self, job: ClaimedJob) -> None:
        """Engine's ``on_job_spawned``: a page of a multi-page input of this run is a job of
        its own now; it counts as one more result of the same input."""
        with self.lock:
            parent = next((item for item in self.jobs.values()
                           if item.folder.name == job.record.folder
                           and item.relpath == job.record.page_of), None)
            if parent is not None:
                self.jobs[job.job_id] = parent
                self.bar.total = (self.bar.total or 0) + 1
        self.changed.set()

    def finish(self, item: Input, outcome: str, detail: str, job_id: str | None = None,
               outputs: list[str] | None = None) -> None:
        with self.lock:
            if job_id is not None:
                self.jobs.pop(job_id, None)
            self._add(Result(item, outcome, detail, job_id, tuple(outputs or ())))

    def outstanding(self) -> int:
        with self.lock:
            return len(self.jobs)

    def _add(self, result: Result) -> None:
        self.results.append(result)
        self.bar.update(1)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every input ended done, 1 otherwise, 2 for an unknown folder. Raises
    ConfigError (exit 78: a bad configuration or no API key)."""
    config = load(args, make=False)  # only the chosen folder's are made, once it is known
    api_key = load_api_key(config.api)
    for handler in logging.getLogger().handlers:
        add_redaction(handler, api_key)
    print_warnings(config)
    return process_paths(config, api_key, args.folder, list(args.paths),
                         progress=not args.no_progress and not args.json,
                         output_dir=args.output, as_json=args.json)


def process_paths(config: Config, api_key: str, folder_name: str | None, paths: list[Path],
                  *, progress: bool, output_dir: Path | None = None,
                  as_json: bool = False) -> int:
    """Run every input of ``paths`` to its end; print a summary (or the JSON document); the
    exit code. Raises UsageError (exit 2: an unknown folder, none chosen among several, an
    unusable ``output_dir``), ConfigError (a folder cannot be created)."""
    if output_dir is not None:
        output_dir = output_dir.absolute()
    try:
        collected = collect_inputs(config, folder_name, paths, output_dir)
        if output_dir is not None:
            make_dirs(output_dir)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    if collected.inputs:
        config = _engine_config(config, collected.inputs[0].folder, output_dir)
    show_bar = progress and sys.stderr.isatty()
    bar: tqdm[Never] = tqdm(total=len(collected.inputs), file=sys.stderr, unit="file",
                           desc="process", disable=not show_bar)
    run = _Run(bar)
    redirect = logging_redirect_tqdm() if show_bar else contextlib.nullcontext()
    with bar, redirect:
        try:
            stopped, ends = _run_engine(config, api_key, collected.inputs, run)
        finally:
            run.changed.close()
    ok = (all(r.outcome in ("done", "up_to_date") for r in run.results)
          and not collected.refused and stopped is None)
    if as_json:
        print(json.dumps(document(collected, run.results, ends, stopped, ok), indent=2))
    else:
        print_summary(collected, run.results, ends, stopped)
    return EXIT_OK if ok else EXIT_FAILURE


def _engine_config(config: Config, folder: FolderConfig, output_dir: Path | None) -> Config:
    """The configuration the one-shot's engine runs: the chosen folder alone, its missing
    outbox, archive and quarantine created (no other folder's); with ``output_dir``, nothing
    created and its work area moved to ``output_dir`` (every input is a copy there, whose
    outputs and error files go to ``output_dir``: the folder's outbox, archive and quarantine
    are never used). Raises ConfigError when a folder cannot be created."""
    if output_dir is not None:
        folder = dataclasses.replace(folder, inbox=output_dir, outbox=output_dir)
        return dataclasses.replace(config, folders=(folder,))
    alone = dataclasses.replace(config, folders=(folder,))
    problems, _ = check_folders(alone, make=True)
    if problems:
        raise ConfigError(problems)
    return alone


class _Signals:
    """SIGINT/SIGTERM only set a flag, as in the daemon: the loop notices. Two: stop waiting."""

    def __init__(self, wake: Wakeup) -> None:
        self.count = 0
        self.last = ""
        self.wake = wake

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.last = signal.Signals(signum).name
        self.wake.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle the signals inside the ``with`` (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle) for sig in (SIGINT, SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _run_engine(config: Config, api_key: str, inputs: list[Input],
                run: _Run) -> tuple[str | None, dict[str, JobEnd]]:
    """Feed ``inputs`` to a fresh engine; (why it stopped early or None, ends by job id)."""
    if not inputs:
        return None, {}
    engine = Engine(config, api_key, cancel=threading.Event(), on_ticket_done=run.ticket_done,
                    on_job_spawned=run.adopt)
    feed = deque(inputs)
    signals = _Signals(run.changed)
    with signals.installed():
        engine.start()
        try:
            stopped = _drive(engine, feed, run, signals, config.daemon.workers + EXTRA_CLAIMS)
            _stop(engine, config.daemon.shutdown_timeout_s, signals, stopped)
            _leave(run, feed)
            return stopped, job_ends(engine.ledger, run.results)
        finally:
            engine.close()
            _remove_empty_work_area(inputs[0].output_dir)


def _drive(engine: Engine, feed: deque[Input], run: _Run, signals: _Signals,
           window: int) -> str | None:
    """Claim and submit as workers free up until every input ended; why it stopped, or None."""
    while True:
        while feed and run.outstanding() < window and not signals.count:
            _submit(engine, feed.popleft(), run)
        idle = engine.scheduler.is_idle()  # read before the jobs: every callback has run then
        with run.lock:
            left = dict(run.jobs)
        if not feed and not left:
            return None
        if idle and left:  # run_job raised (logged by the scheduler): the ticket was dropped
            for job_id, item in left.items():
                run.finish(item, "unfinished", _left_note(item), job_id)
            continue
        why = f"interrupted ({signals.last})" if signals.count else _stop_reason(engine)
        if why is not None:
            return why
        run.changed.wait(WAIT_TICK_S)
        run.changed.clear()


def _submit(engine: Engine, item: Input, run: _Run) -> None:
    """Claim ``item`` (rename or copy) and queue its job; a failure is recorded, not raised.
    A copy whose outputs are already where this run would put them, with the recorded bytes,
    is up to date: nothing is claimed or paid (running ``process`` twice makes no -1 set)."""
    done_before = _up_to_date(engine, item)
    if done_before is not None:
        run.finish(item, "up_to_date", "", outputs=done_before)
        return
    try:
        job = engine.claim(item.folder.name, item.source,
                           copy_as=item.relpath if item.copy else None,
                           output_dir=item.output_dir)
    except (OSError, ValueError) as exc:
        run.finish(item, "failed", f"cannot claim it: {exc}")
        return
    if job is None:
        run.finish(item, "failed", "gone, or taken by another process (a running daemon?)")
        return
    with run.lock:
        run.jobs[job.job_id] = item
    if not engine.submit_claimed(job):
        run.finish(item, "unfinished", _left_note(item), job.job_id)


def _stop_reason(engine: Engine) -> str | None:
    """Why waiting is pointless: the account or key is refused, or a folder's disk failed.
    An unreachable service is waited for, as the daemon does: it comes back by itself."""
    state = engine.api_pause.state()
    if state.paused and state.reason is not None and state.reason is not PauseReason.UNREACHABLE:
        detail = f": {state.detail}" if state.detail else ""
        return f"API work paused, {state.reason.description}{detail}"
    for folder, pause in engine.folder_pauses.snapshot().items():
        return f"folder {folder} paused: {pause.detail}"
    return None


def _stop(engine: Engine, timeout_s: float, signals: _Signals, why: str | None) -> None:
    """Stop like the daemon: running jobs get ``timeout_s`` (a second signal: no more)."""
    if why is not None:
        print(f"process: stopping: {why}", file=sys.stderr)
    if why is not None and not signals.count:
        engine.cancel.set()  # a pause: jobs waiting at the closed gate give up now
    patience = 1 if signals.count else 0  # signals taken before the next one ends the wait
    engine.drain(timeout_s, signals.wake, lambda: signals.count > patience, time.monotonic)


def _leave(run: _Run, feed: deque[Input]) -> None:
    """Record what stopping left: claimed jobs stay resumable, the rest untouched."""
    with run.lock:
        left = dict(run.jobs)
    for job_id, item in left.items():
        run.finish(item, "unfinished", _left_note(item), job_id)
    while feed:
        run.finish(feed.popleft(), "unfinished", "not started: left untouched")


def _remove_empty_work_area(output_dir: Path | None) -> None:
    """``--output``'s work area (``DIR/.bgcut-work``, see ``_engine_config``) once no job is
    left in it."""
    if output_dir is not None:
        with contextlib.suppress(OSError):
            (output_dir / WORK_DIR_NAME).rmdir()


def _left_note(item: Input) -> str:
    if item.output_dir is not None:
        return (f"left in {show_path(item.output_dir / WORK_DIR_NAME)}, which nothing resumes: "
                "remove it and run the command again")
    return (f"left in {show_path(item.folder.inbox / WORK_DIR_NAME)}; the daemon resumes it at "
            "its next start")


def _up_to_date(engine: Engine, item: Input) -> list[str] | None:
    """The outputs a copy would get, when they already exist with the bytes the ledger
    recorded for this content and variant set; else None. Raises nothing."""
    folder = item.folder
    if not item.copy or folder.reprocess_duplicates:
        return None
    out_dir = _out_dir(item)
    stem, _ = split_name(Path(item.relpath).name)
    wanted = {os.fsdecode(out_dir / name) for name in
              output_names(folder.output_name, stem, folder.variants, folder.name)}
    if not all(os.path.lexists(path) for path in wanted):
        return None  # the usual case, found without reading the input
    sha256 = sha256_of_regular_file(item.source)
    if sha256 is None:
        return None
    try:
        earlier = intact_earlier_outputs(engine.ledger, sha256, variant_key(folder.variants),
                                         len(folder.variants))
    except sqlite3.Error:
        return None
    if earlier is None or {os.fsdecode(p) for p in earlier} != wanted:
        return None
    return sorted(wanted)


def _out_dir(item: Input) -> Path:
    root = item.output_dir or item.folder.outbox
    return root / relative_subfolder(item.folder.inbox, item.relpath)
