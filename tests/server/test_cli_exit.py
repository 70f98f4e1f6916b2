"""``regtui``'s exit paths, run as a real process: a closed pipe, Ctrl-C, an unexpected error.

The reader of a pipe that goes away (``regtui du | head``) must not yield a traceback; an error
nobody planned for is one line on stderr and exit 1, unless ``REGTUI_DEBUG=1`` asks for more.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedded_registry.storage.paths import Layout
from tui.cli import DEBUG_ENV, EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_INTERRUPTED

pytestmark = pytest.mark.timeout(60)


def _storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    layout = Layout(root)
    layout.blobs_dir.mkdir(parents=True)
    layout.repositories_dir.mkdir(parents=True)
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    env.update(extra)
    return env


def _run_into_closed_pipe(args: list[str]) -> tuple[int, str]:
    """Run ``python -m tui ARGS`` with stdout a pipe whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "tui", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            timeout=50,
        )
    finally:
        os.close(write_end)
    return process.returncode, process.stderr


def _run_with_failing_handler(error: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``regtui du --root`` whose handler raises ``error`` (a Python expression)."""
    code = (
        "import sys\n"
        "import tui.commands.storage as storage\n"
        "def broken(args):\n"
        f"    raise {error}\n"
        "storage.du_root = broken\n"
        "from tui.cli import main\n"
        "sys.exit(main(['du', '--root', '.']))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=50
    )


def test_du_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    code, stderr = _run_into_closed_pipe(["du", "--root", str(_storage_root(tmp_path))])
    assert code == EXIT_BROKEN_PIPE
    assert stderr == ""


def test_help_into_a_closed_pipe_exits_quietly() -> None:
    code, stderr = _run_into_closed_pipe(["--help"])
    # Python 3.11.2 (Debian 12's) lets argparse's failed write of the help reach main(): the
    # shell's SIGPIPE code, as for any other output; later 3.11 releases ignore it and exit 0.
    assert code in (0, EXIT_BROKEN_PIPE)
    assert stderr == ""


def test_an_unexpected_error_is_one_line_and_exit_1() -> None:
    process = _run_with_failing_handler("RuntimeError('the disk\\nis on fire')", _env())
    assert process.returncode == EXIT_ERROR
    assert process.stderr == "regtui: error: the disk is on fire (RuntimeError)\n"
    assert process.stdout == ""


def test_regtui_debug_shows_the_traceback() -> None:
    process = _run_with_failing_handler("RuntimeError('boom')", _env(**{DEBUG_ENV: "1"}))
    assert process.returncode == EXIT_ERROR
    assert process.stderr.startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom" in process.stderr


def test_ctrl_c_exits_130_without_a_traceback() -> None:
    process = _run_with_failing_handler("KeyboardInterrupt", _env())
    assert process.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in process.stderr
