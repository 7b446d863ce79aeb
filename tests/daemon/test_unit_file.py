"""The shipped unit: what systemd-analyze says about it, and what the daemon relies on in it."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from bgcut_watchd.config import API_KEY_CREDENTIAL, DEFAULT_CONFIG_PATH, DaemonConfig, load_config
from bgcut_watchd.exitcodes import EXIT_CONFIG
from tests.support import REPO

UNIT = REPO / "systemd" / "bgcut-watchd.service"
SHIPPED_EXEC = "/opt/bgcut-watchd/venv/bin/bgcut-watchd"
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def directives(text: str) -> dict[str, list[str]]:
    """``"Section.Key" -> [values]`` in file order (a key may repeat, e.g. SystemCallFilter=)."""
    found: dict[str, list[str]] = defaultdict(list)
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found[f"{section}.{key.strip()}"].append(value.strip())
    return dict(found)


def seconds(value: str) -> float:
    """A systemd time span with one unit ("45s", "2min", "90") in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?", value)
    assert match, value
    factor = {"ms": 0.001, "min": 60, "m": 60, "h": 3600}.get(match.group(2) or "s", 1)
    return float(match.group(1)) * factor


@pytest.fixture
def runnable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine."""
    program = tmp_path / "bin" / "bgcut-watchd"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    text = UNIT.read_text("utf-8")
    assert SHIPPED_EXEC in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(SHIPPED_EXEC, str(program)), "utf-8")
    return unit


@needs_analyze
def test_systemd_analyze_verify_prints_nothing(runnable_unit: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(runnable_unit)],
                            capture_output=True, text=True, timeout=60, check=False)
    # verify exits 0 on many warnings (unknown keys, bad values): any line at all is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_systemd_analyze_security_rates_it_2_or_better(runnable_unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--threshold={MAX_EXPOSURE * 10:.0f}",
         "--no-pager", str(runnable_unit)],
        capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stderr


def test_the_unit_keeps_the_contract_with_the_daemon() -> None:
    unit = directives(UNIT.read_text("utf-8"))
    service = {key.partition(".")[2]: values for key, values in unit.items()
               if key.startswith("Service.")}
    assert service["Type"] == ["notify"]
    assert service["ExecStart"] == [f"{SHIPPED_EXEC} run -c {DEFAULT_CONFIG_PATH}"]
    assert service["Restart"] == ["on-failure"]
    assert str(EXIT_CONFIG) in service["RestartPreventExitStatus"][0].split()
    assert seconds(service["WatchdogSec"][0]) > 0
    assert service["LoadCredential"] == [f"{API_KEY_CREDENTIAL}:/etc/bgcut-watchd/api-key"]
    assert "DynamicUser" not in service  # the folders are shared with people
    assert service["User"] != ["root"] and service["Group"] != ["root"]
    assert service["ReadWritePaths"]
    assert unit["Install.WantedBy"] == ["multi-user.target"]


def test_stop_timeout_and_state_directory_match_the_configuration_defaults() -> None:
    service = directives(UNIT.read_text("utf-8"))
    example = load_config(REPO / "config.example.toml")  # no side effects: nothing created
    shutdown_s = max(DaemonConfig().shutdown_timeout_s, example.daemon.shutdown_timeout_s)
    # systemd must not SIGKILL while in-flight jobs still have their shutdown_timeout_s
    assert seconds(service["Service.TimeoutStopSec"][0]) > shutdown_s + 5
    state = Path("/var/lib") / service["Service.StateDirectory"][0]
    assert state == DaemonConfig().state_dir == example.daemon.state_dir


def comment_above(lines: list[str], directive: str) -> str:
    """The comment lines directly above the first ``directive=`` line."""
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{directive}="))
    above: list[str] = []
    while index > 0 and lines[index - 1].startswith("#"):
        index -= 1
        above.insert(0, lines[index])
    return "\n".join(above)


@pytest.mark.parametrize("directive", [
    "ProtectHome", "RestrictAddressFamilies", "MemoryDenyWriteExecute", "PrivateUsers",
    "ReadWritePaths", "UMask", "TimeoutStopSec", "RestartPreventExitStatus",
])
def test_settings_a_site_may_need_to_change_say_when_and_how(directive: str) -> None:
    comment = comment_above(UNIT.read_text("utf-8").splitlines(), directive)
    assert re.search(r"\b(relax|comment it out|set \S+=|add|raise|list|fix|0007)\b", comment,
                     re.IGNORECASE), f"{directive}= has no comment saying when to change it"
