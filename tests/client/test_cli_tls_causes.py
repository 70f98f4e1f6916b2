"""TLS errors name the real cause (issue 20, item 6): certificates made here with
``cryptography`` (tests/helpers/tls.py), served by the bundled registry with ``http.tls``; the
CLI's one line says what is wrong with the certificate and how to fix it, never the ``ssl``
library's text."""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.servers import bundled_registry, server_env
from tests.helpers.tls import Pki, make_pki
from tui.client import RegistryClient, TLSError

pytestmark = pytest.mark.timeout(120)

NOW = datetime.datetime.now(datetime.UTC)


def _tls_config(pki: Pki) -> dict[str, object]:
    return {
        "version": "0.1",
        "http": {"tls": {"certificate": str(pki.certificate), "key": str(pki.key)}},
    }


def _one_line(tmp_path: Path, pki: Pki, *, trust: bool = True) -> str:
    """``regtui ls`` against the bundled registry serving ``pki``'s certificate: the error line."""
    with bundled_registry(tmp_path / "root", config=_tls_config(pki), verify=False) as registry:
        argv = [sys.executable, "-m", "tui", "ls", registry.host, "--timeout", "10"]
        if trust:
            argv += ["--ca-cert", str(pki.ca)]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=server_env({"DOCKER_CONFIG": "/nonexistent-regtui-test"}),
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 1 and done.stdout == "", done
    assert done.stderr.count("\n") == 1, done.stderr
    line = done.stderr
    assert line.startswith(f"regtui: error: The TLS certificate of {registry.host} ")
    assert "SSL" not in line and "[" not in line and "CERTIFICATE_VERIFY_FAILED" not in line
    return line


def test_a_certificate_without_subject_alt_name(tmp_path: Path) -> None:
    """The how-tos' ``openssl req -subj /CN=127.0.0.1``: the CN is right, and ignored."""
    pki = make_pki(tmp_path / "pki", common_name="127.0.0.1", names=None)
    line = _one_line(tmp_path, pki)
    assert "has no subjectAltName, only a common name (CN=127.0.0.1)" in line
    assert "Python (like Go since 1.15) ignores the CN" in line
    assert '-addext "subjectAltName=IP:127.0.0.1"' in line


def test_an_unknown_ca(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    line = _one_line(tmp_path, pki, trust=False)
    assert "is not trusted: it is signed by an unknown CA (regtui test CA)" in line
    assert "pass --ca-cert FILE" in line


def test_an_expired_certificate_says_when(tmp_path: Path) -> None:
    ended = (NOW - datetime.timedelta(days=3)).replace(microsecond=0)
    pki = make_pki(tmp_path / "pki", not_before=NOW - datetime.timedelta(days=10), not_after=ended)
    line = _one_line(tmp_path, pki)
    assert f"expired on {ended:%Y-%m-%d %H:%M:%S} UTC" in line and "renew it" in line


def test_a_certificate_for_other_names_says_which(tmp_path: Path) -> None:
    pki = make_pki(
        tmp_path / "pki", common_name="registry.example", names=("registry.example", "10.9.8.7")
    )
    line = _one_line(tmp_path, pki)
    assert "is issued for registry.example, 10.9.8.7, not 127.0.0.1" in line
    assert '-addext "subjectAltName=IP:127.0.0.1"' in line


async def _through_aiohttp(host: str, ca: Path) -> str:
    async with RegistryClient(host, ca_cert=str(ca), max_retries=0, fast_after=0) as client:
        with pytest.raises(TLSError) as caught:
            await client.catalog()
    return str(caught.value)


def test_aiohttps_transport_names_the_cause_too(tmp_path: Path) -> None:
    """The bulk commands' transport (aiohttp) hands the same failure over."""
    pki = make_pki(tmp_path / "pki", common_name="127.0.0.1", names=None)
    with bundled_registry(tmp_path / "root", config=_tls_config(pki), verify=False) as registry:
        message = asyncio.run(_through_aiohttp(registry.host, pki.ca))
    assert "has no subjectAltName" in message, message
