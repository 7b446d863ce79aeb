"""The house rules of the layout (HOUSE_STYLE.md, issue 8) that a linter does not check.

- A command is one hop from the command line: each row of ``cli.COMMANDS`` names a module of
  ``bgcut_watchd.commands`` with a ``run(args) -> int``.
- No module is over 300 lines without saying why in its docstring ("Over 300 lines on
  purpose: ...").
- The tests mirror the package: every folder of ``bgcut_watchd`` has its folder in ``tests``.
- A folder's ``__init__`` docstring names every module in it, so the map a newcomer reads first
  stays true.
- No function or method of the daemon is dead: each name defined is read (a name or an
  attribute, in the syntax tree) somewhere in ``bgcut_watchd/`` or ``bench/``; a test alone
  does not keep code alive, nor a mention in ``__all__`` or a docstring. By name, not by
  object: a method shares its fate with any other of that name. ``UNREFERENCED_ON_PURPOSE``
  lists the few that a library calls, with why; the emulator (``fake_api``) is a tool for tests.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import bgcut_watchd
from bgcut_watchd.cli import COMMANDS

PACKAGE = Path(bgcut_watchd.__file__).parent
TESTS = Path(__file__).parent
LONG = 300
REASON = "Over 300 lines on purpose:"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_is_the_run_of_its_own_module(name: str) -> None:
    module = importlib.import_module(f"bgcut_watchd.commands.{COMMANDS[name].module}")
    run = getattr(module, "run", None)
    assert callable(run), f"bgcut_watchd.commands.{COMMANDS[name].module} has no run(args)"
    assert list(inspect.signature(run).parameters) == ["args"]


def test_no_module_is_long_without_a_reason_in_its_docstring() -> None:
    unexplained = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > LONG and REASON not in " ".join(docstring.split()):
            unexplained.append(f"{path.relative_to(PACKAGE)} ({lines} lines)")
    assert not unexplained, f"over {LONG} lines with no reason in the docstring: {unexplained}"


def test_the_rule_above_sees_a_long_module() -> None:
    longest = max(_modules(), key=lambda p: p.read_text(encoding="utf-8").count("\n"))
    assert longest.read_text(encoding="utf-8").count("\n") > LONG


def test_every_package_folder_has_its_tests_folder() -> None:
    folders = {init.parent.relative_to(PACKAGE) for init in PACKAGE.rglob("__init__.py")}
    missing = sorted(str(f) for f in folders if f.parts and not (TESTS / f).is_dir())
    assert not missing, f"package folders without a tests folder: {missing}"


def test_every_folder_docstring_names_each_of_its_modules() -> None:
    unnamed = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        if init.parent == PACKAGE:
            continue
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        for module in sorted(init.parent.glob("*.py")):
            if module.stem in ("__init__", "__main__"):
                continue
            if f"``{module.stem}``" not in docstring:
                unnamed.append(str(module.relative_to(PACKAGE)))
    assert not unnamed, f"modules their folder's docstring does not name: {unnamed}"


BENCH = TESTS.parent / "bench"
UNREFERENCED_ON_PURPOSE = {
    "collect": "prometheus_client calls a custom collector's collect() (daemon/metrics.py)",
    "emit": "logging calls a handler's emit() (daemon/logsetup.py)",
    "on_thread_start": "watchdog calls it when its emitter thread starts (intake/watcher.py)",
}
EMULATOR = PACKAGE / "fake_api"  # a tool for tests: its public surface is theirs to use


def _dead_functions(defining: list[Path], reading: list[Path]) -> list[str]:
    """Names of the functions defined in ``defining`` that no code in ``reading`` reads."""
    defined: set[str] = set()
    read: set[str] = set()
    for path in reading:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and path in defining:
                if not (node.name.startswith("__") and node.name.endswith("__")):
                    defined.add(node.name)
            elif isinstance(node, ast.Name):
                read.add(node.id)
            elif isinstance(node, ast.Attribute):
                read.add(node.attr)
    return sorted(defined - read)


def test_no_function_of_the_daemon_is_left_unreferenced() -> None:
    daemon = [p for p in _modules() if EMULATOR not in p.parents]
    dead = [n for n in _dead_functions(daemon, _modules() + sorted(BENCH.rglob("*.py")))
            if n not in UNREFERENCED_ON_PURPOSE]
    assert not dead, f"defined but used nowhere in bgcut_watchd/ or bench/: {dead}"


def test_the_rule_above_sees_a_function_nothing_calls(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""``lonely`` is only named here."""\n__all__ = ["lonely"]\n'
                      "def used() -> None: ...\ndef lonely() -> None: ...\nused()\n")
    assert _dead_functions([module], [module]) == ["lonely"]
