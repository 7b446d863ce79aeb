"""``bgcut-watchd-check``: check-config --online inside the service's own sandbox.

systemd is not PID 1 where the tests run, so the check itself cannot start here: what is tested
is the unit the script makes from the service's unit and a drop-in (``systemd-analyze verify``
and ``security`` on it, and that it keeps every sandbox line and the drop-in's folders), and that
without systemd it says so instead of pretending.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.daemon.test_unit_file import MAX_EXPOSURE, SHIPPED_EXEC, UNIT, directives, needs_analyze
from tests.support import REPO

SCRIPT = REPO / "systemd" / "bgcut-watchd-check"
LIFECYCLE = {"Type", "ExecStart", "ExecReload", "Restart", "RestartPreventExitStatus",
             "WatchdogSec", "NotifyAccess", "TimeoutStartSec", "StandardOutput",
             "StandardError", "RestartSec", "TimeoutStopSec"}
DROP_IN = "[Service]\nReadWritePaths=/mnt/shop-share\nProtectHome=read-only\n"


def systemctl_cat(unit_text: str) -> str:
    """What ``systemctl cat bgcut-watchd`` prints for the unit and one drop-in."""
    return (f"# /etc/systemd/system/bgcut-watchd.service\n{unit_text}\n"
            f"# /etc/systemd/system/bgcut-watchd.service.d/override.conf\n{DROP_IN}")


def check_unit(tmp_path: Path, unit_text: str) -> str:
    source = tmp_path / "systemctl-cat.txt"
    source.write_text(systemctl_cat(unit_text))
    result = subprocess.run(["bash", str(SCRIPT), "--print-unit", str(source)],
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stdout


def effective(text: str) -> dict[str, list[str]]:
    """Each directive's values as systemd applies them: an empty assignment resets the list."""
    values: dict[str, list[str]] = {}
    for key, assigned in directives(text).items():
        kept: list[str] = []
        for value in assigned:
            kept = [] if value == "" else [*kept, value]
        values[key] = kept
    return values


def test_the_check_unit_is_the_service_with_a_one_shot_check_instead_of_the_daemon(
        tmp_path: Path) -> None:
    unit_text = UNIT.read_text("utf-8")
    made = effective(check_unit(tmp_path, unit_text))
    service = effective(systemctl_cat(unit_text))
    assert made["Service.Type"][-1] == "oneshot"
    assert made["Service.ExecStart"] == [
        f"{SHIPPED_EXEC} check-config --online -c /etc/bgcut-watchd/config.toml"]
    assert made["Service.WatchdogSec"][-1] == "0" and made["Service.Restart"][-1] == "no"
    assert not any(key.startswith("Install.") for key in made)
    # every other line of the service, drop-in included, is the same: user, paths, credential,
    # hardening
    sandbox = {key for key in service if key.startswith("Service.")
               and key.partition(".")[2] not in LIFECYCLE}
    assert {"Service.User", "Service.LoadCredential", "Service.ReadWritePaths",
            "Service.ProtectSystem", "Service.PrivateUsers"} <= sandbox
    for key in sandbox:
        assert made[key] == service[key], key
    assert made["Service.ReadWritePaths"] == ["-/srv/photos", "/mnt/shop-share"]
    assert made["Service.ProtectHome"][-1] == "read-only"


@needs_analyze
def test_systemd_analyze_verifies_and_rates_the_check_unit(tmp_path: Path) -> None:
    program = tmp_path / "bin" / "bgcut-watchd"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    text = check_unit(tmp_path, UNIT.read_text("utf-8")).replace(SHIPPED_EXEC, str(program))
    unit = tmp_path / "bgcut-watchd-check.service"
    unit.write_text(text)
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert match and float(match.group(1)) <= MAX_EXPOSURE, security.stdout + security.stderr


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd is running here")
@pytest.mark.skipif(os.geteuid() != 0, reason="the check runs as root only")
def test_without_systemd_it_says_so_and_fails(tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 1
    assert "systemd is not running on this machine" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_finds_nothing() -> None:
    subprocess.run(["shellcheck", str(SCRIPT), str(REPO / "install.sh")], check=True, timeout=60)
