"""The status page as HTML: what a person needs at a glance, readable without JavaScript.

:func:`render_page` is the whole document; :func:`render_main` only its ``<main>``, which
``static/page.js`` fetches every few seconds to refresh the page in place. Every value is
escaped; forms carry the page's CSRF token; pictures come from ``/thumb/<job id>/in|out``.
No external asset: the daemon may have no internet access.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from bgcut_watchd.control.pause import PauseReason, budget_pause_line
from bgcut_watchd.daemon.web.listing import QuarantinedFile, QuarantineList
from bgcut_watchd.daemon.web.words import pause_words, reason_words

REFRESH_S = 5
NOTICES = {
    "requeued": "{n} file(s) moved back into their inbox.",
    "resumed": "API work resumed.",
    "not-paused": "API work was not paused.",
    "nothing": "Nothing to requeue.",
    "failed": "The requeue failed: see the daemon's log.",
}


@dataclass(frozen=True)
class FolderRow:
    name: str
    watch: str
    waiting: int
    in_progress: int
    done_today: int | None
    quarantined: int | None
    paused: str | None = None
    credits_today: float | None = None   # counted by the [budget] spend model; None: unread
    next_try: datetime | None = None     # a paused folder's next look at its disk
    credits_month: float | None = None


@dataclass(frozen=True)
class ApiPause:
    reason: str
    description: str
    detail: str
    next_try: datetime | None  # local time; None while a probe is running
    probing: bool = False


@dataclass(frozen=True)
class JobRow:
    job_id: str
    folder: str
    relpath: str
    outcome: str
    finished_at: datetime  # local time
    has_input: bool
    has_output: bool


@dataclass(frozen=True)
class PageData:
    host: str
    version: str
    now: datetime
    api_pause: ApiPause | None
    folders: Sequence[FolderRow]
    jobs: Sequence[JobRow]
    quarantine: Mapping[str, QuarantineList] = field(default_factory=dict)
    unhealthy: str | None = None  # why /healthz says 503 (a stuck job, a hung main loop)


def render_page(data: PageData, csrf: str, notice: str = "") -> str:
    """The whole document."""
    title = f"bgcut-watchd on {escape(data.host)}"
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{title}</title><link rel=\"stylesheet\" href=\"/static/page.css\">"
        f"<noscript><meta http-equiv=\"refresh\" content=\"{REFRESH_S * 6}\"></noscript>"
        f"<script src=\"/static/page.js\" defer></script></head>\n<body>"
        f"<header><h1>{title}</h1><span class=\"version\">{escape(data.version)}</span>"
        "</header>\n" + render_main(data, csrf, notice) + "\n</body></html>\n")


def render_main(data: PageData, csrf: str, notice: str = "") -> str:
    """The refreshable part: notice, API state, folders, last jobs, quarantine."""
    parts = [f"<main id=\"main\" data-refresh-s=\"{REFRESH_S}\">"]
    if notice:
        parts.append(f"<p class=\"notice\" role=\"status\">{escape(notice)}</p>")
    parts += [_api(data.api_pause, csrf, data.unhealthy), _folders(data.folders), _jobs(data.jobs),
              _quarantine(data.quarantine, csrf),
              f"<p class=\"updated\">Updated {data.now:%H:%M:%S}</p>", "</main>"]
    return "\n".join(parts)


def notice_text(code: str, count: str = "") -> str:
    """The sentence for a notice code of a redirect (unknown codes show nothing)."""
    template = NOTICES.get(code, "")
    return template.format(n=int(count) if count.isdigit() else 0)


def _form(action: str, csrf: str, label: str, fields: Mapping[str, str] | None = None,
          title: str = "") -> str:
    hidden = "".join(f"<input type=\"hidden\" name=\"{escape(k)}\" value=\"{escape(v)}\">"
                     for k, v in {"csrf": csrf, **(fields or {})}.items())
    tip = f" title=\"{escape(title)}\"" if title else ""
    return (f"<form method=\"post\" action=\"{action}\" class=\"inline\">{hidden}"
            f"<button type=\"submit\"{tip}>{escape(label)}</button></form>")


def _api(pause: ApiPause | None, csrf: str, unhealthy: str | None = None) -> str:
    health = ("" if unhealthy is None else "<p class=\"unhealthy\" role=\"alert\"><strong>Not "
              f"healthy:</strong> {escape(unhealthy)}.</p>")
    if pause is None:
        state = "" if unhealthy is not None else "<p class=\"ok\">Running.</p>"
        return f"<section id=\"api\"><h2>API</h2>{health}{state}</section>"
    when = ("a probe is running now" if pause.probing or pause.next_try is None
            else f"next try {pause.next_try:%H:%M:%S}")
    detail = f" <span class=\"detail\">({escape(pause.detail)})</span>" if pause.detail else ""
    return (f"<section id=\"api\"><h2>API</h2>{health}<p class=\"paused\"><strong>Paused:</strong> "
            f"{_why_and_when(pause, when, detail)}</p>"
            + _form("/resume", csrf, "Resume now",
                    title="End the pause now (after fixing the key or buying credits)")
            + "</section>")


def _why_and_when(pause: ApiPause, when: str, detail: str) -> str:
    """After "Paused:": the budget pause in the words of ``status`` and the status line
    (``control.pause.budget_pause_line``); any other in the page's own, with its detail."""
    if pause.reason == PauseReason.BUDGET.value and pause.next_try is not None:
        line = budget_pause_line(pause.detail, pause.next_try).removeprefix("paused: ")
        return f"{escape(line)}."
    return f"{escape(pause_words(pause.reason))}; {escape(when)}.{detail}"


def _folders(rows: Sequence[FolderRow]) -> str:
    head = ("<tr><th scope=\"col\">Folder</th><th scope=\"col\">Waiting</th>"
            "<th scope=\"col\">In progress</th><th scope=\"col\">Done today</th>"
            "<th scope=\"col\">Quarantined</th>"
            "<th scope=\"col\" title=\"estimated by the [budget] spend model\">Credits today"
            " / this month</th><th scope=\"col\">State</th></tr>")
    body = "".join(
        f"<tr data-folder=\"{escape(r.name)}\"><th scope=\"row\">{escape(r.name)}</th>"
        f"<td data-field=\"waiting\">{r.waiting}</td>"
        f"<td data-field=\"in_progress\">{r.in_progress}</td>"
        f"<td data-field=\"done_today\">{_count(r.done_today)}</td>"
        f"<td data-field=\"quarantined\">{_count(r.quarantined)}</td>"
        f"<td data-field=\"credits\">{_credits(r.credits_today)} / "
        f"{_credits(r.credits_month)}</td>"
        f"<td data-field=\"state\">{escape(_state(r))}</td></tr>" for r in rows)
    return (f"<section id=\"folders\"><h2>Folders</h2><table><thead>{head}</thead>"
            f"<tbody>{body}</tbody></table></section>")


def _state(row: FolderRow) -> str:
    if row.paused:
        when = "" if row.next_try is None else f", next try {row.next_try:%H:%M:%S}"
        return f"paused: {row.paused}{when}"
    return "watching" if row.watch != "stopped" else "not watched"


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _credits(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _jobs(jobs: Sequence[JobRow]) -> str:
    if not jobs:
        return "<section id=\"jobs\"><h2>Last jobs</h2><p>No job yet.</p></section>"
    rows = "".join(
        f"<tr data-job=\"{escape(j.job_id)}\" class=\"{escape(j.outcome)}\">"
        f"<td>{j.finished_at:%H:%M:%S}</td><td>{escape(j.folder)}</td>"
        f"<td class=\"file\">{_name(j.relpath)}</td><td>{escape(j.outcome)}</td>"
        f"<td>{_thumb(j, 'in', 'before')}</td><td>{_thumb(j, 'out', 'after')}</td></tr>"
        for j in jobs)
    head = ("<tr><th scope=\"col\">Time</th><th scope=\"col\">Folder</th>"
            "<th scope=\"col\">File</th><th scope=\"col\">Outcome</th>"
            "<th scope=\"col\">Before</th><th scope=\"col\">After</th></tr>")
    return (f"<section id=\"jobs\"><h2>Last jobs</h2><table><thead>{head}</thead>"
            f"<tbody>{rows}</tbody></table></section>")


def _thumb(job: JobRow, which: str, label: str) -> str:
    if not (job.has_input if which == "in" else job.has_output):
        return "<span class=\"nothumb\">-</span>"
    return (f"<img class=\"thumb\" src=\"/thumb/{escape(job.job_id)}/{which}\" "
            f"alt=\"{label}: {_name(job.relpath)}\" loading=\"lazy\">")


_CSRF_SLOT = "\x00csrf\x00"  # in a cached item, where the page's token goes


@functools.lru_cache(maxsize=1024)
def _quarantined_item(folder: str, f: QuarantinedFile) -> str:
    """One quarantined file's list item, the token left as ``_CSRF_SLOT`` (an open page asks
    every few seconds; the items change only when the quarantine does)."""
    return (f"<li data-file=\"{escape(f.key)}\"><span class=\"file\">{_name(f.relpath)}</span>: "
            f"<span class=\"reason\">{escape(reason_words(f.reason))}</span>"
            + (f" <span class=\"detail\">({escape(f.detail[:300])})</span>" if f.detail else "")
            + " " + _form("/requeue", _CSRF_SLOT, "Requeue", {"folder": folder, "file": f.key},
                          title="Move it back into the inbox, to be processed again")
            + "</li>")


def _name(relpath: str) -> str:
    """A path for people: undecodable bytes shown as \\xNN, escaped for HTML."""
    shown = os.fsencode(relpath).decode("utf-8", "backslashreplace")
    return escape(shown.replace("\n", "\\n"))


def _quarantine(lists: Mapping[str, QuarantineList], csrf: str) -> str:
    parts = ["<section id=\"quarantine\"><h2>Quarantine</h2>"]
    if not any(q.total for q in lists.values()):
        parts.append("<p>Nothing in quarantine.</p>")
    for folder, quarantined in lists.items():
        if quarantined.total:
            parts.append(_folder_quarantine(folder, quarantined, csrf))
    parts.append("</section>")
    return "".join(parts)


def _folder_quarantine(folder: str, quarantined: QuarantineList, csrf: str) -> str:
    rows = "".join(_quarantined_item(folder, f) for f in quarantined.files)
    rows = rows.replace(_CSRF_SLOT, escape(csrf))
    more = quarantined.total - len(quarantined.files)
    tail = f"<p>... and {more} more.</p>" if more > 0 else ""
    return (f"<div class=\"qfolder\" data-folder=\"{escape(folder)}\"><h3>{escape(folder)} "
            f"({quarantined.total})</h3>"
            + _form("/requeue", csrf, f"Requeue all {quarantined.total}",
                    {"folder": folder, "all": "1"})
            + f"<ul>{rows}</ul>{tail}</div>")
