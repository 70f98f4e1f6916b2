"""The client finds HTTPS behind Debian's nginx on loopback, the how-tos' setup (issue 11, item 4).

nginx terminates TLS with a self-signed certificate (made here with ``cryptography``) on an
ephemeral loopback port and proxies to the bundled registry. A client given the bare
``127.0.0.1:PORT`` must detect HTTPS (nginx answers a plain request with 400 "The plain HTTP
request was sent to HTTPS port"), ``--ca-cert`` must imply HTTPS, and every mismatch must be
one sentence with the right advice, never the ``ssl`` library's text.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import RunningRegistry, free_port, in_ci
from tests.helpers.tls import self_signed
from tui.client import RegistryClient, TLSError
from tui.imagegen import make_image

pytestmark = pytest.mark.interop

NGINX = "/usr/sbin/nginx"
WORKTREE = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_docker_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer's credentials or settings reach these servers."""
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    for name in ("REGTUI_USERNAME", "REGTUI_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def require_nginx() -> str:
    """Debian's nginx (in /usr/sbin, off a user's PATH); skip without it, fail under CI."""
    if os.access(NGINX, os.X_OK):
        return NGINX
    message = f"{NGINX} is not installed (bash .ci/run installs it)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class TlsProxy:
    host: str
    """``127.0.0.1:PORT`` of nginx's TLS listener."""
    cert: Path


def nginx_config(prefix: Path, port: int, upstream: str, cert: Path, key: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers may read the test's files
    temp = "\n".join(
        f"  {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
error_log {prefix / "error.log"} info;
pid {prefix / "nginx.pid"};
events {{ worker_connections 64; }}
http {{
  access_log {prefix / "access.log"};
{temp}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    client_max_body_size 0;
    chunked_transfer_encoding on;
    location /v2/ {{
      proxy_pass http://{upstream};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 900;
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""


@pytest.fixture
def tls_proxy(registry: RunningRegistry, tmp_path: Path) -> Iterator[TlsProxy]:
    nginx = require_nginx()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    cert, key = self_signed(tmp_path)
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(prefix, port, registry.host, cert, key))
    log = (prefix / "stderr.log").open("wb")
    process = subprocess.Popen(
        [nginx, "-c", str(config), "-p", str(prefix), "-g", "daemon off;"],
        stdout=log,
        stderr=log,
    )
    host = f"127.0.0.1:{port}"
    try:
        context = ssl.create_default_context(cafile=cert)
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"https://{host}/v2/", verify=context, timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "nginx did not start:\n" + (prefix / "stderr.log").read_text()
                    ) from None
                time.sleep(0.05)
        yield TlsProxy(host, cert)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


async def test_https_is_detected_behind_nginx_on_loopback(tls_proxy: TlsProxy) -> None:
    async with httpx.AsyncClient(timeout=5) as raw:
        plain = await raw.get(f"http://{tls_proxy.host}/v2/")
    assert plain.status_code == 400 and "plain HTTP request was sent to HTTPS port" in plain.text

    image = make_image([{"etc/hostname": b"behind nginx\n"}])
    async with RegistryClient(tls_proxy.host, insecure=True) as client:
        assert client.base_url == f"https://{tls_proxy.host}"  # not the plain HTTP of loopback
        for blob in image.blobs():
            await client.upload_blob("app", blob.data)
        await client.put_manifest("app", "v1", image.manifest.data, image.manifest.media_type)
        assert await client.list_tags("app") == ["v1"]

    async with RegistryClient(tls_proxy.host, ca_cert=str(tls_proxy.cert)) as client:
        assert client.base_url == f"https://{tls_proxy.host}"
        result = await client.get_manifest("app", "v1")
        assert result.digest == image.digest


async def test_an_unknown_ca_behind_nginx_asks_for_ca_cert(tls_proxy: TlsProxy) -> None:
    async with RegistryClient(tls_proxy.host, max_retries=0) as client:
        assert client.base_url == f"https://{tls_proxy.host}"
        with pytest.raises(TLSError) as caught:
            await client.list_tags("app")
    message = str(caught.value)
    assert "pass --ca-cert FILE" in message and tls_proxy.host in message
    assert "SSL" not in message and "CERTIFICATE_VERIFY_FAILED" not in message
    assert "[" not in message and message.count("\n") == 0


async def test_plain_http_named_for_nginx_tls_says_use_https(tls_proxy: TlsProxy) -> None:
    async with RegistryClient(f"http://{tls_proxy.host}", max_retries=0) as client:
        with pytest.raises(TLSError) as caught:
            await client.list_tags("app")
    assert str(caught.value) == (
        f"{tls_proxy.host} speaks HTTPS, not plain HTTP: name it https://{tls_proxy.host} "
        "(or without a scheme), not http://."
    )


def test_ca_cert_with_an_http_scheme_is_a_contradiction(tls_proxy: TlsProxy) -> None:
    with pytest.raises(TLSError, match="--ca-cert is for HTTPS"):
        RegistryClient(f"http://{tls_proxy.host}", ca_cert=str(tls_proxy.cert))


def test_the_cli_reaches_nginx_tls_with_ca_cert(tls_proxy: TlsProxy, tmp_path: Path) -> None:
    image = make_image([{"a": b"1"}])

    async def push() -> None:
        async with RegistryClient(tls_proxy.host, ca_cert=str(tls_proxy.cert)) as client:
            for blob in image.blobs():
                await client.upload_blob("cli", blob.data)
            await client.put_manifest("cli", "v7", image.manifest.data, image.manifest.media_type)

    asyncio.run(push())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGTUI_", "REGISTRY_"))}
    env["DOCKER_CONFIG"] = str(tmp_path / "no-docker-config")

    def regtui(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tui", *argv],
            capture_output=True,
            text=True,
            cwd=WORKTREE,
            env=env,
            timeout=120,
            check=False,
        )

    done = regtui("tags", f"{tls_proxy.host}/cli", "--ca-cert", str(tls_proxy.cert))
    assert done.returncode == 0, done.stderr
    assert "v7" in done.stdout
    refused = regtui("tags", f"{tls_proxy.host}/cli")
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ca-cert FILE" in lines[0], refused.stderr
