"""The import rules of ARCHITECTURE.md and the style rules, checked mechanically."""

from __future__ import annotations

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
