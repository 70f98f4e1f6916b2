"""WWW-Authenticate parsing and where credentials come from (never leaking a password)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import httpx
import pytest

from tui.client.auth import (
    Credentials,
    credentials_from_docker_config,
    parse_www_authenticate,
    resolve_credentials,
    scope_for_request,
)


def test_parse_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    [challenge] = parse_www_authenticate(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scope == "repository:library/alpine:pull"


def test_parse_several_challenges_and_quoting() -> None:
    header = 'Basic realm="Registry \\"Realm\\", here", Bearer realm=https://x/t,scope="a b"'
    challenges = parse_www_authenticate(header)
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == 'Registry "Realm", here'
    assert challenges[1].realm == "https://x/t"
    assert challenges[1].scope == "a b"


def test_parse_empty_header() -> None:
    assert parse_www_authenticate("") == []


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v2/_catalog", "registry:catalog:*"),
        ("GET", "/v2/a/b/tags/list", "repository:a/b:pull"),
        ("HEAD", "/v2/a/manifests/v1", "repository:a:pull"),
        ("PUT", "/v2/a/manifests/v1", "repository:a:pull,push"),
        ("POST", "/v2/ns/a/blobs/uploads/", "repository:ns/a:pull,push"),
        ("DELETE", "/v2/a/manifests/sha256:00", "repository:a:delete"),
        ("GET", "/v2/ns/a/_regtui/tags", "repository:ns/a:pull"),  # push times: a pull
        ("GET", "/v2/", None),
    ],
)
def test_scope_for_request(method: str, path: str, scope: str | None) -> None:
    assert scope_for_request(httpx.Request(method, f"http://r{path}")) == scope


def test_credentials_never_show_the_password() -> None:
    credentials = Credentials("alice", "s3cret-pass", identity_token="tok-123")
    assert "s3cret-pass" not in repr(credentials)
    assert "tok-123" not in repr(credentials)
    assert credentials.basic_header() == "Basic " + base64.b64encode(b"alice:s3cret-pass").decode()


def test_explicit_then_environment(tmp_path: Path) -> None:
    env = {"REGTUI_USERNAME": "env-user", "REGTUI_PASSWORD": "env-pass"}
    config = tmp_path / "config.json"
    explicit = resolve_credentials("r.io", username="u", password="p", environ=env)
    assert explicit == Credentials("u", "p", source="arguments")
    from_env = resolve_credentials("r.io", environ=env, docker_config=config)
    assert from_env is not None and from_env.username == "env-user"
    assert from_env.source == "environment"
    assert resolve_credentials("r.io", environ={}, docker_config=config) is None


def _write_config(path: Path, data: dict[str, object]) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_docker_config_auths(tmp_path: Path) -> None:
    auth = base64.b64encode(b"bob:pa:ss").decode()
    config = _write_config(
        tmp_path / "config.json",
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": auth},
                "127.0.0.1:5000": {"auth": auth},
            }
        },
    )
    hub = credentials_from_docker_config("docker.io", config)
    assert hub is not None and (hub.username, hub.password) == ("bob", "pa:ss")
    local = resolve_credentials("127.0.0.1:5000", environ={}, docker_config=config)
    assert local is not None and local.password == "pa:ss"
    assert credentials_from_docker_config("other.io", config) is None


def _fake_helper(directory: Path, name: str, secret: str) -> None:
    script = directory / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read server\n"
        f'printf \'{{"ServerURL":"%s","Username":"helper-user","Secret":"{secret}"}}\' "$server"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_cred_helpers_and_creds_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_helper(bin_dir, "one", "from-one")
    _fake_helper(bin_dir, "store", "from-store")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = _write_config(
        tmp_path / "config.json",
        {"credHelpers": {"ghcr.io": "one"}, "credsStore": "store", "auths": {"q.io": {}}},
    )
    ghcr = credentials_from_docker_config("ghcr.io", config)
    assert ghcr is not None and ghcr.password == "from-one"
    assert ghcr.source == "docker-credential-one"
    quay = credentials_from_docker_config("q.io", config)
    assert quay is not None and quay.password == "from-store"


def test_missing_helper_gives_no_credentials(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "config.json", {"credHelpers": {"r.io": "absent-xyz"}})
    assert credentials_from_docker_config("r.io", config) is None


def test_unreadable_config(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    assert credentials_from_docker_config("r.io", bad) is None
    assert credentials_from_docker_config("r.io", tmp_path / "absent.json") is None
