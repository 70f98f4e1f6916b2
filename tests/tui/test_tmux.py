"""The README's first command, for real: ``regtui serve --local --demo`` in a terminal (tmux)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from tests.helpers.tmux import Tmux

pytestmark = pytest.mark.slow


def test_serve_local_demo_in_a_terminal(tmux: Tmux, tmp_path: Path) -> None:
    command = f"{shlex.quote(sys.executable)} -m tui serve --local --demo; echo EXITED=$?"
    data_home = tmp_path / "data"  # the default root of serve --local lives under it
    env = {
        "TERM": "xterm-256color",
        "PYTHONPATH": os.getcwd(),
        "XDG_DATA_HOME": str(data_home),
    }
    tmux.start(120, 40, f"{command}; sleep 60", env)
    assert tmux.size() == (120, 40)
    screen = tmux.wait_for(lambda text: "web  18 tags" in text)
    assert "acme/" in screen and "library/" in screen and "staging/" in screen
    assert "local registry 127.0.0.1:" in screen

    tmux.keys("/")
    tmux.wait_for(lambda text: "Filter repositories" in text and "Clear filter" in text)
    tmux.keys("-l", "python")
    screen = tmux.wait_for(lambda text: "python-demo" in text and "acme/" not in text)
    tmux.keys("Enter")  # leave the filter: the cursor is on the first match
    tmux.wait_for(lambda text: "Clear filter" not in text)  # the footer of the tree again
    tmux.keys("Enter")  # open library/python-demo
    screen = tmux.wait_for(lambda text: "3.12-slim" in text and "amd64, arm64" in text)
    assert tmux.size() == (120, 40)
    # The platforms cell: their count and names (linux/ left out), not cut.
    rows = [line for line in screen.splitlines() if "3.12-slim" in line]
    assert rows and "2: amd64, arm64" in rows[0], screen
    tmux.keys("q")
    screen = tmux.wait_for(lambda text: "EXITED=" in text, seconds=30)
    assert "EXITED=0" in screen
    assert "Traceback" not in screen
    # The registry stopped with the app and its storage stays for next time, under the
    # same default root as `regtui serve`.
    blobs = data_home / "regtui" / "registry" / "docker" / "registry" / "v2" / "blobs"
    assert any(blobs.rglob("data"))
