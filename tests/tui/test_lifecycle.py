"""``regtui serve --local`` in a real terminal (tmux): signals, a dying child, config warnings.

A plain ``kill`` (SIGTERM), a closed terminal (SIGHUP) or SIGINT of the app must stop the
bundled registry it started and give the terminal back (no alternate screen left on); SIGKILL
of the app still stops the registry (the kernel's parent-death signal); when the registry dies
on its own, the app says so and names its log; its config warnings reach the user.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.tmux import Tmux

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc, no procps needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _start(tmux: Tmux, tmp_path: Path, *extra: str) -> tuple[int, int]:
    """Start ``serve --local --demo`` in tmux; return (app pid, registry pid) once it shows."""
    root = tmp_path / "registry"
    command = " ".join(
        shlex.quote(part)
        for part in (
            sys.executable,
            "-m",
            "tui",
            "serve",
            "--local",
            "--demo",
            "--root",
            str(root),
            *extra,
        )
    )
    tmux.run(
        "new-session",
        "-d",
        "-x",
        "100",
        "-y",
        "30",
        "-s",
        tmux.session,
        "-e",
        "TERM=xterm-256color",
        "-e",
        f"PYTHONPATH={os.getcwd()}",
        f"{command}; echo EXITED=$?; sleep 60",
    )
    tmux.wait_for(lambda text: "web  18 tags" in text)
    shell = int(tmux.run("display-message", "-p", "-t", tmux.session, "#{pane_pid}").strip())
    (app,) = _children(shell)
    registries = _children(app)
    assert len(registries) == 1, registries
    return app, registries[0]


def _alternate_screen_on(tmux: Tmux) -> bool:
    return tmux.run("display-message", "-p", "-t", tmux.session, "#{alternate_on}").strip() == "1"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_registry_and_restores_the_terminal(
    tmux: Tmux, tmp_path: Path, signum: signal.Signals
) -> None:
    app, registry = _start(tmux, tmp_path)
    assert _alternate_screen_on(tmux)
    os.kill(app, signum)
    screen = tmux.wait_for(lambda text: "EXITED=" in text, seconds=30)
    assert f"EXITED={128 + signum}" in screen
    assert "Traceback" not in screen
    assert not _alternate_screen_on(tmux)
    assert _wait_gone(registry), "the bundled registry outlived the app"


def test_sigkill_of_the_app_still_stops_the_registry(tmux: Tmux, tmp_path: Path) -> None:
    app, registry = _start(tmux, tmp_path)
    os.kill(app, signal.SIGKILL)
    tmux.wait_for(lambda text: "EXITED=137" in text, seconds=30)
    assert _wait_gone(registry), "the bundled registry outlived a killed app"


def test_the_app_says_when_its_registry_dies(tmux: Tmux, tmp_path: Path) -> None:
    app, registry = _start(tmux, tmp_path)
    os.kill(registry, signal.SIGKILL)
    screen = tmux.wait_for(lambda text: "bundled registry stopped" in text, seconds=30)
    # The notification wraps over several lines inside a border of ▌.
    lines = [line.split("▌", 1)[1].strip() for line in screen.splitlines() if "▌ " in line]
    words = " ".join(lines)
    assert "stopped (signal 9)" in words, screen
    assert "registry-serve-local.log" in "".join(lines), screen
    assert _alive(app), "the app must stay up after its registry died"
    tmux.keys("q")
    screen = tmux.wait_for(lambda text: "EXITED=" in text, seconds=30)
    assert "EXITED=0" in screen


def test_config_warnings_reach_the_user(tmux: Tmux, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    # Distribution's redis cache: regtui keeps no blob descriptor cache to put there, so the
    # key is ignored with a warning (a section that guards data or access would stop it).
    config.write_text("version: 0.1\nstorage:\n  delete: {enabled: true}\nredis: {addr: r:6379}\n")
    app, _registry = _start(tmux, tmp_path, "--config", str(config))
    screen = tmux.wait_for(lambda text: "redis.addr" in text, seconds=30)
    assert "unsupported config key" in screen.replace("\n", " ")
    os.kill(app, signal.SIGTERM)
    tmux.wait_for(lambda text: "EXITED=" in text, seconds=30)
