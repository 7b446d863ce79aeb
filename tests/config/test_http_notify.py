"""``[http]`` and ``[notify]``: what the loader accepts, and what it refuses with its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd.config import parse_config
from bgcut_watchd.config.model import HttpConfig, NotifyConfig, is_loopback, split_listen
from bgcut_watchd.config.secrets import load_http_token
from bgcut_watchd.errors import ConfigError


def _data(**sections: dict[str, Any]) -> dict[str, Any]:
    return {"variants": {"v": {}}, **sections,
            "folders": [{"name": "f", "inbox": "/in", "outbox": "/out", "quarantine": "/q",
                         "archive": "/done", "variants": ["v"]}]}


def _problems(**sections: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(_data(**sections))
    return caught.value.problems


def test_both_are_off_by_default() -> None:
    config = parse_config(_data())
    assert config.http == HttpConfig(listen="", token_file=None)
    assert config.notify == NotifyConfig(webhook_url="", apprise_urls=(), digest_s=300.0)


@pytest.mark.parametrize(("listen", "host", "port"), [
    ("127.0.0.1:9464", "127.0.0.1", 9464), ("[::1]:9464", "::1", 9464),
    ("localhost:0", "localhost", 0),
])
def test_listen_takes_host_and_port(listen: str, host: str, port: int) -> None:
    assert parse_config(_data(http={"listen": listen})).http.listen == listen
    assert split_listen(listen) == (host, port)
    assert is_loopback(host)


@pytest.mark.parametrize("listen", ["9464", "::1:9464", "127.0.0.1:http", "127.0.0.1:70000",
                                    ":9464"])
def test_a_malformed_listen_is_refused(listen: str) -> None:
    (problem,) = _problems(http={"listen": listen})
    assert problem.startswith("http.listen: ")


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", "[::]:9464", "192.0.2.10:9464",
                                    "studio-server:9464"])
def test_a_listener_off_loopback_needs_a_token(listen: str) -> None:
    (problem,) = _problems(http={"listen": listen})
    assert problem.startswith("http.token_file: required when http.listen is not a loopback")
    config = parse_config(_data(http={"listen": listen, "token_file": "/etc/b/token"}))
    assert config.http.token_file == Path("/etc/b/token")


def test_an_empty_token_file_means_none() -> None:
    assert parse_config(_data(http={"token_file": ""})).http.token_file is None


def test_notify_values_and_their_problems() -> None:
    config = parse_config(_data(notify={"webhook_url": "https://hooks.example/x?token=1",
                                        "digest_s": 0}))
    assert config.notify.webhook_url == "https://hooks.example/x?token=1"
    assert config.notify.digest_s == 0.0
    assert _problems(notify={"webhook_url": "ftp://x", "digest_s": -1, "apprise_urls": [""],
                             "bogus": 1}) == [
        'notify.bogus: unknown key',
        'notify.webhook_url: must be an http:// or https:// URL (or "" for none)',
        "notify.apprise_urls[0]: must not be empty",
        "notify.digest_s: must be >= 0, got -1",
    ]


def test_apprise_urls_are_kept_when_apprise_is_installed() -> None:
    pytest.importorskip("apprise")
    config = parse_config(_data(notify={"apprise_urls": ["json://127.0.0.1:9/"]}))
    assert config.notify.apprise_urls == ("json://127.0.0.1:9/",)


def test_the_token_file_is_read_stripped_and_never_quoted(tmp_path: Path) -> None:
    token = tmp_path / "token"
    assert load_http_token(HttpConfig(listen="0.0.0.0:9464")) is None
    with pytest.raises(ConfigError, match="no such file"):
        load_http_token(HttpConfig(token_file=token))
    token.write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        load_http_token(HttpConfig(token_file=token))
    token.write_text("two words\n")
    with pytest.raises(ConfigError) as caught:
        load_http_token(HttpConfig(token_file=token))
    assert "two" not in str(caught.value)
    token.write_text(" s3cr3t-t0ken\n")
    assert load_http_token(HttpConfig(token_file=token)) == "s3cr3t-t0ken"
