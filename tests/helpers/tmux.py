"""tmux as a real terminal for the app: a private server socket, no user tmux.conf."""

from __future__ import annotations

import os
import subprocess
import tempfile
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

    def start(self, width: int, height: int, command: str, env: dict[str, str]) -> None:
        """The server, and a detached session of ``width`` x ``height`` running ``command``.

        A detached session has no client to take its size from, so window-size manual keeps
        it. tmux's default-size is that size too (from a config file: it is read when the
        server starts): window-size manual set after the session first shrank the window
        to the 80x24 default. (tmux 3.3a's server exits at start with window-size manual
        in its config file.)"""
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as config:
            config.write(f"set -g default-size {width}x{height}\n")
        try:
            subprocess.run(
                [self.binary, "-L", self.socket, "-f", config.name, "new-session", "-d"]
                + ["-x", str(width), "-y", str(height), "-s", self.session]
                + [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
                + [command, ";", "set-option", "-g", "window-size", "manual"],
                check=True,
                capture_output=True,
                text=True,
            )
        finally:
            os.unlink(config.name)

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
