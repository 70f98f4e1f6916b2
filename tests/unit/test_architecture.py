"""The import rules of ARCHITECTURE.md and the style rules, checked mechanically."""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_import_linter_contracts_hold() -> None:
    # The venv's own script, beside this interpreter: a venv's bin/ need not be on PATH.
    lint_imports = Path(sysconfig.get_path("scripts")) / "lint-imports"
    if not lint_imports.is_file():
        pytest.fail("lint-imports is missing: install the project's test extra")
    result = _run(str(lint_imports))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("tui.client", ("textual", "embedded_registry")),
        ("embedded_registry.app", ("tui", "textual")),
    ],
)
def test_loading_a_layer_pulls_in_nothing_above_it(module: str, forbidden: tuple[str, ...]) -> None:
    probe = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(','.join(bad))"
    )
    result = _run(sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} loaded {result.stdout.strip()}"


def test_ruff_check_and_format_are_clean() -> None:
    check = _run(sys.executable, "-m", "ruff", "check", ".")
    assert check.returncode == 0, check.stdout
    formatted = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout


SERVER_DOORS = frozenset({"embedded_registry.offline", "embedded_registry.cli"})
"""The app's two ways into the server's code: the offline commands' names, and ``serve``."""


def _server_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            if node.module == "embedded_registry":  # from embedded_registry import gc
                modules = [f"embedded_registry.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found |= {m for m in modules if m.split(".")[0] == "embedded_registry"}
    return found


def test_the_app_enters_the_server_by_one_door() -> None:
    """``tui`` imports the server's code through :mod:`embedded_registry.offline` (and
    :mod:`embedded_registry.cli` for ``serve``) only: a module of the server can be moved or
    split without a command noticing."""
    strays = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "tui").rglob("*.py"))
        for module in _server_imports(path) - SERVER_DOORS
    }
    assert strays == set()


def test_the_offline_door_loads_nothing_until_a_name_is_used() -> None:
    probe = (
        "import sys, embedded_registry.offline as door\n"
        "before = sorted(m for m in sys.modules if m.startswith('embedded_registry.'))\n"
        "door.storage_usage\n"
        "after = 'embedded_registry.usage' in sys.modules and 'embedded_registry.gc.scrub' "
        "not in sys.modules\n"
        "print(','.join(before), after)"
    )
    result = _run(sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["embedded_registry.offline", "True"]
