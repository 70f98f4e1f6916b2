"""TLS from ``http.tls``: the bundled registry serves HTTPS with the configured certificate."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers.servers import RunningRegistry, bundled_registry, require_tool
from tests.server.spec_support import ACCEPT_ALL
from tui.imagegen import make_image, push_image, write_oci_layout


@dataclass
class Pki:
    ca: Path
    certificate: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(directory: Path) -> Pki:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("regtui test CA"))
        .issuer_name(_name("regtui test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return pki


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
