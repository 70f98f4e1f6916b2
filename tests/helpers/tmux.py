"""tmux as a real terminal for the app: a private server socket, no user tmux.conf."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.helpers.servers import require_tool


class Tmux:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.socket = f"regtui-test-{uuid.uuid4().hex[:8]}"
        self.session = "regtui"

    def run(self, *args: str) -> str:
        # -f /dev/null: the user's tmux.conf must not change the size or the keys.
        result = subprocess.run(
            [self.binary, "-L", self.socket, "-f", os.devnull, *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def size(self) -> tuple[int, int]:
        text = self.run("display-message", "-p", "-t", self.session, "#{pane_width}x#{pane_height}")
        width, height = text.strip().split("x")
        return int(width), int(height)

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
                raise AssertionError(
                    f"screen never matched; pane {self.size()}; last screen:\n{text}"
                )
            time.sleep(0.2)


@contextmanager
def running_tmux() -> Iterator[Tmux]:
    """A tmux server of its own for one test; killed after it."""
    instance = Tmux(require_tool("tmux"))
    try:
        yield instance
    finally:
        subprocess.run([instance.binary, "-L", instance.socket, "kill-server"], capture_output=True)
