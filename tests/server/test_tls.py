"""TLS from ``http.tls``: the bundled registry serves HTTPS with the configured certificate."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import RunningRegistry, bundled_registry, require_tool
from tests.helpers.spec import ACCEPT_ALL
from tests.helpers.tls import Pki, make_pki
from tui.imagegen import make_image, push_image, write_oci_layout


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_registry(tmp_path: Path, pki: Pki) -> Iterator[RunningRegistry]:
    config = {
        "version": "0.1",
        "http": {"tls": {"certificate": str(pki.certificate), "key": str(pki.key)}},
    }
    with bundled_registry(tmp_path / "root", config=config, verify=str(pki.ca)) as running:
        yield running


def test_serves_https_with_the_configured_certificate(
    tls_registry: RunningRegistry, pki: Pki
) -> None:
    assert tls_registry.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(pki.ca))
    image = make_image([{"tls": b"secure"}])
    with httpx.Client(base_url=tls_registry.url, verify=context, timeout=30) as client:
        assert client.get("/v2/").status_code == 200
        push_image(client, "secure/app", "v1", image)
        served = client.get("/v2/secure/app/manifests/v1", headers={"Accept": ACCEPT_ALL})
        assert served.content == image.manifest.data


def test_untrusted_certificate_is_rejected_by_clients(tls_registry: RunningRegistry) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_registry.url}/v2/", timeout=10)


def test_plain_http_to_the_tls_port_does_not_serve_content(tls_registry: RunningRegistry) -> None:
    plain = tls_registry.url.replace("https://", "http://")
    try:
        response = httpx.get(f"{plain}/v2/", timeout=10)
    except httpx.TransportError:
        return
    assert response.status_code == 400


def test_skopeo_copies_over_tls_with_the_ca(
    tls_registry: RunningRegistry, pki: Pki, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    image = make_image([{"tls": b"via skopeo"}])
    layout = write_oci_layout(tmp_path / "layout", image, tag="v1")
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes(pki.ca.read_bytes())
    subprocess.run(
        [
            skopeo,
            "copy",
            "--dest-cert-dir",
            str(cert_dir),
            f"oci:{layout}:v1",
            f"docker://{tls_registry.host}/tls/skopeo:v1",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    with httpx.Client(base_url=tls_registry.url, verify=context) as client:
        served = client.get("/v2/tls/skopeo/manifests/v1", headers={"Accept": ACCEPT_ALL})
        assert served.status_code == 200
        assert served.content == image.manifest.data


def test_missing_certificate_file_is_a_clear_start_error(tmp_path: Path) -> None:
    config = {
        "version": "0.1",
        "http": {"tls": {"certificate": str(tmp_path / "no.crt"), "key": str(tmp_path / "no.key")}},
    }
    with pytest.raises(RuntimeError) as failure, bundled_registry(tmp_path / "root", config=config):
        pass
    assert "Traceback" not in str(failure.value)
    assert "no.crt" in str(failure.value) or "certificate" in str(failure.value).lower()
