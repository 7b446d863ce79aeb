"""``bgcut-watchd requeue``: quarantined inputs back to their inbox, and taken again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgcut_watchd.cli import main
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_text_named_jpg, make_valid_jpeg
from tests.support import (
    API_KEY,
    InProcessDaemon,
    files_under,
    visible_files,
    wait_for,
    write_config,
)


@pytest.fixture(autouse=True)
def api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("BGCUT_API_KEY", API_KEY)


def _quarantine_two(tmp_path: Path, emulator: FakeApiServer,
                    capsys: pytest.CaptureFixture[str]) -> Path:
    """Two valid images quarantined as too_many_pixels (one in a subfolder); returns config."""
    config = write_config(tmp_path, emulator.base_url, daemon={"max_input_pixels": 100})
    inbox = tmp_path / "studio" / "inbox"
    (inbox / "sub").mkdir(parents=True)
    make_valid_jpeg(inbox, "big.jpg")
    make_valid_jpeg(inbox / "sub", "wide.jpg")
    assert main(["process", "-c", str(config), str(inbox)]) == 1
    assert _names(tmp_path / "studio" / "quarantine") == [
        "big.jpg", "big.jpg.error.json", "sub/wide.jpg", "sub/wide.jpg.error.json"]
    capsys.readouterr()
    return write_config(tmp_path, emulator.base_url)  # the limit lifted


def _names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in visible_files(folder))


def test_requeue_all_then_process_takes_them_again(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _quarantine_two(tmp_path, emulator, capsys)
    inbox = tmp_path / "studio" / "inbox"

    assert main(["requeue", "-c", str(config), "--all"]) == 0

    out = capsys.readouterr().out
    assert f"studio: requeued -> '{inbox / 'sub' / 'wide.jpg'}'" in out
    assert "2 input(s) back in their inbox" in out
    assert _names(inbox) == ["big.jpg", "sub/wide.jpg"]
    assert files_under(tmp_path / "studio" / "quarantine") == []
    assert main(["process", "-c", str(config), str(inbox)]) == 0
    assert _names(tmp_path / "studio" / "archive") == ["big.jpg", "sub/wide.jpg"]
    assert len(visible_files(tmp_path / "studio" / "outbox")) == 6


def test_requeue_by_file_or_by_error_file_and_the_daemon_takes_it(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _quarantine_two(tmp_path, emulator, capsys)
    quarantine = tmp_path / "studio" / "quarantine"
    inbox = tmp_path / "studio" / "inbox"

    code = main(["requeue", "-c", str(config), str(quarantine / "sub" / "wide.jpg.error.json")])

    assert code == 0
    assert f"-> '{inbox / 'sub' / 'wide.jpg'}'" in capsys.readouterr().out
    assert _names(quarantine) == ["big.jpg", "big.jpg.error.json"]  # the other one stays
    with InProcessDaemon(config):
        wait_for(lambda: _names(tmp_path / "studio" / "archive") == ["sub/wide.jpg"],
                 what="the requeued input archived by the daemon")
    assert main(["requeue", "-c", str(config), str(quarantine / "big.jpg")]) == 0
    assert _names(inbox) == ["big.jpg"]


def test_an_unknown_file_moves_nothing_and_exits_1(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _quarantine_two(tmp_path, emulator, capsys)
    quarantine = tmp_path / "studio" / "quarantine"
    stranger = make_valid_jpeg(tmp_path, "stranger.jpg")

    code = main(["requeue", "-c", str(config), str(quarantine / "big.jpg"), str(stranger)])

    err = capsys.readouterr().err
    assert code == 1
    assert f"not a quarantined input of studio: '{stranger}'" in err
    assert "nothing moved" in err
    assert len(_names(quarantine)) == 4 and stranger.exists()


def test_an_orphan_error_file_is_not_an_input(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    quarantine = tmp_path / "studio" / "quarantine"
    quarantine.mkdir(parents=True)
    (quarantine / "gone.jpg.error.json").write_text("{}", "utf-8")
    assert main(["requeue", "-c", str(config), str(quarantine / "gone.jpg.error.json")]) == 1
    assert (quarantine / "gone.jpg.error.json").exists()


def test_folder_option_limits_the_requeue(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url, folders=("studio", "web"))
    for name in ("studio", "web"):
        inbox = tmp_path / name / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        make_text_named_jpg(inbox)
        assert main(["process", "-c", str(config), "--folder", name, str(inbox)]) == 1
    studio_bad = tmp_path / "studio" / "quarantine" / "notes.jpg"
    capsys.readouterr()

    assert main(["requeue", "-c", str(config), "--folder", "web", str(studio_bad)]) == 1
    assert main(["requeue", "-c", str(config), "--folder", "web", "--all"]) == 0

    assert (tmp_path / "web" / "inbox" / "notes.jpg").exists()
    assert studio_bad.exists()
    assert main(["requeue", "-c", str(config), "--folder", "nope", "--all"]) == 2


def test_nothing_to_requeue(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    assert main(["requeue", "-c", str(config), "--all"]) == 0
    assert "nothing to requeue" in capsys.readouterr().out


def test_requeue_json_lists_each_move(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _quarantine_two(tmp_path, emulator, capsys)
    quarantine, inbox = tmp_path / "studio" / "quarantine", tmp_path / "studio" / "inbox"
    assert main(["requeue", "-c", str(config), "--json", str(quarantine / "big.jpg")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"ok": True, "errors": [], "moved": [
        {"folder": "studio", "from": str(quarantine / "big.jpg"), "to": str(inbox / "big.jpg")}]}
    assert main(["--json", "requeue", "-c", str(config), str(tmp_path / "nope.jpg")]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["moved"] == [] and "nothing moved" in doc["errors"]
