"""install.sh run for real into a temporary root: what it writes, twice, and what --uninstall keeps.

``--prefix`` relocates everything install.sh writes and skips the system user; ``--no-systemd``
keeps systemctl out; ``--no-apt`` keeps the package manager out. pip does run: ``--no-deps``
builds and installs only this package (its build backend may come from the pip cache or index).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon.test_unit_file import directives
from tests.support import REPO

INSTALL = REPO / "install.sh"
NAME = "bgcut-watchd"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def run_install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(INSTALL), "--prefix", str(root), "--no-systemd", "--no-apt", "--yes",
               "--python", sys.executable, "--pip-args", "--no-deps", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def key_file(tmp_path: Path, key: str) -> Path:
    path = tmp_path / f"key-{len(list(tmp_path.glob('key-*')))}"
    path.write_text(key + "\n")
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_install_three_times_then_uninstall_into_a_temporary_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    venv = root / "opt" / NAME / "venv"
    config = root / "etc" / NAME / "config.toml"
    key = root / "etc" / NAME / "api-key"
    unit = root / "etc" / "systemd" / "system" / f"{NAME}.service"

    # 1. no key file, --yes: everything but the key, and a warning instead of a prompt
    first = run_install(root)
    assert "no API key" in first.stderr
    assert not key.exists()
    where = "import bgcut_watchd, sys; sys.stdout.write(bgcut_watchd.__file__)"
    installed = subprocess.run([str(venv / "bin" / "python"), "-c", where], cwd=tmp_path,
                               env={"PATH": os.environ["PATH"]}, capture_output=True,
                               text=True, check=True)
    assert installed.stdout.startswith(str(venv))
    assert os.access(venv / "bin" / NAME, os.X_OK)
    assert not (REPO / "build").exists()  # built from a copy, not in the checkout
    assert config.read_text().startswith("# bgcut-watchd configuration")
    assert f'api_key_file = "{key}"' in config.read_text()  # relocated with the prefix
    # the state folder exists before systemd first starts the unit (StateDirectory= would make
    # it only then), so that check-config as the service's user finds it
    state = root / "var" / "lib" / NAME
    assert state.is_dir() and mode(state) == 0o750
    assert mode(config) == 0o640
    service = directives(unit.read_text())
    assert service["Service.ExecStart"] == [f"{venv}/bin/{NAME} run -c {config}"]
    assert service["Service.LoadCredential"] == [f"api-key:{key}"]
    assert service["Unit.Documentation"] == [f"file://{root}/opt/{NAME}/README.md"]
    assert (root / "opt" / NAME / "README.md").is_file()
    # the check that runs check-config --online inside the unit's sandbox, paths relocated
    check = root / "usr" / "local" / "sbin" / f"{NAME}-check"
    assert mode(check) == 0o755
    assert f"EXEC={venv}/bin/{NAME}\n" in check.read_text()
    assert f"CONFIG={config}\n" in check.read_text()
    # the closing message: commands that work as root without sudo, the check among them
    assert str(check) in first.stdout and "sudo -u" not in first.stdout
    shipped = directives((REPO / "systemd" / f"{NAME}.service").read_text())
    changed = {k for k in shipped.keys() | service.keys() if shipped.get(k) != service.get(k)}
    assert changed == {"Service.ExecStart", "Service.LoadCredential", "Unit.Documentation"}

    # 2. again, with a key: the package reinstalled, the edited configuration kept
    config.write_text(config.read_text() + "\n# edited by the administrator\n")
    (venv / "bin" / NAME).unlink()
    second = run_install(root, "--api-key-file", str(key_file(tmp_path, "KEY-one-1234")))
    assert os.access(venv / "bin" / NAME, os.X_OK)
    assert config.read_text().endswith("# edited by the administrator\n")
    assert f"kept {config}" in second.stdout
    assert (key.read_text(), mode(key)) == ("KEY-one-1234\n", 0o600)
    assert "KEY-one" not in second.stdout + second.stderr

    # 3. without a key file: the key kept, a loosened mode repaired; with the dependencies this
    # time (pip's cache has them after the test command), so `completion` runs and the three
    # shells' completion scripts are installed
    key.chmod(0o644)
    third = run_install(root, "--pip-args", "--prefer-binary")
    assert (key.read_text(), mode(key)) == ("KEY-one-1234\n", 0o600)
    assert "installed shell completion" in third.stdout and "skipped" not in third.stderr
    completions = {"bash": root / "usr/share/bash-completion/completions" / NAME,
                   "zsh": root / "usr/share/zsh/vendor-completions" / f"_{NAME}",
                   "fish": root / "usr/share/fish/vendor_completions.d" / f"{NAME}.fish"}
    for shell, script in completions.items():
        assert mode(script) == 0o644 and "check-config" in script.read_text(), shell
        if shutil.which(shell):  # the script parses in its own shell
            subprocess.run([shell, "-n", str(script)], check=True, timeout=30)

    # uninstall: the virtualenv and the unit go; configuration, key and folders stay
    inbox = root / "srv" / "photos" / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "waiting.jpg").write_bytes(b"not yet processed")
    run_install(root, "--uninstall")
    assert not (root / "opt" / NAME).exists()
    assert not unit.exists() and not check.exists()
    assert config.read_text().endswith("# edited by the administrator\n")
    assert key.read_text() == "KEY-one-1234\n"
    assert (inbox / "waiting.jpg").read_bytes() == b"not yet processed"
    run_install(root, "--uninstall")  # twice is harmless


@pytest.mark.parametrize(("args", "message"), [
    (["--frobnicate"], "unknown option: --frobnicate"),
    (["--api-key-file", "{tmp}/empty-key"], "is empty"),
    (["--api-key-file", "{tmp}/missing-key"], "cannot read"),
    (["--python", "/nonexistent/python3"], "/nonexistent/python3 not found"),
])
def test_bad_arguments_fail_before_anything_is_installed(
    tmp_path: Path, args: list[str], message: str,
) -> None:
    (tmp_path / "empty-key").write_text("  \n")
    root = tmp_path / "root"
    result = subprocess.run(
        ["bash", str(INSTALL), "--prefix", str(root), "--no-systemd", "--no-apt", "--yes",
         *[arg.format(tmp=tmp_path) for arg in args]],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (root / "opt").exists() and not (root / "etc").exists()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None,
                    reason="needs root and runuser (util-linux)")
def test_a_python_the_service_user_cannot_run_is_refused_clearly() -> None:
    """A python3 first on root's PATH (a pyenv shim under /root) made a virtualenv the
    service's user could not run: install.sh now checks, as that user, right after making it."""
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="bgcut-install-"))  # under /tmp, not pytest's 0700 dirs
    try:
        top.chmod(0o755)
        private = top / "root-only"
        private.mkdir(mode=0o700)
        (private / "python3").symlink_to(os.path.realpath(sys.executable))

        def install_venv(python: Path) -> subprocess.CompletedProcess[str]:
            # install.sh's functions without its last line (main "$@"), then one of them
            script = (f"set -euo pipefail; source <(sed '$d' {INSTALL}); prefix=''; "
                      f"user=nobody; OPT={top}/opt; VENV=$OPT/venv; python={python}; "
                      "venv_args=--without-pip; install_venv")
            return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                  timeout=120, check=False)

        refused = install_venv(private / "python3")
        assert refused.returncode == 1
        assert "the service's user nobody cannot run" in refused.stderr
        assert "--python" in refused.stderr
    finally:
        shutil.rmtree(top)
