"""``-u NAME`` without a password, and ``--password-stdin`` at a terminal (issue 20, item 4).

The CLI runs as a real process against the bundled registry with ``auth.htpasswd``: without a
terminal it fails with one line that says the password is missing and how to give it; on a
pseudo-terminal it asks without echo, and what is typed never appears on the terminal.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.client.test_client_registries import _htpasswd
from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, server_env
from tui.client import auth
from tui.commands import access

pytestmark = pytest.mark.timeout(120)

PASSWORD = "wonder-pass-7f3"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """The bundled registry behind htpasswd, with one repository in it."""
    base = tmp_path_factory.mktemp("credentials")
    htpasswd = _htpasswd(base / "htpasswd", "alice", PASSWORD)
    config = {"auth": {"htpasswd": {"realm": "regtui-test", "path": str(htpasswd)}}}
    with bundled_registry(base / "root", config=config) as running:
        push_image(
            running.url, "team/app", "v1", make_image([{"a": b"a"}]), auth=("alice", PASSWORD)
        )
        yield running


def _env() -> dict[str, str]:
    env = server_env({"DOCKER_CONFIG": "/nonexistent-regtui-test"})
    env.pop("REGTUI_PASSWORD", None)
    env.pop("REGTUI_USERNAME", None)
    return env


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "tui", *argv]


def test_the_environment_variable_is_the_clients() -> None:
    assert access.ENV_PASSWORD == auth.ENV_PASSWORD


def test_username_without_password_and_no_terminal_fails_in_one_line(
    guarded: RunningRegistry,
) -> None:
    done = subprocess.run(
        _cli("tags", f"{guarded.host}/team/app", "-u", "alice"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("regtui: error: no password for alice")
    assert "--password-stdin" in done.stderr and "REGTUI_PASSWORD" in done.stderr


def test_username_with_regtui_password_is_not_asked(guarded: RunningRegistry) -> None:
    done = subprocess.run(
        _cli("tags", f"{guarded.host}/team/app", "-u", "alice"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**_env(), "REGTUI_PASSWORD": PASSWORD},
        timeout=60,
    )
    assert (done.returncode, done.stdout.split()) == (0, ["v1"]), done.stderr


def _on_a_terminal(argv: list[str], typed: str) -> tuple[int, str]:
    """Run ``argv`` on a new pseudo-terminal, type ``typed`` once it asks for a password;
    return its exit code and everything the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        try:
            os.execve(sys.executable, [sys.executable, *argv[1:]], _env())
        finally:
            os._exit(127)
    shown = b""
    sent = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        if not sent and b"Password for alice:" in shown:
            os.write(fd, typed.encode() + b"\n")
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert sent, shown
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


@pytest.mark.parametrize("stdin_flag", [(), ("--password-stdin",)], ids=["-u", "password-stdin"])
def test_at_a_terminal_the_password_is_asked_without_echo(
    guarded: RunningRegistry, stdin_flag: tuple[str, ...]
) -> None:
    argv = _cli("tags", f"{guarded.host}/team/app", "-u", "alice", *stdin_flag)
    code, shown = _on_a_terminal(argv, PASSWORD)
    assert code == 0, shown
    assert "v1" in shown.split()  # the password typed was the one used
    assert PASSWORD not in shown  # and the terminal never showed it
    code, shown = _on_a_terminal(argv, "wrong-pass-91c")
    assert code == 1 and "Not authorized" in shown and "wrong-pass-91c" not in shown
