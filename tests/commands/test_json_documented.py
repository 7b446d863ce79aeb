"""Every key a ``--json`` document prints is documented in the README's "JSON output" section,
so an administrator can script against it without reading code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd.cli import main
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import API_KEY, REPO, write_config


def _section() -> str:
    readme = (REPO / "README.md").read_text("utf-8")
    start = readme.index("### JSON output")
    return readme[start:readme.index("\n## ", start)]


def _keys(document: Any) -> set[str]:
    """The keys of ``document`` and of the objects within it (lists and dicts), except the
    dicts keyed by folder name."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            found.add(key)
            if key in ("credits", "live"):  # folder names and the daemon's own figures
                continue
            found |= _keys(value)
    elif isinstance(document, list):
        for item in document:
            found |= _keys(item)
    return found


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()
    main(argv)
    return json.loads(capsys.readouterr().out)


def test_every_json_key_is_in_the_readme(tmp_path: Path, emulator: FakeApiServer,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGCUT_API_KEY", API_KEY)
    config = str(write_config(tmp_path, emulator.base_url))
    inbox = tmp_path / "studio" / "inbox"
    photo = make_valid_jpeg(inbox, "a.jpg")
    documents = {
        "check-config": _json(["check-config", "-c", config, "--online", "--json"], capsys),
        "explain": _json(["explain", "-c", config, "--json", str(photo)], capsys),
        "process": _json(["process", "-c", config, "--json", str(photo)], capsys),
        "requeue": _json(["requeue", "-c", config, "--json", "--all"], capsys),
        "resume": _json(["resume", "-c", config, "--json"], capsys),
        "status": _json(["status", "-c", config, "--json"], capsys),
    }
    assert documents["process"]["results"], documents["process"]  # a result was shown
    documented = set(re.findall(r"[`{, ]([a-z_]+)(?=[`},])", _section()))
    missing = {name: sorted(_keys(doc) - documented) for name, doc in documents.items()}
    assert missing == {name: [] for name in documents}


ERROR_KEYS = {"ok", "error", "problems"}


def test_a_configuration_error_is_the_documented_error_document(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    config.write_text(config.read_text().replace("[daemon]", "[deamon]"))
    for command in (["status"], ["check-config"], ["explain", str(tmp_path / "x.jpg")]):
        capsys.readouterr()
        assert main([*command, "-c", str(config), "--json"]) == 78, command
        doc = json.loads(capsys.readouterr().out)
        assert set(doc) == ERROR_KEYS, command
        assert doc["ok"] is False and doc["error"]["kind"] == "config"
        assert 'deamon: unknown key (did you mean "daemon"?)' in doc["problems"]
    assert '"error": {"kind"' in _section()  # documented


def test_a_usage_error_is_the_same_document(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGCUT_API_KEY", API_KEY)
    config = write_config(tmp_path, "http://127.0.0.1:9", folders=("studio", "shop"))
    photo = make_valid_jpeg(tmp_path, "a.jpg")
    capsys.readouterr()
    assert main(["process", "-c", str(config), "--json", str(photo)]) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert set(doc) == ERROR_KEYS and doc["error"]["kind"] == "usage"
    assert "2 folders are configured (studio, shop)" in doc["error"]["message"]
    assert doc["problems"] == [doc["error"]["message"]]
    # without --json: the same message, as text on stderr
    assert main(["process", "-c", str(config), str(photo)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "process: 2 folders are configured (studio, shop)" in err
    # requeue's unknown folder: the same document
    assert main(["requeue", "-c", str(config), "--json", "--folder", "nope", "--all"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == ERROR_KEYS and doc["error"]["kind"] == "usage"
    assert "requeue: no folder named 'nope'" in doc["error"]["message"]
