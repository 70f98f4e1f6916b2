"""The configuration as a running server shows it: read-only mode, delete disabled, extra
headers, health, upload purging, schema1 served read-only, one-line startup errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.layout import LayoutWriter, digest_of
from tests.helpers.servers import bundled_registry, distribution_registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def seed_image(root: Path, name: str = "app", tag: str = "v1") -> str:
    """Write a small image straight into the layout; return the manifest digest."""
    storage = LayoutWriter(root)
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = b"layer bytes"
    for data in (config, layer):
        storage.link(name, storage.blob(data))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [{"mediaType": "x", "digest": digest_of(layer), "size": len(layer)}],
        }
    ).encode()
    return storage.put(name, manifest, tag)


def assert_unsupported(response: httpx.Response) -> None:
    assert response.status_code == 405, response.text
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_read_only_refuses_every_write_and_serves_reads(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    digest = seed_image(root)
    before = sorted(p for p in root.rglob("*"))
    with (
        bundled_registry(root, args=["--read-only"]) as registry,
        httpx.Client(base_url=registry.url) as client,
    ):
        assert client.get("/v2/app/manifests/v1").status_code == 200
        assert client.get("/v2/app/tags/list").json()["tags"] == ["v1"]
        assert_unsupported(client.post("/v2/app/blobs/uploads/"))
        assert_unsupported(client.put("/v2/app/manifests/v2", content=b"{}"))
        assert_unsupported(client.delete(f"/v2/app/manifests/{digest}"))
        assert_unsupported(client.delete("/v2/app/manifests/v1"))
        assert_unsupported(client.patch("/v2/app/blobs/uploads/x", content=b"x"))
    assert sorted(p for p in root.rglob("*")) == before


def test_delete_disabled_answers_405(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    digest = seed_image(root)
    config = {"storage": {"delete": {"enabled": False}}}
    with (
        bundled_registry(root, config=config) as registry,
        httpx.Client(base_url=registry.url) as client,
    ):
        assert_unsupported(client.delete(f"/v2/app/manifests/{digest}"))
        assert_unsupported(client.delete("/v2/app/manifests/v1"))
        layer = digest_of(b"layer bytes")
        assert_unsupported(client.delete(f"/v2/app/blobs/{layer}"))
        assert client.get("/v2/app/manifests/v1").status_code == 200
        # pushes still work
        assert client.post("/v2/app/blobs/uploads/").status_code == 202


def test_configured_headers_and_health(tmp_path: Path) -> None:
    config = {"http": {"headers": {"X-Content-Type-Options": ["nosniff"], "X-Two": ["a", "b"]}}}
    with bundled_registry(tmp_path / "registry", config=config) as registry:
        response = httpx.get(f"{registry.url}/v2/")
        assert response.status_code == 200 and response.json() == {}
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers.get_list("X-Two") == ["a", "b"]
        health = httpx.get(f"{registry.url}/health")
        assert health.status_code == 200 and health.json() == {}
        v2 = registry.root / "docker" / "registry" / "v2"
        v2.rename(v2.with_name("v2-away"))  # the storage vanishes (an unmounted volume)
        try:
            unhealthy = httpx.get(f"{registry.url}/health")
            assert unhealthy.status_code == 503
            assert "storagedriver_filesystem" in unhealthy.json()
        finally:
            v2.with_name("v2-away").rename(v2)
        assert httpx.get(f"{registry.url}/health").status_code == 200


def test_stale_uploads_are_purged_in_the_background(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    storage = LayoutWriter(root)
    stale = storage.upload("app", startedat="2020-01-01T00:00:00Z")
    stale_dir = storage.layout.upload_dir("app", stale)
    config = {
        "storage": {
            "maintenance": {"uploadpurging": {"enabled": True, "age": "1h", "interval": "1s"}}
        }
    }
    with (
        bundled_registry(root, config=config) as registry,
        httpx.Client(base_url=registry.url) as client,
    ):
        fresh = client.post("/v2/app/blobs/uploads/").headers["Docker-Upload-UUID"]
        deadline = time.monotonic() + 15
        while stale_dir.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not stale_dir.exists()
        assert client.get(f"/v2/app/blobs/uploads/{fresh}").status_code == 204


SCHEMA1 = json.dumps(
    {
        "schemaVersion": 1,
        "name": "old",
        "tag": "legacy",
        "architecture": "amd64",
        "fsLayers": [],
        "history": [],
        "signatures": [{"header": {}, "signature": "x", "protected": "y"}],
    },
    indent=3,
).encode()


def test_schema1_on_disk_is_served_read_only(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    digest = LayoutWriter(root).put("old", SCHEMA1, "legacy")
    with bundled_registry(root) as registry, httpx.Client(base_url=registry.url) as client:
        response = client.get("/v2/old/manifests/legacy")
        assert response.status_code == 200
        assert response.content == SCHEMA1
        assert response.headers["Content-Type"] == (
            "application/vnd.docker.distribution.manifest.v1+prettyjws"
        )
        assert response.headers["Docker-Content-Digest"] == digest
        refused = client.put(
            "/v2/old/manifests/again",
            content=SCHEMA1,
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+json"},
        )
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["code"] == "MANIFEST_INVALID"
        assert client.get("/v2/old/tags/list").json()["tags"] == ["legacy"]


def run_server(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embedded_registry", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_server("--root", str(tmp_path / "r"), "--addr", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"registry: error: address 127.0.0.1:{port} is already in use"
    ]


def test_unusable_root_and_bad_config_are_one_line_errors(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = run_server("--root", str(not_a_dir), "--addr", "127.0.0.1:0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "storage root" in lines[0], result.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("storage:\n  delete:\n    enabled: perhaps\n")
    result = run_server("--config", str(bad), "--root", str(tmp_path / "r"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "registry: error: bad value for storage.delete.enabled: 'perhaps' is not true or false"
    ]
    missing_htpasswd = tmp_path / "auth.yml"
    missing_htpasswd.write_text(
        f"auth:\n  htpasswd:\n    realm: r\n    path: {tmp_path / 'nope'}\n"
    )
    result = run_server("--config", str(missing_htpasswd), "--root", str(tmp_path / "r"))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "htpasswd" in result.stderr


def test_regtui_serve_is_the_same_server(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tui", "serve", "--root", str(tmp_path / "f"), "--log-level", "x"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2  # argparse usage error
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui",
            "serve",
            "--root",
            str(tmp_path / "r"),
            "--addr",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        assert httpx.get(f"{url}/v2/").status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


def test_distribution_starts_with_regtuis_section_in_its_config(tmp_path: Path) -> None:
    """Operators share one config.yml between regtui and Debian's docker-registry."""
    section = {"regtui": {"extensions": {"enabled": True, "admins": ["alice"]}}}
    with distribution_registry(tmp_path / "root", config=section) as running:
        assert httpx.get(f"{running.url}/v2/").status_code == 200
        config_text = (tmp_path / "root-distribution.yml").read_text()
        assert "regtui" in config_text and "admins" in config_text
