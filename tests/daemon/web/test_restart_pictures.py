"""The last jobs' pictures after a restart, when the page rebuilds its list from the ledger:
a done job shows its archived input as "Before" and its first output as "After"; a quarantined
one shows the quarantined input as "Before" and no "After"."""

from __future__ import annotations

import io
import re
from pathlib import Path

import requests
from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, files_under, wait_for, write_config

ROW = re.compile(r'<tr data-job="([^"]+)" class="(\w+)">(.*?)</tr>', re.S)


def _columns(url: str) -> dict[str, tuple[str, bool, bool]]:
    """Per job id: (outcome, a Before picture, an After picture) as the page shows them."""
    html = requests.get(url + "?part=main", timeout=10).text
    return {job: (outcome, f"/thumb/{job}/in" in row, f"/thumb/{job}/out" in row)
            for job, outcome, row in ROW.findall(html)}


def _decodes(url: str) -> bool:
    answer = requests.get(url, timeout=10)
    return answer.status_code == 200 and Image.open(io.BytesIO(answer.content)).size > (0, 0)


def test_pictures_sit_in_the_right_column_after_a_restart(tmp_path: Path,
                                                          emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, http={"listen": "127.0.0.1:0"},
                          daemon={"max_input_bytes": 10_000})
    inbox = tmp_path / "studio" / "inbox"
    make_valid_jpeg(inbox, "top.jpg")
    (inbox / "sub").mkdir(parents=True)
    make_valid_jpeg(inbox / "sub", "deep.jpg")
    make_valid_jpeg(inbox, "too big.jpg", (900, 700))  # quarantined, and has a picture
    with InProcessDaemon(config) as daemon:
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2
                 and len(files_under(tmp_path / "studio" / "quarantine")) == 2, 30,
                 what="two inputs archived, one quarantined")
        url = daemon.service.monitor.url
        assert url is not None
        wait_for(lambda: len(_columns(url)) == 3, what="three jobs on the page")
        before_restart = _columns(url)
    with InProcessDaemon(config) as daemon:
        wait_for(lambda: daemon.service.monitor.url, what="the listener")
        url = daemon.service.monitor.url
        assert url is not None
        after_restart = _columns(url)
        outcomes = sorted(outcome for outcome, _, _ in after_restart.values())
        assert outcomes == ["done", "done", "quarantined"]
        for job, (outcome, before, after) in after_restart.items():
            assert (before, after) == ((True, True) if outcome == "done" else (True, False)), \
                (job, outcome)
            assert _decodes(f"{url}thumb/{job}/in")
            if outcome == "done":
                assert _decodes(f"{url}thumb/{job}/out")
    assert after_restart == before_restart
