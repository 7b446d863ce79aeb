"""``bgcut-watchd process``: the one-shot pipeline on real folders and the real emulator."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bgcut_watchd.cli import main
from bgcut_watchd.commands.process import EXTRA_CLAIMS, process_paths
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_text_named_jpg, make_valid_jpeg, make_valid_png
from tests.support import (
    API_KEY,
    REPO,
    InProcessDaemon,
    files_under,
    job_dirs,
    load_checked,
    visible_files,
    wait_for,
    write_config,
)

OUTPUTS = 3  # full, thumb, white


@pytest.fixture(autouse=True)
def api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("BGCUT_WATCHD_CONFIG", raising=False)
    monkeypatch.setenv("BGCUT_API_KEY", API_KEY)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in files_under(folder)}


def _source_set(root: Path) -> Path:
    """3 valid images (one in a subfolder), a text file named .jpg, and a .DS_Store."""
    src = root / "shoot"
    (src / "day2").mkdir(parents=True)
    make_valid_jpeg(src, "one.jpg")
    make_valid_png(src, "two.png")
    make_valid_jpeg(src / "day2", "three.jpg")
    make_text_named_jpg(src)  # notes.jpg
    (src / ".DS_Store").write_bytes(b"finder")
    return src


def _names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in visible_files(folder))


def test_a_folder_outside_the_inbox_is_copied_processed_and_left_untouched(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    src = _source_set(tmp_path)
    before = _snapshot(src)

    code = main(["process", "-c", str(config), "--no-progress", str(src)])

    out = capsys.readouterr().out
    assert code == 1
    assert "done: 3, quarantined: 1, failed: 0, unfinished: 0, ignored: 1" in out
    assert "built-in pattern '.DS_Store'" in out
    assert "invalid_image" in out
    assert _snapshot(src) == before  # nothing moved, nothing changed
    studio = tmp_path / "studio"
    # The failure's error file sits beside the outputs; no copy enters the live folder's
    # archive or quarantine (a later `requeue --all` must never feed a one-shot's copy in).
    assert _names(studio / "outbox") == [
        "day2/three.full.png", "day2/three.thumb.webp", "day2/three.white.jpg",
        "notes.jpg.error.json",
        "one.full.png", "one.thumb.webp", "one.white.jpg",
        "two.full.png", "two.thumb.webp", "two.white.jpg"]
    error = json.loads((studio / "outbox" / "notes.jpg.error.json").read_text("utf-8"))
    assert (error["reason"], error["stage"]) == ("invalid_image", "validate")
    assert files_under(studio / "quarantine") == []
    assert files_under(studio / "archive") == []
    assert files_under(studio / "inbox") == []  # no job left in the work area
    assert f"{str(src / 'notes.jpg')!r} -> {str(studio / 'outbox' / 'notes.jpg.error.json')!r}" \
        in out  # the summary says where everything went


def test_files_inside_the_inbox_are_claimed_and_archived(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    (inbox / "sub").mkdir(parents=True)
    first = make_valid_jpeg(inbox, "first.jpg")
    second = make_valid_png(inbox / "sub", "second.png")
    (inbox / "sub" / "upload.part").write_bytes(b"still coming")

    code = main(["process", "-c", str(config), str(first), str(inbox / "sub")])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "done: 2, quarantined: 0, failed: 0, unfinished: 0, ignored: 1" in out
    assert not first.exists() and not second.exists()
    assert (inbox / "sub" / "upload.part").read_bytes() == b"still coming"  # ignored, untouched
    assert _names(tmp_path / "studio" / "archive") == ["first.jpg", "sub/second.png"]
    assert len(visible_files(tmp_path / "studio" / "outbox")) == 2 * OUTPUTS
    assert "copied in" not in out
    uploads = [r for r in emulator.requests() if r.endpoint == "upload" and r.status == 200]
    assert len(uploads) == 2


def test_walking_a_parent_never_feeds_outputs_back_in(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    make_valid_jpeg(inbox, "first.jpg")
    assert main(["process", "-c", str(config), str(inbox)]) == 0
    make_valid_jpeg(inbox, "second.jpg")
    capsys.readouterr()

    code = main(["process", "-c", str(config), str(tmp_path / "studio")])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "done: 1," in out  # second.jpg only: outbox and archive are not inputs
    assert "inside the outbox of folder 'studio'" in out
    assert "inside the archive of folder 'studio'" in out
    assert _names(tmp_path / "studio" / "archive") == ["first.jpg", "second.jpg"]


def test_folder_option_copies_a_file_from_another_folders_inbox(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url, folders=("studio", "web"))
    studio_file = make_valid_jpeg(_mkdir(tmp_path / "studio" / "inbox"), "shot.jpg")

    code = main(["process", "-c", str(config), "--folder", "web", str(studio_file)])

    assert code == 0, capsys.readouterr().out
    assert studio_file.exists()  # another folder's inbox: copied, never moved
    assert _names(tmp_path / "web" / "outbox") == [
        "shot.full.png", "shot.thumb.webp", "shot.white.jpg"]
    assert files_under(tmp_path / "studio" / "outbox") == []


def test_unknown_folder_is_a_usage_error(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    src = make_valid_jpeg(_mkdir(tmp_path / "src"), "a.jpg")
    assert main(["process", "-c", str(config), "--folder", "nope", str(src)]) == 2
    assert "no folder named 'nope'" in capsys.readouterr().err
    assert emulator.requests() == []


def test_a_missing_api_key_is_a_configuration_error(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BGCUT_API_KEY")
    config = write_config(tmp_path, emulator.base_url)
    src = make_valid_jpeg(_mkdir(tmp_path / "src"), "a.jpg")
    assert main(["process", "-c", str(config), str(src)]) == 78
    assert "no API key found" in capsys.readouterr().err
    assert src.exists() and emulator.requests() == []


def test_a_missing_path_fails_the_run_but_not_the_others(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    src = make_valid_jpeg(_mkdir(tmp_path / "src"), "a.jpg")
    code = main(["process", "-c", str(config), str(tmp_path / "nowhere.jpg"), str(src)])
    out = capsys.readouterr().out
    assert code == 1
    assert "done: 1, quarantined: 0, failed: 1" in out
    assert "nowhere.jpg': no such file or folder" in out


def test_a_symlink_named_outside_the_inbox_is_followed_and_left_alone(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    target = make_valid_jpeg(_mkdir(tmp_path / "library"), "original.jpg")
    link = tmp_path / "latest.jpg"
    link.symlink_to(target)
    assert main(["process", "-c", str(config), str(link)]) == 0, capsys.readouterr().out
    assert link.is_symlink() and target.is_file()
    assert _names(tmp_path / "studio" / "outbox") == [
        "latest.full.png", "latest.thumb.webp", "latest.white.jpg"]


def test_a_path_inside_the_work_area_is_refused(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    job_dir = _mkdir(tmp_path / "studio" / "inbox" / ".bgcut-work" / "somejob")
    held = make_valid_jpeg(job_dir, "input.jpg")
    assert main(["process", "-c", str(config), str(held)]) == 1
    assert "inside the work area (a job in progress)" in capsys.readouterr().out
    assert held.exists() and emulator.requests() == []


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_the_progress_bar_shows_only_on_a_terminal(
    tmp_path: Path, emulator: FakeApiServer, monkeypatch: pytest.MonkeyPatch, tty: bool,
) -> None:
    config = load_checked(write_config(tmp_path, emulator.base_url))
    src = _mkdir(tmp_path / "src")
    for n in range(3):
        make_valid_jpeg(src, f"p{n}.jpg")
    stderr = _Tty() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert process_paths(config, API_KEY, None, [src], progress=True) == 0
    assert ("3/3" in stderr.getvalue()) is tty
    assert API_KEY not in stderr.getvalue()


def test_no_progress_hides_the_bar_even_on_a_terminal(
    tmp_path: Path, emulator: FakeApiServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load_checked(write_config(tmp_path, emulator.base_url))
    src = make_valid_jpeg(_mkdir(tmp_path / "src"), "a.jpg")
    stderr = _Tty()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert process_paths(config, API_KEY, None, [src], progress=False) == 0
    assert "1/1" not in stderr.getvalue()


def test_a_refused_key_stops_the_run_and_leaves_the_jobs_resumable(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon={"workers": 2})
    src = _mkdir(tmp_path / "src")
    for n in range(6):
        make_valid_jpeg(src, f"p{n}.jpg")
    before = _snapshot(src)
    emulator.update(auth_fail=True)

    code = main(["process", "-c", str(config), str(src)])

    captured = capsys.readouterr()
    assert code == 1
    assert "stopping: API work paused, API key rejected (401)" in captured.err
    assert "done: 0, quarantined: 0, failed: 0, unfinished: 6" in captured.out
    assert _snapshot(src) == before
    work = tmp_path / "studio" / "inbox" / ".bgcut-work"
    claimed = [d for d in work.iterdir() if d.is_dir()]
    assert 1 <= len(claimed) <= 4  # workers + EXTRA_CLAIMS at most; the rest never touched
    assert files_under(tmp_path / "studio" / "quarantine") == []
    emulator.update(auth_fail=False)
    with InProcessDaemon(config):  # the daemon resumes what the one-shot left claimed
        wait_for(lambda: len(visible_files(tmp_path / "studio" / "outbox"))
                 == len(claimed) * OUTPUTS, what="the claimed copies processed by the daemon")
        wait_for(lambda: not any(work.iterdir()), what="their job folders removed")
    # Detached copies: deleted when done, never archived, even when the daemon finishes them.
    assert files_under(tmp_path / "studio" / "archive") == []


def _start_process(tmp_path: Path, emulator: FakeApiServer,
                   latency_s: float) -> tuple[subprocess.Popen[str], Path, Path]:
    """``process`` of 6 copies, one worker, as a subprocess; the first job under way."""
    config = write_config(tmp_path, emulator.base_url, daemon={"workers": 1},
                          api={"process_timeout_s": 10})
    src = _mkdir(tmp_path / "src")
    for n in range(6):
        make_valid_jpeg(src, f"p{n}.jpg")
    emulator.update(latency_process_s=latency_s)
    env = {**os.environ, "BGCUT_API_KEY": API_KEY, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bgcut_watchd", "process", "-c", str(config), str(src)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(r.endpoint == "upload" for r in emulator.requests()),
             what="the first job under way")
    # The first job uploads while the others of the window are still being claimed (copied
    # in): wait for the window, so what a signal leaves does not depend on timing.
    wait_for(lambda: len(job_dirs(tmp_path / "studio" / "inbox")) == 1 + EXTRA_CLAIMS,
             what="the claim window full")
    return proc, config, src


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_finishes_the_running_job_and_leaves_the_rest(
    tmp_path: Path, emulator: FakeApiServer, signum: signal.Signals,
) -> None:
    proc, _, src = _start_process(tmp_path, emulator, latency_s=1.0)
    before = _snapshot(src)
    try:
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert f"process: stopping: interrupted ({signum.name})" in err
    assert "Traceback" not in err
    assert "done: 1, quarantined: 0, failed: 0, unfinished: 5" in out  # the warm stop
    assert out.count("not started: left untouched") == 6 - (1 + EXTRA_CLAIMS)  # 1 worker
    assert _snapshot(src) == before
    assert len(visible_files(tmp_path / "studio" / "outbox")) == OUTPUTS


def test_a_second_ctrl_c_stops_waiting_and_the_daemon_resumes_the_job(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    proc, config, src = _start_process(tmp_path, emulator, latency_s=4.0)
    # The signals come while the API runs the process call (so it has outputs for the daemon
    # to find): one sent but not received would rightly make the daemon wait the whole
    # look-out window (api.process_timeout_s) before paying for it again.
    wait_for(lambda: emulator.requests_in_progress() == 1, what="the process call at the API")
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        while "process: stopping" not in proc.stderr.readline():
            pass  # the first signal was handled: the warm stop waits for the running job
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        elapsed_s = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert elapsed_s < 3.0  # it did not sit out the 4 s process call
    assert "done: 0, quarantined: 0, failed: 0, unfinished: 6" in out
    assert visible_files(tmp_path / "studio" / "outbox") == []
    work = tmp_path / "studio" / "inbox" / ".bgcut-work"
    claimed = [d for d in work.iterdir() if d.is_dir()]
    assert len(claimed) == 3
    emulator.update(latency_process_s=0.0)
    with InProcessDaemon(config):
        wait_for(lambda: len(visible_files(tmp_path / "studio" / "outbox")) == 3 * OUTPUTS,
                 what="the claimed copies finished by the daemon")
        wait_for(lambda: not any(work.iterdir()), what="their job folders removed")
    assert files_under(tmp_path / "studio" / "archive") == []
    assert len(list(src.iterdir())) == 6


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_several_folders_need_folder_which_lists_them(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url, folders=("studio", "shop"))
    src = _mkdir(tmp_path / "src")
    make_valid_jpeg(src, "a.jpg")
    assert main(["process", "-c", str(config), str(src)]) == 2
    assert "2 folders are configured (studio, shop)" in capsys.readouterr().err
    assert emulator.requests() == []
    assert main(["process", "-c", str(config), "--folder", "shop", str(src)]) == 0
    assert len(visible_files(tmp_path / "shop" / "outbox")) == OUTPUTS


def test_output_dir_gets_the_outputs_and_nothing_else_is_touched(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    make_valid_jpeg(inbox, "in-inbox.jpg")
    (inbox / "bad.jpg").write_bytes(b"not an image")
    before = _snapshot(inbox)
    out = tmp_path / "delivery"
    assert main(["process", "-c", str(config), "--output", str(out), str(inbox)]) == 1
    assert _snapshot(inbox) == before  # even inbox files are only copied
    assert _names(out) == ["bad.jpg.error.json", "in-inbox.full.png", "in-inbox.thumb.webp",
                           "in-inbox.white.jpg"]
    for folder in ("outbox", "archive", "quarantine"):
        assert files_under(tmp_path / "studio" / folder) == []
    assert "in-inbox.full.png" in capsys.readouterr().out


def test_output_dir_creates_no_folder_and_no_work_area_in_a_live_inbox(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    """``--output DIR`` writes into DIR (and the job history) only: no folder's outbox, archive
    or quarantine is created, the chosen one's or another's, and the live inbox gets no work
    area (the one-shot's is DIR/.bgcut-work, removed when empty)."""
    config = write_config(tmp_path, emulator.base_url, folders=("studio", "shop"))
    inbox = tmp_path / "studio" / "inbox"
    make_valid_jpeg(inbox, "in-inbox.jpg")
    src = _mkdir(tmp_path / "src")
    make_valid_jpeg(src, "outside.jpg")
    out = tmp_path / "delivery"
    assert main(["process", "-c", str(config), "--folder", "studio", "--output", str(out),
                 str(inbox), str(src)]) == 0
    for name in ("studio", "shop"):
        for kind in ("outbox", "archive", "quarantine"):
            assert not (tmp_path / name / kind).exists(), f"{name}/{kind}"
    assert os.listdir(inbox) == ["in-inbox.jpg"]
    assert os.listdir(tmp_path / "shop" / "inbox") == []
    assert sorted(os.listdir(out)) == sorted(
        f"{stem}.{variant}" for stem in ("in-inbox", "outside")
        for variant in ("full.png", "thumb.webp", "white.jpg"))


def test_running_process_twice_pays_once_and_makes_no_second_set(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    src = _mkdir(tmp_path / "src")
    make_valid_jpeg(src, "a.jpg")
    assert main(["process", "-c", str(config), str(src)]) == 0
    calls = len(emulator.requests())
    capsys.readouterr()
    assert main(["process", "-c", str(config), "--json", str(src)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["outcome"] for r in doc["results"]] == ["up_to_date"]
    outbox = tmp_path / "studio" / "outbox"
    assert sorted(doc["results"][0]["where"]) == sorted(str(p) for p in visible_files(outbox))
    assert len(emulator.requests()) == calls  # no API call the second time
    assert _names(outbox) == ["a.full.png", "a.thumb.webp", "a.white.jpg"]  # no "-1" set


def test_json_reports_each_input_with_where_it_went(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    make_valid_jpeg(inbox, "good.jpg")
    (inbox / "bad.jpg").write_bytes(b"not an image")
    assert main(["process", "-c", str(config), "--json", str(inbox)]) == 1
    doc = json.loads(capsys.readouterr().out)
    by_name = {Path(r["input"]).name: r for r in doc["results"]}
    assert doc["ok"] is False and doc["stopped"] is None
    assert by_name["good.jpg"]["outcome"] == "done" and len(by_name["good.jpg"]["where"]) == 3
    bad = by_name["bad.jpg"]
    assert bad["outcome"] == "quarantined" and bad["reason"].startswith("invalid_image")
    assert bad["where"] == [str(tmp_path / "studio" / "quarantine" / "bad.jpg")]


def test_every_page_of_a_multi_page_tiff_is_a_result_and_raw_is_left_alone(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    """A 3-page TIFF copied in from outside: three pages, three done, the copy detached (deleted
    when done, never archived, like every copy `process` makes); a RAW
    file beside it is listed as ignored (raw_files = "ignore"), never taken."""
    from tests.devices.corpus import make_cr2_shaped, tiff_three_pages

    config = write_config(tmp_path, emulator.base_url)
    src = _mkdir(tmp_path / "scans")
    tiff_three_pages(src)
    make_cr2_shaped(src, "IMG_0002.CR2")
    before = _snapshot(src)

    code = main(["process", "-c", str(config), "--no-progress", str(src)])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "done: 3, quarantined: 0, failed: 0, unfinished: 0, ignored: 1" in out
    assert "IMG_0002.CR2': camera RAW (Canon CR2), never uploaded" in out
    assert _snapshot(src) == before
    studio = tmp_path / "studio"
    assert _names(studio / "outbox") == sorted(
        f"letters-p{page}.{suffix}" for page in (1, 2, 3)
        for suffix in ("full.png", "thumb.webp", "white.jpg"))
    assert files_under(studio / "archive") == []  # a detached copy, the original kept in src
    assert files_under(studio / "inbox") == []
    assert not any((studio / "inbox" / ".bgcut-work").glob("*/*"))  # no page left behind
