"""``bgcut-watchd completion SHELL``: scripts generated from the parser, valid for each shell."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bgcut_watchd.cli import COMMANDS, main


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_script_knows_every_command_and_parses_in_its_shell(
        shell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for name in COMMANDS:
        assert name in script
    assert "online" in script and "json" in script  # fish spells options "-l online"
    binary = shutil.which(shell)
    if binary is None:
        pytest.skip(f"{shell} is not installed: only the content was checked")
    path = tmp_path / f"completion.{shell}"
    path.write_text(script)
    result = subprocess.run([binary, "-n", str(path)], capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.returncode == 0, result.stderr
