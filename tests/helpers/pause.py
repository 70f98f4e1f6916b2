"""Processes stopped at a named instant: ``REGTUI_PAUSE_AT`` (see
``embedded_registry.storage.driver.base.pause_point``) makes a process print one line and stop
itself (SIGSTOP) there; the test does what races with that instant, then sends SIGCONT."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.helpers.servers import server_env

PAUSE_ENV = "REGTUI_PAUSE_AT"
LEASE_TTL_ENV = "REGTUI_GC_LEASE_TTL"


def wait_stopped(process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Until ``process`` is in the stopped state (``T`` in ``/proc/<pid>/stat``)."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{process.pid}/stat")
    while time.monotonic() < deadline:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        assert process.poll() is None, "the process ended instead of pausing"
        time.sleep(0.05)
    raise AssertionError("the process did not stop")


def read_until_paused(process: subprocess.Popen[str], point: str) -> list[str]:
    """The stderr lines of ``process`` up to its ``paused at <point>`` line, once it is
    stopped there (``point`` as in ``REGTUI_PAUSE_AT``, ``@<text>`` included or not)."""
    assert process.stderr is not None
    name = point.partition("@")[0]
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith(f"regtui: paused at {name}:"):
            wait_stopped(process)
            return lines
    raise AssertionError(f"the process never paused at {point}:\n{''.join(lines)}")


def start_paused_gc(
    args: Sequence[str], point: str, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[str], list[str]]:
    """``regtui gc ARGS`` with ``REGTUI_PAUSE_AT=point``, stopped there: the process and the
    lines it wrote to stderr so far (the last one names the instant)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "gc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env({PAUSE_ENV: point, **(env or {})}),
    )
    try:
        return process, read_until_paused(process, point)
    except BaseException:
        process.kill()
        process.wait()
        raise
