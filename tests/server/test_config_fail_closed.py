"""A config.yml whose ``auth``, ``storage``, ``http.tls`` or ``proxy`` cannot be honoured exactly
stops the server at start: one line on stderr, a non-zero exit, nothing listening, no storage
created. Run as the operator runs it, ``regtui serve --config FILE`` (and ``python -m
embedded_registry``) in a real process.

Before this, each of these configs started a registry (with a warning at most) that served
anonymously, or served the default root, or ``./5``, or plain HTTP.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import free_port, server_env

pytestmark = pytest.mark.timeout(60)

# (config.yml text, a piece of the one line the server must print)
REFUSED: list[tuple[str, str]] = [
    # auth: a method regtui cannot honour, misspelled, of the wrong type, or two of them
    ("auth:\n  htpassword:\n    realm: r\n    path: /etc/htpasswd\n", "auth.htpassword"),
    ("auth: htpasswd\n", "auth must be a mapping"),
    ("auth:\n  silly:\n    realm: r\n    service: s\n", "auth.silly"),
    ("auth:\n  htpasswd:\n    realm: r\n    pth: /etc/htpasswd\n", "auth.htpasswd"),
    ("auth:\n  token:\n    realm: https://auth/token\n    service: registry\n", "issuer"),
    (
        "auth:\n  htpasswd: {realm: r, path: /etc/htpasswd}\n"
        "  token: {realm: r, service: s, issuer: i, rootcertbundle: /c.pem}\n",
        "exactly one authentication method",
    ),
    ("auth:\n", "auth is empty"),
    ("auth:\n  htpasswd:\n", "auth.htpasswd is empty"),
    (
        "auth:\n  token: {realm: r, service: s, issuer: i, rootcertbundle: /c.pem, "
        "autoredirect: maybe}\n",
        "auth.token.autoredirect",
    ),
    # storage: the wrong type, an unknown driver or key, two drivers, a path that is no string
    ("storage: []\n", "storage must be a mapping, not a list"),
    ("storage: s3\n", "storage must be a mapping"),
    ("storage:\n", "storage is empty"),
    ("storage:\n  filesytem:\n    rootdirectory: /srv/registry\n", "storage.filesytem"),
    ("storage:\n  filesystem:\n    rootdirectory: 5\n", "rootdirectory"),
    ("storage:\n  filesystem:\n    rootdirectory: ''\n", "rootdirectory"),
    ("storage:\n  filesystem:\n    maxthreads: 100\n", "needs a rootdirectory"),
    (
        "storage:\n  filesystem: {rootdirectory: /srv/a}\n  s3: {bucket: b, region: r}\n",
        "exactly one storage driver",
    ),
    ("storage:\n  gcs:\n    bucket: b\n", "storage.gcs"),
    ("storage:\n  s3: {bucket: b, region: r, sessiontoken: t}\n", "storage.s3.sessiontoken"),
    ("storage:\n  delete: true\n", "storage.delete must be a mapping"),
    # botocore's two-line "Invalid bucket name" (after a misleading "cannot reach") before
    ("storage:\n  s3: {bucket: 'bad bucket!', region: us-east-1}\n", "storage.s3.bucket"),
    ("storage:\n  maintenance:\n    readonly: {enabld: true}\n", "readonly.enabld"),
    # http: the wrong type; TLS settings regtui cannot honour
    ("http: x\n", "http must be a mapping"),
    ("http:\n  tls:\n", "http.tls is empty"),
    ("http:\n  tls: {certificate: '', key: /k.pem}\n", "http.tls.certificate"),
    ("http:\n  tls: {certificate: /c.pem, key: /k.pem, clientcas: [/ca.pem]}\n", "clientcas"),
    ("http:\n  tls: {certificate: /c.pem}\n", "http.tls needs both"),
    # proxy (a pull-through cache): honoured exactly, so a malformed one is refused
    ("proxy:\n  remoteurl: ftp://registry-1.docker.io\n", "proxy.remoteurl"),
    ("proxy:\n  remoteurl: https://r.example\n  exec: {command: helper}\n", "proxy.exec"),
    ("proxy:\n  remoteurl: https://r.example\n  username: u\n", "both username and password"),
    ("proxy:\n  username: u\n  password: p\n", "proxy needs remoteurl"),
    ("proxy:\n  remoteurl: https://u:p@r.example\n", "not in the URL"),
    (
        "regtui:\n  proxy:\n  - {namespace: hub, remoteurl: https://r.example, ttl: 1h, tls: x}\n",
        "unknown key tls",
    ),
    ("regtui:\n  proxy:\n  - {namespace: hub, remoteurl: 'https://r.example/v2'}\n", "base URL"),
    ("regtui:\n  proxy:\n  - {namespace: Hub!, remoteurl: https://r.example}\n", "namespace"),
    (
        "regtui:\n  proxy:\n  - {namespace: hub, remoteurl: https://a.example}\n"
        "  - {namespace: hub, remoteurl: https://b.example}\n",
        "namespace hub is configured twice",
    ),
    (
        "regtui:\n  proxy:\n  - {namespace: hub, remoteurl: https://a.example}\n"
        "  - {namespace: hub/x, remoteurl: https://b.example}\n",
        "overlaps",
    ),
    ("regtui:\n  proxy: {namespace: hub, remoteurl: https://a.example}\n", "regtui.proxy"),
    ("log: 5\n", "log must be a mapping"),
]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _start(command: list[str], config: Path, tmp_path: Path, **env: str) -> tuple[int, str, str]:
    """Run the server on a free port; return (exit code, stdout, stderr), checking that nothing
    listens on that port afterwards (a server that started would still be running)."""
    port = free_port()
    data_home = tmp_path / "data-home"
    process = subprocess.Popen(
        [*command, "--config", str(config), "--addr", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(
            {"XDG_DATA_HOME": str(data_home), "REGTUI_ADMIN_DIR": str(tmp_path / "admin"), **env}
        ),
    )
    try:
        stdout, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        serving = _listening(port)
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"the server kept running (listening: {serving}): {stdout} {stderr}")
    assert not _listening(port)
    # The default storage root (another registry's images) was not even created.
    assert not (data_home / "regtui").exists()
    return process.returncode, stdout, stderr


def _assert_one_line(code: int, stdout: str, stderr: str, prog: str, expected: str) -> None:
    assert code != 0, (stdout, stderr)
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{prog}: error: "), stderr
    assert expected in lines[0], stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(("text", "expected"), REFUSED, ids=[t for t, _ in REFUSED])
def test_regtui_serve_refuses_a_config_it_cannot_honour(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(text)
    code, stdout, stderr = _start([sys.executable, "-m", "tui", "serve"], config, tmp_path)
    _assert_one_line(code, stdout, stderr, "regtui", expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auth:\n  token:\n    realm: https://auth/token\n    service: registry\n", "issuer"),
        ("storage: s3\n", "storage must be a mapping"),
        ("proxy:\n  remoteurl: ftp://registry-1.docker.io\n", "proxy.remoteurl"),
    ],
)
def test_python_m_embedded_registry_refuses_it_too(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(text)
    code, stdout, stderr = _start([sys.executable, "-m", "embedded_registry"], config, tmp_path)
    _assert_one_line(code, stdout, stderr, "registry", expected)


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("REGISTRY_AUTH_HTPASSWORD_PATH", "REGISTRY_AUTH_HTPASSWORD_PATH"),
        ("REGISTRY_PROXY_REMOTEUR", "REGISTRY_PROXY_REMOTEUR"),
        ("REGISTRY_PROXY_REMOTEURL", "proxy.remoteurl"),
        ("REGISTRY_STORAGE_S3_SESSIONTOKEN", "REGISTRY_STORAGE_S3_SESSIONTOKEN"),
    ],
)
def test_a_misspelled_guarded_environment_variable_is_refused(
    tmp_path: Path, variable: str, expected: str
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'root'}\n")
    code, stdout, stderr = _start(
        [sys.executable, "-m", "tui", "serve"], config, tmp_path, **{variable: "x"}
    )
    _assert_one_line(code, stdout, stderr, "regtui", expected)
    assert not (tmp_path / "root").exists()


def test_rootdirectory_5_does_not_serve_dot_5(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("storage:\n  filesystem:\n    rootdirectory: 5\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    process = subprocess.run(
        [sys.executable, "-m", "tui", "serve", "--config", str(config), "--addr", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=cwd,
        env=server_env({"REGTUI_ADMIN_DIR": str(tmp_path / "admin")}),
    )
    _assert_one_line(process.returncode, process.stdout, process.stderr, "regtui", "rootdirectory")
    assert list(cwd.iterdir()) == []


def test_unknown_keys_elsewhere_still_only_warn(tmp_path: Path) -> None:
    """Keys that guard neither data nor access keep Distribution's leniency (a warning)."""
    config = tmp_path / "config.yml"
    config.write_text(
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'root'}\n"
        "  cache:\n    blobdescriptor: inmemory\n"
        "http:\n  secret: s\nlog:\n  fields:\n    service: registry\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "serve", "--config", str(config), "--addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env({"REGTUI_ADMIN_DIR": str(tmp_path / "admin")}),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        # Answered after the start-up lines (warnings included) are written.
        assert httpx.get(line.removeprefix("listening on ").strip() + "/v2/").status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "ignoring unsupported config key http.secret" in stderr
    assert "ignoring unsupported config key storage.cache.blobdescriptor" in stderr


def test_storage_tools_ignore_what_only_a_server_uses(tmp_path: Path) -> None:
    """``regtui du --config`` on a pull-through cache's config.yml (with token auth and TLS it
    cannot load) reads the storage; a storage section it cannot honour still stops it."""
    root = tmp_path / "root"
    (root / "docker" / "registry" / "v2" / "blobs").mkdir(parents=True)
    (root / "docker" / "registry" / "v2" / "repositories").mkdir(parents=True)
    config = tmp_path / "config.yml"
    config.write_text(
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n"
        "proxy:\n  remoteurl: https://registry-1.docker.io\n"
        "auth:\n  silly: {realm: r, service: s}\n"
        "http:\n  tls: {letsencrypt: {email: ops@example.com}}\n"
    )
    env = server_env({"REGTUI_ADMIN_DIR": str(tmp_path / "admin")})
    du = [sys.executable, "-m", "tui", "du", "--config", str(config)]
    result = subprocess.run(du, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "total: 0 B" in result.stdout
    config.write_text("storage: []\nproxy:\n  remoteurl: https://registry-1.docker.io\n")
    refused = subprocess.run(du, capture_output=True, text=True, timeout=60, env=env)
    _assert_one_line(
        refused.returncode, refused.stdout, refused.stderr, "regtui", "storage must be a mapping"
    )
