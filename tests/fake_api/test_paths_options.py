"""Remote path rules, upload name sanitising and option validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgcut_watchd.fake_api.options import FakeApiOptions
from bgcut_watchd.fake_api.paths import sanitise_file_name, validate_remote_path


@pytest.mark.parametrize("path", ["a", "a/b.png", "proj/job 1/ü.png", "a/.hidden/b"])
def test_valid_remote_paths_are_kept(path: str) -> None:
    assert validate_remote_path(path, "f") == path


@pytest.mark.parametrize(
    "path", ["", "/a", "a//b", "a/./b", "../a", "a/..", "a\\b", "a\x00b", "a\nb", "x" * 1025,
             "a/" + "b" * 256],
)
def test_unsafe_remote_paths_are_rejected(path: str) -> None:
    with pytest.raises(ValueError, match=r"^f: "):
        validate_remote_path(path, "f")


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("photo.jpg", "photo.jpg"),
        ("my photo (1).jpg", "my_photo_1_.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\scan.png", "scan.png"),
        (".bashrc", "_bashrc"),
        ("", "file"),
        (None, "file"),
        ("ééé", "file"),
    ],
)
def test_upload_names_are_sanitised(name: str | None, stored: str) -> None:
    assert sanitise_file_name(name) == stored


def test_options_defaults_match_the_brief() -> None:
    options = FakeApiOptions()
    assert options.expiry_s == 7200
    assert options.fail_5xx == options.fail_reset == 0.0
    assert options.auth_fail is False and options.max_upload_bytes is None


@pytest.mark.parametrize(
    "changes",
    [{"fail_5xx": 1.5}, {"fail_429": -0.1}, {"latency_upload_s": -1}, {"auth_fail": "yes"},
     {"retry_after_s": 1.5}, {"expiry_s": 0}, {"max_upload_bytes": 0}, {"seed": "x"},
     {"fail_reset": True}, {"fail_html_200": 2}, {"fail_cut_body": -1},
     {"dribble_download_bytes_per_s": -5}, {"dribble_headers": 1}],
)
def test_invalid_options_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        FakeApiOptions().with_changes(changes)


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        FakeApiOptions().with_changes({"fail_everything": 1})


def test_with_changes_coerces_json_values() -> None:
    options = FakeApiOptions().with_changes({"fail_5xx": 1, "request_log": "/tmp/log.jsonl"})
    assert options.fail_5xx == 1.0 and isinstance(options.fail_5xx, float)
    assert options.request_log == Path("/tmp/log.jsonl")
    assert options.to_json()["request_log"] == "/tmp/log.jsonl"
