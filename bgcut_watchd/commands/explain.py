"""``bgcut-watchd explain PATH [--json]``: what the daemon would do with one path, without doing it.

No API call, no file moved, nothing written (the ledger is read only if it already exists). In
order: whether PATH is already a result (in an outbox, archive or quarantine: never taken from
there), which folder's inbox holds it, the ignore rule that hides it (or that it is camera RAW,
left alone with ``raw_files = "ignore"``), the local check (format, size, sha256, or the
quarantine reason it would get), the normalisation (``HEIC → PNG, rotated 90°, Display P3 →
sRGB, 3 pages → 3 jobs``, or byte for byte), whether the ledger knows the same content with
the same variants (the outputs would be copied, no API call), the remote calls (one upload, one
process call with every variant's fields, one download per output), the output names (every
page's) against the outbox as it is now, and where the input goes afterwards.
What each render mode (``api`` or ``local``) would request and cost is said too
(``explain_cost``).

Exit codes: 0 the daemon would process PATH; 1 it would not (ignored, not a file, rejected by
the local check and so quarantined, in no inbox, or already in an outbox, archive or
quarantine); 2 usage error; 78 configuration error. A path in no inbox is never seen by the
daemon; the plan ``process`` would follow for it (a copy, the original untouched) is shown all
the same, with the folder ``--folder`` would have to name.

Over 300 lines on purpose: one dry run, read top to bottom in the order the daemon works.

``--json`` prints one object: ``{"path", "folder" (name or null), "relpath", "verdict",
"exit_code", "steps": [{"step", "text"}...]}`` where ``verdict`` is one of ``process``,
``ignored``, ``not_taken``, ``quarantine``, ``outside_inboxes``, ``already_output``,
``already_archived``, ``already_quarantined``, and ``steps`` are the lines of the text output.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from bgcut_watchd.api import safe_upload_name, variant_body
from bgcut_watchd.commands.common import absolute_path, folder_holding, inbox_relpath, load
from bgcut_watchd.commands.explain_cost import cost_lines, plan_words, predicted
from bgcut_watchd.config.model import Config, FolderConfig, variant_key
from bgcut_watchd.errors import ConfigError, LocalInputError
from bgcut_watchd.exitcodes import EXIT_FAILURE, EXIT_OK
from bgcut_watchd.fsops import show_path
from bgcut_watchd.intake.ignore import IgnoreRules
from bgcut_watchd.intake.scan import is_candidate
from bgcut_watchd.intake.sniff import sniff_camera_raw
from bgcut_watchd.job.duplicates import intact_earlier_outputs
from bgcut_watchd.job.naming import (
    choose_output_set,
    free_name,
    output_names,
    output_stem,
    page_relpath,
    relative_subfolder,
    remote_upload_path,
)
from bgcut_watchd.job.quarantine import ERROR_SUFFIX
from bgcut_watchd.job.render import requested_outputs
from bgcut_watchd.job.validate import ValidatedInput, validate_input
from bgcut_watchd.ledger import LEDGER_NAME, Ledger

JOB_ID = "<job id>"
_WIDTH = 13


@dataclass
class Report:
    """The explanation, line by line; printed as text or as one JSON object."""

    path: Path
    folder: str | None = None
    relpath: str | None = None
    verdict: str = "process"
    steps: list[tuple[str, str]] = field(default_factory=list)

    def say(self, step: str, text: str) -> None:
        self.steps.append((step, text))

    def end(self, verdict: str) -> int:
        """Record why the daemon would not process the path; the exit code (1)."""
        self.verdict = verdict
        return EXIT_FAILURE

    def text(self) -> str:
        return "\n".join(f"{step + ':':<{_WIDTH}}{text}" if step else f"  {text}"
                         for step, text in self.steps)

    def document(self, exit_code: int) -> dict[str, Any]:
        return {"path": os.fsdecode(self.path), "folder": self.folder, "relpath": self.relpath,
                "verdict": self.verdict, "exit_code": exit_code,
                "steps": [{"step": step, "text": text} for step, text in self.steps]}


def run(args: argparse.Namespace) -> int:
    """Print the dry run for PATH; the exit codes above. Raises ConfigError (exit 78)."""
    report = Report(absolute_path(args.path))
    code = explain_path(load(args, create_folders=False), report)
    print(json.dumps(report.document(code), indent=2) if args.json else report.text())
    return code


def explain_path(config: Config, report: Report) -> int:
    """Fill ``report`` for its path; 0 when the daemon would process it, else 1."""
    path = report.path
    report.say("path", show_path(path))
    if _already_a_result(config, report):
        return EXIT_FAILURE
    held = folder_holding(config, path)
    if held is None:
        return _outside_inboxes(config, report)
    folder, relpath = held
    report.folder, report.relpath = folder.name, os.fsdecode(relpath)
    report.say("folder", f"{folder.name} (inbox {show_path(folder.inbox)}), as "
                         f"{show_path(relpath)}")
    if not _taken_from_inbox(folder, relpath, report) or not _candidate(path, report):
        return EXIT_FAILURE
    return _plan(config, folder, path, os.fsdecode(relpath), report, copy=False)


def _already_a_result(config: Config, report: Report) -> bool:
    """True (said so) when the path lies in an outbox, archive or quarantine."""
    for folder in config.folders:
        for verdict, root, what in (
                ("already_quarantined", folder.quarantine, "quarantine"),
                ("already_output", folder.outbox, "outbox"),
                ("already_archived", folder.archive, "archive")):
            if root is None or inbox_relpath(root, report.path) is None:
                continue
            report.folder = folder.name
            report.say("folder", f"{folder.name}: in its {what} ({show_path(root)}): the daemon "
                                 "never takes files from there")
            if verdict == "already_quarantined":
                _quarantined(report)
            report.end(verdict)
            return True
    return False


def _quarantined(report: Report) -> None:
    """The reason of a quarantined input, and how to try it again."""
    path = report.path
    input_path = path.with_name(path.name[:-len(ERROR_SUFFIX)]) if path.name.endswith(
        ERROR_SUFFIX) else path
    try:
        error = json.loads(input_path.with_name(input_path.name + ERROR_SUFFIX).read_text())
        report.say("quarantined", f"{error.get('reason')} at {error.get('stage')}: "
                                  f"{error.get('detail')}")
    except (OSError, ValueError):
        report.say("quarantined", "no readable error file beside it")
    report.say("try again", f"bgcut-watchd requeue {show_path(input_path)} (after fixing the "
                            "cause): it goes back to its inbox")


def _outside_inboxes(config: Config, report: Report) -> int:
    names = ", ".join(f.name for f in config.folders)
    how = ("`process PATH`" if len(config.folders) == 1
           else f"`process --folder NAME PATH` (NAME one of {names})")
    report.say("folder", "none: in no folder's inbox, the daemon never sees it; "
                         f"{how} would copy it and leave the original where it is")
    path = report.path
    if path.is_symlink():
        path = Path(os.path.realpath(path))  # process follows a link named on its command line
    if len(config.folders) == 1 and _candidate(path, report):
        _plan(config, config.folders[0], path, path.name, report, copy=True)
    return report.end("outside_inboxes")


def _taken_from_inbox(folder: FolderConfig, relpath: PurePath, report: Report) -> bool:
    """False (said why) when the daemon would leave this path of the inbox alone."""
    if not relpath.parts:
        report.say("not taken", "this is the inbox itself; explain one file in it")
        report.end("not_taken")
        return False
    rule = IgnoreRules(folder.ignore).is_ignored(relpath)
    if rule is not None:
        report.say("ignored", f"yes, by the {rule}: the daemon leaves it alone, untouched")
        report.end("ignored")
        return False
    if not folder.recursive and len(relpath.parts) > 1:
        report.say("not taken", "in a subfolder and the folder has recursive = false")
        report.end("not_taken")
        return False
    report.say("ignored", "no")
    return True


def _candidate(path: Path, report: Report) -> bool:
    """False (said why) when there is no file to take at ``path``."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        report.say("not taken", f"cannot look at it: {exc.strerror or exc}")
        report.end("not_taken")
        return False
    if not is_candidate(path.name, mode):
        what = "a folder: its files are taken one by one" if path.is_dir() else (
            "not a regular file, and not named like an image")
        report.say("not taken", what)
        report.end("not_taken")
        return False
    return True


def _plan(config: Config, folder: FolderConfig, path: Path, relpath: str, report: Report, *,
          copy: bool) -> int:
    """The local check and, if it passes, the calls, the outputs and the disposal."""
    sub = relative_subfolder(folder.inbox, relpath)
    name = PurePath(relpath).name
    if _raw_left_alone(folder, path, report):
        return report.end("ignored")
    try:
        checked = validate_input(path, max_bytes=config.daemon.max_input_bytes,
                                 max_pixels=config.daemon.max_input_pixels)
    except LocalInputError as exc:
        report.say("local check", f"rejected: {exc.reason}: {exc.detail}")
        where = folder.quarantine / sub / name
        report.say("afterwards", f"quarantined, no API call: {show_path(where)} beside "
                                 f"{name}{ERROR_SUFFIX}")
        return report.end("quarantine")
    report.say("local check", f"OK: {checked.format} {checked.width}x{checked.height}, "
                              f"{checked.size_bytes} bytes, sha256 {checked.sha256}")
    try:
        upload = predicted(config, folder, path, checked)
    except LocalInputError as exc:
        report.say("normalise", plan_words(folder, checked))
        report.say("upload", f"rejected: {exc.reason}: {exc.detail}")
        report.say("afterwards", f"quarantined at the upload step, no API call: "
                                 f"{show_path(folder.quarantine / sub / name)}")
        return report.end("quarantine")
    report.say("normalise", upload.normalise_text())
    if not _duplicate(config, folder, checked, report):
        _remote_calls(config, folder, upload.sent_name(name), report, checked.pages)
        for step, text in cost_lines(config, folder, checked, upload):
            report.say(step, text)
    _outputs(folder, sub, name, report, checked.pages)
    _afterwards(folder, sub, name, report, copy=copy)
    return EXIT_OK


def _duplicate(config: Config, folder: FolderConfig, checked: ValidatedInput,
               report: Report) -> bool:
    """True (said so) when the runner would copy earlier outputs instead of calling the API."""
    if folder.reprocess_duplicates:
        report.say("duplicate", "not looked for (reprocess_duplicates = true)")
        return False
    state_dir = config.daemon.state_dir
    if not (state_dir / LEDGER_NAME).exists():
        report.say("duplicate", "no (no ledger yet)")
        return False
    try:
        with Ledger(state_dir) as ledger:
            earlier = intact_earlier_outputs(ledger, checked.sha256,
                                             variant_key(folder.variants), len(folder.variants))
    except (OSError, sqlite3.Error, ConfigError) as exc:
        report.say("duplicate", f"unknown, the ledger cannot be read: {exc}")
        return False
    if earlier is None:
        report.say("duplicate", "no")
        return False
    report.say("duplicate", "yes: same content, same variants; these outputs would be copied, "
                            "no API call:")
    for earlier_path in earlier:
        report.say("", show_path(earlier_path))
    return True


def _remote_calls(config: Config, folder: FolderConfig, name: str, report: Report,
                  pages: int) -> None:
    prefix = remote_upload_path(config.api.upload_prefix, JOB_ID)
    requested, outputs = requested_outputs(folder.render, config.api.upload_prefix, JOB_ID,
                                           folder.variants)
    count = len(requested)
    per_page = f" per page, {pages} pages: {pages * (count + 2)} in all" if pages > 1 else ""
    report.say("remote calls", f"{count + 2}{per_page} ({config.api.base_url})")
    report.say("", f"1. upload to {json.dumps(prefix)} as {json.dumps(safe_upload_name(name))}")
    report.say("", f"2. process, one call with {count} variant(s):")
    for variant, output in zip(requested, outputs, strict=True):
        report.say("", f"   {variant.name}: {json.dumps(variant_body(variant, output))}")
    report.say("", f"3. download, {count} call(s): one per output")
    if folder.render == "local":
        report.say("", f"4. every variant ({len(folder.variants)}) rendered here from the "
                       "master (render = \"local\")")


def _raw_left_alone(folder: FolderConfig, path: Path, report: Report) -> bool:
    """True (said so) when ``path`` is camera RAW and the folder leaves RAW in the inbox."""
    if folder.raw_files != "ignore":
        return False
    try:
        kind = sniff_camera_raw(path)
    except OSError:
        return False
    if kind is not None:
        report.say("ignored", f"camera RAW ({kind}): left in the inbox, untouched, never "
                              'uploaded (raw_files = "ignore"; "quarantine" would move it)')
    return kind is not None


def _outputs(folder: FolderConfig, sub: Path, name: str, report: Report, pages: int) -> None:
    out_dir = folder.outbox / sub
    report.say("outputs", f"in {show_path(out_dir)} (on_conflict = {folder.on_conflict}, "
                          "names as the outbox is now)")
    for page in range(1, pages + 1):
        stem, tail = output_stem(name, pages=pages) if page == 1 else output_stem(
            page_relpath(name, page, "png"), page=page, page_of=name)
        finals = choose_output_set(
            out_dir, lambda s: output_names(folder.output_name, s, folder.variants, folder.name),
            stem, folder.on_conflict, tail)
        for variant, final in zip(folder.variants, finals, strict=True):
            report.say("", f"{variant.name}: {show_path(final.name)}")


def _afterwards(folder: FolderConfig, sub: Path, name: str, report: Report, *,
                copy: bool) -> None:
    if copy:
        report.say("afterwards", "the copy is removed; the original stays where it is")
        return
    if folder.on_success == "delete" or folder.archive is None:
        report.say("afterwards", "the input is deleted (on_success = delete)")
        return
    target = free_name(folder.archive / sub, name)
    report.say("afterwards", f"the input moves to {show_path(target)}")
