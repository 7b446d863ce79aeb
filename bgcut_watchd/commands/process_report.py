"""What ``process`` tells when it is done: the summary for people, the ``--json`` document,
and where each input went (its outputs, or its quarantined place or error file), from the
ledger's record of each job."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bgcut_watchd.commands.process_inputs import Collected, Input, describe_skipped
from bgcut_watchd.fsops import show_path
from bgcut_watchd.ledger import JobEnd, Ledger


@dataclass(frozen=True)
class Result:
    """How one input ended: ``done``, ``up_to_date``, ``quarantined``, ``failed`` or
    ``unfinished``."""

    item: Input
    outcome: str
    detail: str = ""
    job_id: str | None = None
    outputs: tuple[str, ...] = ()  # known without the ledger (up to date)


def job_ends(ledger: Ledger, results: list[Result]) -> dict[str, JobEnd]:
    """How each job of this run ended, by job id, as the ledger recorded it."""
    ends: dict[str, JobEnd] = {}
    for result in results:
        if result.job_id is None:
            continue
        try:
            end = ledger.job_end(result.job_id)
        except sqlite3.Error:
            continue
        if end is not None:
            ends[result.job_id] = end
    return ends


def _where(result: Result, ends: dict[str, JobEnd]) -> tuple[list[str], str]:
    """(the files the input became, or its quarantined place or error file; the reason)."""
    if result.outputs:
        return list(result.outputs), ""
    end = ends.get(result.job_id or "")
    if end is None:
        return [], result.detail
    reason = f"{end.reason}: {end.last_error}" if end.reason else (end.last_error or "")
    return list(end.outputs), reason


def print_summary(collected: Collected, results: list[Result], ends: dict[str, JobEnd],
                   stopped: str | None) -> None:
    counts = Counter(r.outcome for r in results)
    failed = counts["failed"] + len(collected.refused)
    up_to_date = f", up to date: {counts['up_to_date']}" if counts["up_to_date"] else ""
    print(f"done: {counts['done']}, quarantined: {counts['quarantined']}, failed: {failed}, "
          f"unfinished: {counts['unfinished']}, ignored: {len(collected.ignored)}{up_to_date}")
    for title, outcome in (("done", "done"), ("up to date (outputs already there)",
                                               "up_to_date"),
                           ("quarantined (the reason is also in the .error.json)",
                            "quarantined")):
        lines = []
        for r in results:
            if r.outcome == outcome:
                where, reason = _where(r, ends)
                shown = ", ".join(show_path(p) for p in where) or "?"
                lines.append(f"{show_path(r.item.source)} -> {shown}"
                             + (f": {reason}" if reason else ""))
        _section(title, lines)
    failures = [f"{show_path(r.item.source)}: {r.detail}" for r in results
                if r.outcome == "failed"]
    _section("failed", failures + [describe_skipped(s) for s in collected.refused])
    _section("unfinished" + (f" ({stopped})" if stopped else ""), [
        f"{show_path(r.item.source)}: {r.detail}" for r in results if r.outcome == "unfinished"])
    _section("ignored", [describe_skipped(s) for s in collected.ignored])
    if any(r.item.copy for r in results):
        print("copied files: the originals were not moved, and no copy was kept in an archive "
              "or a quarantine (a failure's error file is beside its outputs)")


def document(collected: Collected, results: list[Result], ends: dict[str, JobEnd],
              stopped: str | None, ok: bool) -> dict[str, Any]:
    """The ``--json`` document (schema in the module docstring)."""
    items = []
    for r in results:
        where, reason = _where(r, ends)
        items.append({"input": os.fsdecode(r.item.source), "outcome": r.outcome,
                      "folder": r.item.folder.name, "copied": r.item.copy,
                      "where": where, "reason": reason or None, "job_id": r.job_id})
    return {"ok": ok, "stopped": stopped, "results": items,
            "failed": [{"path": os.fsdecode(s.path), "why": s.why} for s in collected.refused],
            "ignored": [{"path": os.fsdecode(s.path), "why": s.why} for s in collected.ignored]}


def _section(title: str, lines: list[str]) -> None:
    if lines:
        print(f"{title}:")
        for line in lines:
            print(f"  {line}")
