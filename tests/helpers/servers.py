"""Start real registries on loopback for the tests: the bundled one and Debian's docker-registry.

Both run as child processes on ephemeral ports and are stopped when the context ends. Tools that
are missing skip the test with a reason, except under CI (``CI=true``), where they fail it: CI
installs them, so a missing one is a broken setup, not a reason to pass.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

START_TIMEOUT = 20.0
SCRUBBED_ENV_PREFIXES = ("REGTUI_", "REGISTRY_")
"""Variables a server started by a test never inherits: the developer's settings would change it."""


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server process: ours without ``REGTUI_*``/``REGISTRY_*``, plus
    ``extra`` (what the test itself asks for)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV_PREFIXES)}
    env.update(extra or {})
    return env


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(name: str) -> str:
    """The path of ``name``; skip the test without it (fail under CI, which installs it)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (bash .ci/run installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningRegistry:
    url: str
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, **kw: Any) -> None:
    if isinstance(kw.get("verify"), str):  # a CA file: httpx wants an SSL context for it
        kw["verify"] = ssl.create_default_context(cafile=kw["verify"])
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"registry exited with {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            response = httpx.get(f"{url}/v2/", timeout=2.0, **kw)
            if response.status_code in (200, 401):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"registry at {url} did not answer in time:\n{log_path.read_text()}")


@contextmanager
def bundled_registry(
    root: Path,
    *,
    config: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    verify: bool | str = True,
) -> Iterator[RunningRegistry]:
    """Run ``python -m embedded_registry`` on 127.0.0.1 with an ephemeral port."""
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "embedded_registry", "--root", str(root)]
    if config is not None:
        config_path = root.parent / f"{root.name}-config.yml"
        config_path.write_text(yaml.safe_dump(dict(config)))
        command += ["--config", str(config_path)]
    if "--addr" not in args:
        command += ["--addr", "127.0.0.1:0"]
    command += list(args)
    log_path = root.parent / f"{root.name}-server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log,
        env=server_env(env),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line.startswith("listening on "):
            process.wait(timeout=10)
            raise RuntimeError(
                f"bundled registry did not start ({line!r}):\n{log_path.read_text()}"
            )
        url = line.removeprefix("listening on ").strip()
        _wait_ready(url, process, log_path, verify=verify)
        yield RunningRegistry(url=url, root=root, process=process, log_path=log_path)
    finally:
        _stop(process)
        if process.stdout is not None:
            process.stdout.close()
        log.close()


def distribution_config(root: Path, port: int, extra: Mapping[str, Any] | None = None) -> dict:
    """A docker-registry config.yml for ``root`` on 127.0.0.1:``port``, delete enabled."""
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "regtui-test-secret"},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@contextmanager
def distribution_registry(
    root: Path, *, config: Mapping[str, Any] | None = None
) -> Iterator[RunningRegistry]:
    """Run Debian's ``docker-registry`` (CNCF Distribution 2.8) on ``root``."""
    binary = require_tool("docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = root.parent / f"{root.name}-distribution.yml"
    config_path.write_text(yaml.safe_dump(distribution_config(root, port, config)))
    log_path = root.parent / f"{root.name}-distribution.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [binary, "serve", str(config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        yield RunningRegistry(url=url, root=root, process=process, log_path=log_path)
    finally:
        _stop(process)
        log.close()
