"""``daemon.web.page``: what a person reads in the folders' table (the page as a whole is
tested in a real browser by ``test_status_page``)."""

from __future__ import annotations

import re
from datetime import datetime

from bgcut_watchd.daemon.web.page import FolderRow, PageData, render_page


def _cells(html: str, folder: str) -> dict[str, str]:
    row = re.search(rf'<tr data-folder="{folder}">(.*?)</tr>', html)
    assert row is not None, html
    return dict(re.findall(r'<td data-field="(\w+)">(.*?)</td>', row[1]))


def test_a_paused_folder_says_why_and_when_it_tries_again() -> None:
    rows = [FolderRow("studio", "inotify", 2, 1, 5, 0, paused="No space left on device",
                      credits_today=1.5, credits_month=12.25,
                      next_try=datetime(2026, 12, 2, 14, 5, 9).astimezone()),
            FolderRow("shop", "polling", 0, 0, None, None)]
    html = render_page(PageData(host="h", version="v", now=datetime.now().astimezone(),
                                api_pause=None, folders=rows, jobs=[]), csrf="t")
    studio = _cells(html, "studio")
    assert studio["state"] == "paused: No space left on device, next try 14:05:09"
    assert studio["credits"] == "1.50 / 12.25"
    assert (studio["waiting"], studio["in_progress"], studio["done_today"]) == ("2", "1", "5")
    shop = _cells(html, "shop")
    assert (shop["state"], shop["credits"], shop["done_today"]) == ("watching", "? / ?", "?")


def test_a_budget_pause_reads_as_in_status_and_the_status_line() -> None:
    """One wording (``control.pause``): status, the status line and the page."""
    from datetime import timedelta

    from bgcut_watchd.control.pause import PauseReason, PauseState
    from bgcut_watchd.daemon.web.page import ApiPause

    now = datetime(2026, 12, 2, 23, 58, 1).astimezone()
    ends = now + timedelta(seconds=118.5)  # 23:59:59.5: the pause ends at midnight
    detail = "daily budget of 5 credits reached"
    status = PauseState(paused=True, reason=PauseReason.BUDGET, detail=detail,
                        probe_in_s=118.5).describe(now)
    assert status == "paused: daily budget of 5 credits reached, resumes at 00:00"
    pause = ApiPause(reason="budget", description=PauseReason.BUDGET.description,
                     detail=detail, next_try=ends)
    html = render_page(PageData(host="h", version="v", now=now, api_pause=pause, folders=[],
                                jobs=[]), csrf="t")
    api = re.search(r'<section id="api">(.*?)<form', html, re.S)
    assert api is not None
    text = re.sub(r"<[^>]+>", "", api[1]).removeprefix("API")
    assert text == "Paused: daily budget of 5 credits reached, resumes at 00:00."
