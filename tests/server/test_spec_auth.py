"""htpasswd (bcrypt) Basic auth as Distribution does it: 401, WWW-Authenticate, reload."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from tests.helpers.servers import RunningRegistry, bundled_registry, require_tool
from tests.helpers.spec import (
    ACCEPT_ALL,
    assert_oci_error,
    client_for,
    digest_of,
    files_under,
)
from tui.imagegen import OCI_MANIFEST, make_image, push_image

REALM = "regtui-test-realm"


def _bcrypt_line(user: str, password: str) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return f"{user}:{hashed}\n"


def _auth_config(htpasswd: Path) -> dict[str, Any]:
    return {
        "version": "0.1",
        "storage": {"delete": {"enabled": True}},
        "auth": {"htpasswd": {"realm": REALM, "path": str(htpasswd)}},
    }


@pytest.fixture
def htpasswd_file(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    tool = require_tool("htpasswd")
    line = subprocess.run(
        [tool, "-Bbn", "alice", "wonderland"], check=True, capture_output=True, text=True
    ).stdout.strip()
    path.write_text(line + "\n" + _bcrypt_line("bob", "builder"))
    return path


@pytest.fixture
def secured(tmp_path: Path, htpasswd_file: Path) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path / "root", config=_auth_config(htpasswd_file)) as running:
        yield running


def _assert_challenge(response: httpx.Response) -> None:
    assert_oci_error(response, 401, "UNAUTHORIZED")
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Basic "), challenge
    assert f'realm="{REALM}"' in challenge, challenge


def test_missing_credentials_get_a_basic_challenge(secured: RunningRegistry) -> None:
    with client_for(secured) as client:
        response = client.get("/v2/")
        _assert_challenge(response)
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        _assert_challenge(client.get("/v2/_catalog"))
        _assert_challenge(client.get("/v2/any/repo/tags/list"))
        _assert_challenge(client.post("/v2/any/repo/blobs/uploads/"))


@pytest.mark.parametrize(
    "credentials",
    [("alice", "wrong"), ("bob", "wonderland"), ("nobody", "builder"), ("alice", "")],
)
def test_wrong_credentials_are_401(secured: RunningRegistry, credentials: tuple[str, str]) -> None:
    before = files_under(secured.root)
    with client_for(secured, auth=credentials) as client:
        _assert_challenge(client.get("/v2/"))
        _assert_challenge(
            client.post("/v2/sneaky/blobs/uploads/?digest=" + digest_of(b"x"), content=b"x")
        )
        image = make_image([{"x": b"x"}])
        _assert_challenge(
            client.put(
                "/v2/sneaky/manifests/v1",
                content=image.manifest.data,
                headers={"Content-Type": OCI_MANIFEST},
            )
        )
    assert files_under(secured.root) == before


def test_garbage_authorization_header_is_401(secured: RunningRegistry) -> None:
    with client_for(secured) as client:
        for value in ("Basic !!!notbase64", "Basic " + "YWxpY2U=", "Bearer abc", "Basic"):
            _assert_challenge(client.get("/v2/", headers={"Authorization": value}))


@pytest.mark.parametrize("credentials", [("alice", "wonderland"), ("bob", "builder")])
def test_right_credentials_push_and_pull(
    secured: RunningRegistry, credentials: tuple[str, str]
) -> None:
    image = make_image([{"secret": b"data"}])
    push_image(secured.url, "private/app", "v1", image, auth=credentials)
    with client_for(secured, auth=credentials) as client:
        assert client.get("/v2/").status_code == 200
        served = client.get("/v2/private/app/manifests/v1", headers={"Accept": ACCEPT_ALL})
        assert served.content == image.manifest.data
        assert client.get("/v2/_catalog").json()["repositories"] == ["private/app"]
    with client_for(secured) as anonymous:
        _assert_challenge(anonymous.get("/v2/private/app/manifests/v1"))
        _assert_challenge(anonymous.get(f"/v2/private/app/blobs/{image.layers[0].digest}"))


def test_htpasswd_file_is_reloaded_when_it_changes(
    secured: RunningRegistry, htpasswd_file: Path
) -> None:
    with client_for(secured, auth=("carol", "newpass")) as carol:
        _assert_challenge(carol.get("/v2/"))
        htpasswd_file.write_text(_bcrypt_line("carol", "newpass"))
        deadline = time.monotonic() + 10
        while carol.get("/v2/").status_code != 200:
            assert time.monotonic() < deadline, "the new htpasswd file was never picked up"
            time.sleep(0.1)
    with client_for(secured, auth=("alice", "wonderland")) as alice:
        _assert_challenge(alice.get("/v2/"))


def test_missing_htpasswd_file_is_a_clear_start_error(tmp_path: Path) -> None:
    config = _auth_config(tmp_path / "does-not-exist")
    try:
        # Distribution creates a file with a random admin password; refusing to start is also
        # fine, but serving without auth is not.
        with (
            bundled_registry(tmp_path / "root", config=config) as running,
            client_for(running) as client,
        ):
            _assert_challenge(client.get("/v2/"))
    except RuntimeError as error:
        assert "Traceback" not in str(error), str(error)
