"""Start real registries on loopback for the tests: the bundled one and Debian's docker-registry,
and Debian's nginx in front of a registry as the how-tos configure it.

All run as child processes on ephemeral ports and are stopped when the context ends. Tools that
are missing skip the test with a reason, except under CI (``CI=true``), where they fail it: CI
installs them, so a missing one is a broken setup, not a reason to pass.

The bundled registry writes its local admin secret under ``$REGTUI_ADMIN_DIR``, which an autouse
fixture (``tests/conftest.py``) points into the session's temporary directory (a test may point
it at its own): the server gets it explicitly (next to its root when the variable is unset, so
that no test ever writes into the user's directories), the client library in the test process
reads the same variable, and :meth:`RunningRegistry.admin_headers` gives the header for raw
``httpx`` calls.
"""

from __future__ import annotations

import grp
import os
import pwd
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
ADMIN_DIR_ENV = "REGTUI_ADMIN_DIR"
ADMIN_SECRET_HEADER = "Regtui-Admin-Secret"
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
    admin_dir: Path | None = None
    """Where this (bundled) registry writes its local admin secret."""

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    def admin_secret(self) -> str:
        """The local admin secret this (bundled) registry wrote for its port."""
        assert self.admin_dir is not None, "only the bundled registry has an admin secret"
        return (self.admin_dir / str(self.port)).read_text().strip()

    def admin_headers(self) -> dict[str, str]:
        """The header a local administrator sends (what ``tui.client.ext`` does for itself)."""
        return {ADMIN_SECRET_HEADER: self.admin_secret()}


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
    admin_dir = Path(
        (env or {}).get(ADMIN_DIR_ENV)
        or os.environ.get(ADMIN_DIR_ENV)
        or root.parent / f"{root.name}-admin-secrets"
    )
    # Explicit: never the user's own directory (and server_env drops REGTUI_* otherwise).
    environment = server_env({**(env or {}), ADMIN_DIR_ENV: str(admin_dir)})
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log,
        env=environment,
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
        yield RunningRegistry(
            url=url, root=root, process=process, log_path=log_path, admin_dir=admin_dir
        )
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


@dataclass
class RunningNginx:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def nginx_config(
    prefix: Path,
    port: int,
    upstream: str | Sequence[str],
    *,
    tls: tuple[Path, Path] | None = None,
    htpasswd: Path | None = None,
    deny: Sequence[str] = (),
    next_upstream: bool = False,
) -> str:
    """An nginx.conf as Distribution's "authenticate proxy with nginx" recipe writes it: nginx
    on the same host, ``proxy_pass`` to the registry with the forwarding headers, optional TLS
    and ``auth_basic``; every path kept under ``prefix`` so that nginx runs unprivileged.
    ``deny`` lists path prefixes refused outright (``location /v2/private/ { deny all; }``),
    as an operator hides some repositories behind the proxy. Several ``upstream`` addresses are
    balanced round-robin; ``next_upstream`` adds ``proxy_next_upstream error timeout http_503``
    (a replica whose health checks fail answers 503: the request goes to the next one, and the
    replica is skipped for a second)."""
    servers = [upstream] if isinstance(upstream, str) else list(upstream)
    # A failed server is retried after fail_timeout (10 s by default; 1 s keeps the tests short).
    failure = " max_fails=1 fail_timeout=1s" if next_upstream else ""
    upstream_lines = " ".join(f"server {address}{failure};" for address in servers)
    next_lines = "proxy_next_upstream error timeout http_503;\n" if next_upstream else ""
    listen = f"127.0.0.1:{port} ssl" if tls else f"127.0.0.1:{port}"
    tls_lines = (
        f"ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};\n"
        "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        if tls
        else ""
    )
    auth_lines = (
        f'auth_basic "Registry realm";\n            auth_basic_user_file {htpasswd};\n'
        if htpasswd
        else ""
    )
    # Run as root (CI containers), nginx's workers would switch to "nobody", who cannot read the
    # test's private files; unprivileged, this directive is ignored with a notice.
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    deny_lines = "".join(f"location {path} {{ deny all; }}\n        " for path in deny)
    return f"""\
user {user} {group};
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream docker-registry {{ {upstream_lines} }}
    map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {{
        '' 'registry/2.0';
    }}
    server {{
        listen {listen};
        server_name localhost;
        {tls_lines}
        client_max_body_size 0;
        chunked_transfer_encoding on;
        {deny_lines}location /v2/ {{
            {auth_lines}
            add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;
            proxy_pass http://docker-registry;
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 900;
            {next_lines}
        }}
    }}
}}
"""


@contextmanager
def nginx_proxy(
    prefix: Path,
    upstream: RunningRegistry | Sequence[RunningRegistry],
    *,
    tls: tuple[Path, Path] | None = None,
    htpasswd: Path | None = None,
    verify: bool | str = True,
    deny: Sequence[str] = (),
    next_upstream: bool = False,
) -> Iterator[RunningNginx]:
    """Run Debian's nginx (``/usr/sbin/nginx``, in the foreground) in front of ``upstream`` on
    an ephemeral loopback port; ``tls`` is a (certificate, key) pair for ``listen ... ssl``."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    binary = shutil.which("nginx", path=search) or require_tool("nginx")
    upstreams = [upstream] if isinstance(upstream, RunningRegistry) else list(upstream)
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = prefix / "nginx.conf"
    config_path.write_text(
        nginx_config(
            prefix,
            port,
            [r.host for r in upstreams],
            tls=tls,
            htpasswd=htpasswd,
            deny=deny,
            next_upstream=next_upstream,
        )
    )
    log_path = prefix / "error.log"
    stderr_path = prefix / "stderr.log"
    stderr = stderr_path.open("wb")
    process = subprocess.Popen(
        [
            binary,
            "-e",
            str(log_path),
            "-c",
            str(config_path),
            "-p",
            str(prefix),
            "-g",
            "daemon off;",
        ],
        stdout=stderr,
        stderr=subprocess.STDOUT,
    )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        try:
            _wait_ready(url, process, stderr_path, verify=verify)
        except RuntimeError as exc:
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise RuntimeError(f"{exc}\n{log}") from None
        yield RunningNginx(url=url, process=process, log_path=log_path)
    finally:
        _stop(process)
        stderr.close()
