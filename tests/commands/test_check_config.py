"""``bgcut-watchd check-config``: offline and ``--online``, text and ``--json``; and the global
options of every command, before or after it."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd.cli import main
from bgcut_watchd.config import load_config
from bgcut_watchd.config.model import BudgetConfig, Variant
from bgcut_watchd.config.rules import LOCAL_REQUEST
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.cost import call_credits
from bgcut_watchd.job.render import master_variant
from tests.support import API_KEY, write_config


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BGCUT_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def _config(tmp_path: Path, base_url: str = "http://127.0.0.1:9") -> Path:
    config = write_config(tmp_path, base_url)
    (tmp_path / "studio" / "inbox").mkdir(parents=True, exist_ok=True)
    return config


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_missing_key_is_a_warning_offline(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "no API key found" in out and "would need $BGCUT_API_KEY" in out
    assert "configuration OK" in out


def test_an_unreadable_key_file_says_how_the_service_gets_its_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As the service's user, the root-only key file cannot be read: that is how it should be,
    since the service gets the key from systemd (LoadCredential=), and the warning says so."""
    key = tmp_path / "api-key"  # a folder: unreadable as a file, even for root
    key.mkdir()
    config = write_config(tmp_path, "http://127.0.0.1:9", api={"api_key_file": str(key)})
    assert main(["check-config", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"cannot read {key}" in out
    assert "LoadCredential=" in out and "bgcut-watchd-check" in out
    assert "will refuse to start" not in out


def test_online_without_a_key_exits_78_naming_where_it_looked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(_config(tmp_path)), "--online"]) == 78
    out = capsys.readouterr().out
    assert "API key: none" in out and "$BGCUT_API_KEY (not set)" in out


def test_online_names_the_source_reaches_the_api_and_never_shows_the_key(
        tmp_path: Path, emulator: FakeApiServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BGCUT_API_KEY", API_KEY)
    assert main(["check-config", "-c", str(_config(tmp_path, emulator.base_url)),
                 "--online"]) == 0
    out = capsys.readouterr().out
    assert "API key: from the environment variable $BGCUT_API_KEY" in out
    assert "reachable" in out and "API key: accepted" in out
    assert API_KEY not in out
    assert [r.endpoint for r in emulator.requests()] == ["usage"]


def test_online_with_a_rejected_key_exits_78(tmp_path: Path, emulator: FakeApiServer,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BGCUT_API_KEY", "not-the-right-key")
    assert main(["check-config", "-c", str(_config(tmp_path, emulator.base_url)),
                 "--online", "--json"]) == 78
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["online"]["key_valid"] is False
    assert doc["online"]["reachable"] is True and doc["problems"]
    assert "not-the-right-key" not in json.dumps(doc)


def test_online_with_the_api_unreachable_exits_1(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BGCUT_API_KEY", API_KEY)
    config = _config(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    assert main(["check-config", "-c", str(config), "--online"]) == 1
    assert "NOT reachable" in capsys.readouterr().out


def test_online_says_why_in_plain_words_not_urllib3s_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BGCUT_API_KEY", API_KEY)
    config = _config(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    assert main(["check-config", "-c", str(config), "--online", "--json"]) == 1
    detail = json.loads(capsys.readouterr().out)["online"]["detail"]
    assert "connection refused" in detail and "ConnectionError" in detail
    for raw in ("HTTPConnectionPool", "Max retries", "Caused by", "object at 0x"):
        assert raw not in detail, detail


class _HtmlPage(http.server.BaseHTTPRequestHandler):
    """A proxy's or web server's error page where the API should be."""

    def do_GET(self) -> None:
        body = ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>"
                + "<h1>Bad Gateway</h1><p>The proxy could not reach the upstream.</p>" * 20
                + "</body></html>").encode()
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_online_summarises_an_html_page_to_its_status_and_first_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BGCUT_API_KEY", API_KEY)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = _config(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
        assert main(["check-config", "-c", str(config), "--online", "--json"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    detail = json.loads(capsys.readouterr().out)["online"]["detail"]
    assert "HTTP 502" in detail and "Bad Gateway" in detail
    assert "<" not in detail and len(detail) <= 300, detail


def test_json_lists_folders_and_a_bad_config_as_problems(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert main(["--json", "check-config", "-c", str(config)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["online"] is None
    assert [f["name"] for f in doc["folders"]] == ["studio"]
    config.write_text(config.read_text().replace("[daemon]", "[deamon]"))
    assert main(["check-config", "-c", str(config), "--json"]) == 78
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert 'deamon: unknown key (did you mean "daemon"?)' in doc["problems"]


@pytest.mark.parametrize("argv", [
    ["status", "-c", "{config}", "--log-level", "DEBUG"],
    ["-c", "{config}", "status"],
    ["--log-level", "DEBUG", "status", "--config", "{config}"],
    ["--json", "-c", "{config}", "status"],
])
def test_global_options_go_before_or_after_the_command(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_config(tmp_path))
    code = main([a.format(config=config) for a in argv])
    assert code in (0, 3)  # 3: no daemon is running; what matters is that it parsed
    assert "studio" in capsys.readouterr().out


def test_json_before_a_command_without_json_is_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--json", "demo"])
    assert exc.value.code == 2
    assert "--json does not apply to demo" in capsys.readouterr().err


def test_check_config_creates_nothing_and_says_what_the_daemon_will_create(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A check has no side effects: run with sudo (as root) it used to create the outbox,
    archive, quarantine and state_dir owned by root, which the service's user then could not
    write (its start failed with exit 78)."""
    config = _config(tmp_path)
    for name in ("outbox", "archive", "quarantine"):
        assert not (tmp_path / "studio" / name).exists()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["check-config", "-c", str(config), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    will_make = [w for w in document["warnings"] if "the daemon creates it when it starts" in w]
    assert sorted(w.split(":")[0] for w in will_make) == [
        "daemon.state_dir", "folders[0].archive", "folders[0].outbox", "folders[0].quarantine"]
    as_root = [w for w in document["warnings"] if w.startswith("run as root")]
    assert len(as_root) == (1 if os.geteuid() == 0 else 0)


def test_a_folder_whose_parent_is_missing_is_still_a_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    text = config.read_text().replace(str(tmp_path / "studio" / "outbox"),
                                      str(tmp_path / "nowhere" / "outbox"))
    config.write_text(text)
    assert main(["check-config", "-c", str(config)]) == 78
    assert "its parent folder" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def _capped(tmp_path: Path, cap: float, render: str) -> Path:
    config = write_config(tmp_path, "http://127.0.0.1:9", folder={"render": render})
    with config.open("a", encoding="utf-8") as handle:
        handle.write(f"\n[budget]\nmax_credits_per_day = {cap}\n")
    return config


@pytest.mark.parametrize(("cap", "render", "cheapest"), [(0.3, "local", "0.50"),
                                                         (1.4, "api", "1.50")])
def test_a_daily_cap_below_the_cheapest_call_of_a_folder_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], cap: float, render: str,
        cheapest: str) -> None:
    """Nothing could ever be sent: the daemon would pause every day. Refused (78), not
    warned: check-config and run say the same."""
    config = _capped(tmp_path, cap, render)
    assert main(["check-config", "-c", str(config)]) == 78
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"budget.max_credits_per_day: {cap:g} is below the cheapest process call" in text
    assert f'folder "studio" (about {cheapest} credits' in text
    with pytest.raises(ConfigError):  # what run loads: it refuses to start (78) too
        load_config(config)


def test_the_cheapest_local_call_is_priced_as_what_local_render_asks_for() -> None:
    variants = (Variant("full"), Variant("thumb", format="webp", max_resolution=250_000,
                                         quality="medium", autocrop=True))
    assert BudgetConfig().call_credits(1, LOCAL_REQUEST) == pytest.approx(
        call_credits(BudgetConfig(), 1, [master_variant(variants)]))


@pytest.mark.parametrize(("cap", "render"), [(0.5, "local"), (1.5, "api"), (0, "api")])
def test_a_daily_cap_that_pays_the_cheapest_call_is_taken(tmp_path: Path, cap: float,
                                                          render: str) -> None:
    assert main(["check-config", "-c", str(_capped(tmp_path, cap, render))]) == 0
