"""The README's first command, for real: ``regtui serve --local --demo`` in a terminal (tmux)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.helpers.servers import require_tool

pytestmark = pytest.mark.slow


class Tmux:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.socket = f"regtui-test-{uuid.uuid4().hex[:8]}"
        self.session = "regtui"

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [self.binary, "-L", self.socket, *args], check=True, capture_output=True, text=True
        )
        return result.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def wait_for(self, predicate: Callable[[str], bool], seconds: float = 60.0) -> str:
        deadline = time.monotonic() + seconds
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never matched; last screen:\n{text}")
            time.sleep(0.2)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    instance = Tmux(require_tool("tmux"))
    try:
        yield instance
    finally:
        subprocess.run([instance.binary, "-L", instance.socket, "kill-server"], capture_output=True)


def test_serve_local_demo_in_a_terminal(tmux: Tmux) -> None:
    command = f"{shlex.quote(sys.executable)} -m tui serve --local --demo; echo EXITED=$?"
    tmux.run(
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        "-s",
        tmux.session,
        "-e",
        "TERM=xterm-256color",
        "-e",
        f"PYTHONPATH={os.getcwd()}",
        f"{command}; sleep 60",
    )
    screen = tmux.wait_for(lambda text: "web  18 tags" in text)
    assert "acme/" in screen and "library/" in screen and "staging/" in screen
    assert "local registry 127.0.0.1:" in screen

    tmux.keys("/")
    tmux.wait_for(lambda text: "Filter repositories" in text and "Clear filter" in text)
    tmux.keys("-l", "python")
    screen = tmux.wait_for(lambda text: "python-demo" in text and "acme/" not in text)
    tmux.keys("Enter")  # leave the filter: the cursor is on the first match
    time.sleep(0.3)
    tmux.keys("Enter")  # open library/python-demo
    screen = tmux.wait_for(lambda text: "linux/amd64, linux/arm64" in text)
    assert "3.12-slim" in screen
    tmux.keys("q")
    screen = tmux.wait_for(lambda text: "EXITED=" in text, seconds=30)
    assert "EXITED=0" in screen
    assert "Traceback" not in screen
