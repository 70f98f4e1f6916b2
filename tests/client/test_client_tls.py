"""Transport security: a TLS registry on loopback is found without a scheme, verified against
``ca_cert``, refused when unverifiable, accepted with ``insecure``; plain HTTP to a remote host
needs ``insecure``."""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers.servers import distribution_config, free_port, require_tool
from tests.helpers.tls import self_signed
from tui.client import RegistryClient, TLSError
from tui.imagegen import make_image

pytestmark = pytest.mark.usefixtures("each_transport")  # each test on both transports


@contextmanager
def tls_distribution(root: Path, config: dict[str, Any], cert: Path) -> Iterator[str]:
    """docker-registry serving TLS on 127.0.0.1 (the shared helper waits on plain HTTP)."""
    binary = require_tool("docker-registry")
    root.mkdir(parents=True)
    port = free_port()
    config_path = root.parent / "tls-distribution.yml"
    config_path.write_text(yaml.safe_dump(distribution_config(root, port, config)))
    log = (root.parent / "tls-distribution.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config_path)], stdout=log, stderr=log)
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(
                    f"https://{host}/v2/", verify=ssl.create_default_context(cafile=cert), timeout=2
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield host
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.mark.interop
async def test_tls_registry_on_loopback(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    config = {"http": {"tls": {"certificate": str(cert), "key": str(key)}}}
    with tls_distribution(tmp_path / "tls", config, cert) as host:
        image = make_image([{"a": b"1"}])
        async with RegistryClient(host, ca_cert=str(cert)) as client:
            assert client.base_url == f"https://{host}"
            for blob in image.blobs():
                await client.upload_blob("app", blob.data)
            await client.put_manifest("app", "v1", image.manifest.data, image.manifest.media_type)
            assert await client.list_tags("app") == ["v1"]
        async with RegistryClient(host) as unverified:
            with pytest.raises(TLSError, match="--ca-cert"):
                await unverified.list_tags("app")
        async with RegistryClient(host, insecure=True) as insecure:
            assert insecure.base_url == f"https://{host}"
            assert await insecure.list_tags("app") == ["v1"]


def test_plain_http_to_a_remote_host_needs_insecure() -> None:
    with pytest.raises(TLSError, match="--insecure"):
        RegistryClient("http://registry.example:5000")
    assert RegistryClient("http://registry.example:5000", insecure=True).base_url == (
        "http://registry.example:5000"
    )
    assert RegistryClient("registry.example").base_url == "https://registry.example"


def test_unreadable_ca_cert(tmp_path: Path) -> None:
    with pytest.raises(TLSError, match="CA certificate"):
        RegistryClient("registry.example", ca_cert=str(tmp_path / "absent.pem"))
