"""skopeo, an outside client, copies real images into the bundled registry and back, unchanged."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.helpers.servers import RunningRegistry, bundled_registry, require_tool
from tui.imagegen import (
    Image,
    Index,
    Pushable,
    make_artifact,
    make_image,
    make_index,
    push_image,
    write_oci_layout,
)

pytestmark = pytest.mark.interop

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def skopeo(*args: str) -> str:
    binary = require_tool("skopeo")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def copy_in(source: str, destination: str, *extra: str) -> None:
    skopeo("copy", "--dest-tls-verify=false", *extra, source, destination)


def copy_out(source: str, destination: str, *extra: str) -> None:
    skopeo("copy", "--src-tls-verify=false", *extra, source, destination)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[RunningRegistry]:
    require_tool("skopeo")
    config = {"version": "0.1", "storage": {"delete": {"enabled": True}}}
    with bundled_registry(tmp_path / "root", config=config) as running:
        yield running


def _assert_dir_holds_image(directory: Path, image: Image) -> None:
    """``skopeo copy ... dir:DIR`` wrote exactly the bytes of ``image``."""
    assert (directory / "manifest.json").read_bytes() == image.manifest.data
    for blob in image.blobs():
        assert (directory / blob.digest.split(":", 1)[1]).read_bytes() == blob.data


def _assert_served(registry: RunningRegistry, repo: str, reference: str, item: Pushable) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        response = client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
        assert response.status_code == 200, response.text
        assert response.content == item.manifest.data
        assert response.headers["Docker-Content-Digest"] == item.digest


def write_dir_layout(directory: Path, image: Image) -> Path:
    """``image`` in skopeo's ``dir:`` format (manifest.json and blobs named by hex digest).

    skopeo's ``oci:`` transport only finds OCI media types in index.json, so Docker schema2
    images go in through ``dir:``.
    """
    directory.mkdir(parents=True)
    (directory / "version").write_text("Directory Transport Version: 1.1\n")
    (directory / "manifest.json").write_bytes(image.manifest.data)
    for blob in image.blobs():
        (directory / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
    return directory


IMAGES = {
    "oci-gzip": lambda: make_image(
        [{"etc/os-release": b"ID=regtui\n"}, {"usr/bin/tool": b"#!/bin/sh\necho hi\n" * 500}]
    ),
    "oci-zstd": lambda: make_image([{"data/file": bytes(range(256)) * 64}], compression="zstd"),
    "docker-schema2": lambda: make_image(
        [{"app/main.py": b"print('hello')\n"}, {"app/lib.py": b"x = 1\n" * 1000}], oci=False
    ),
}


# skopeo's oci: transport does not read Docker media types, so schema2 comes in by dir: only.
COPY_CASES = [
    (kind, transport)
    for kind in sorted(IMAGES)
    for transport in ("oci", "dir")
    if not (kind == "docker-schema2" and transport == "oci")
]


@pytest.mark.parametrize(("kind", "transport"), COPY_CASES)
def test_copy_image_in_and_back_byte_identical(
    served: RunningRegistry, tmp_path: Path, kind: str, transport: str
) -> None:
    image = IMAGES[kind]()
    if transport == "oci":
        source = f"oci:{write_oci_layout(tmp_path / 'layout', image, tag='v1')}:v1"
    else:
        source = f"dir:{write_dir_layout(tmp_path / 'layout', image)}"
    copy_in(source, f"docker://{served.host}/skopeo/{kind}:v1")
    _assert_served(served, f"skopeo/{kind}", "v1", image)
    _assert_served(served, f"skopeo/{kind}", image.digest, image)
    copy_out(f"docker://{served.host}/skopeo/{kind}:v1", f"dir:{tmp_path / 'out'}")
    _assert_dir_holds_image(tmp_path / "out", image)


def test_uncompressed_layers_come_back_unchanged(served: RunningRegistry, tmp_path: Path) -> None:
    """skopeo would gzip a plain tar on the way in, so this one is pushed over plain HTTP."""
    image = make_image([{"plain": b"uncompressed" * 100}], compression="none")
    push_image(served.url, "plain/tar", "v1", image)
    copy_out(f"docker://{served.host}/plain/tar:v1", f"dir:{tmp_path / 'out'}")
    _assert_dir_holds_image(tmp_path / "out", image)


def test_copy_two_platform_index_with_all(served: RunningRegistry, tmp_path: Path) -> None:
    index: Index = make_index(
        [
            make_image([{"arch": b"amd64"}], architecture="amd64"),
            make_image([{"arch": b"arm64"}], architecture="arm64", variant="v8"),
        ]
    )
    layout = write_oci_layout(tmp_path / "layout", index, tag="multi")
    copy_in(f"oci:{layout}:multi", f"docker://{served.host}/multi/arch:multi", "--all")
    _assert_served(served, "multi/arch", "multi", index)
    for child in index.images:
        _assert_served(served, "multi/arch", child.digest, child)

    out = tmp_path / "out"
    copy_out(f"docker://{served.host}/multi/arch:multi", f"dir:{out}", "--all")
    assert (out / "manifest.json").read_bytes() == index.manifest.data
    for child in index.images:
        hex_part = child.digest.split(":", 1)[1]
        assert (out / f"{hex_part}.manifest.json").read_bytes() == child.manifest.data
        for blob in child.blobs():
            assert (out / blob.digest.split(":", 1)[1]).read_bytes() == blob.data

    # and one platform only, which skopeo picks from the index
    single = tmp_path / "single"
    skopeo(
        "--override-arch=arm64",
        "--override-variant=v8",
        "copy",
        "--src-tls-verify=false",
        f"docker://{served.host}/multi/arch:multi",
        f"dir:{single}",
    )
    _assert_dir_holds_image(single, index.images[1])


def test_copy_artifact_with_subject(served: RunningRegistry, tmp_path: Path) -> None:
    image = make_image([{"signed": b"content"}])
    push_image(served.url, "signed/app", "v1", image)
    signature = make_artifact(image, annotations={"dev.regtui.kind": "signature"})
    layout = write_oci_layout(tmp_path / "layout", signature, tag="sig")
    copy_in(f"oci:{layout}:sig", f"docker://{served.host}/signed/app:sig")
    _assert_served(served, "signed/app", "sig", signature)
    with httpx.Client(base_url=served.url) as client:
        referrers = client.get(f"/v2/signed/app/referrers/{image.digest}").json()
    assert [entry["digest"] for entry in referrers["manifests"]] == [signature.digest]
    copy_out(f"docker://{served.host}/signed/app:sig", f"dir:{tmp_path / 'out'}")
    _assert_dir_holds_image(tmp_path / "out", signature)


def test_copy_between_repositories_of_the_registry(served: RunningRegistry, tmp_path: Path) -> None:
    """skopeo mounts blobs across repositories of one registry; nothing is stored twice."""
    image = make_image([{"big": bytes(range(256)) * 4096}])
    push_image(served.url, "from/here", "v1", image)
    blobs_root = served.root / "docker" / "registry" / "v2" / "blobs"
    before = sorted(path for path in blobs_root.rglob("data"))
    copy_in(
        f"docker://{served.host}/from/here:v1",
        f"docker://{served.host}/to/there:v1",
        "--src-tls-verify=false",
    )
    _assert_served(served, "to/there", "v1", image)
    assert sorted(path for path in blobs_root.rglob("data")) == before


def test_list_tags_inspect_and_delete(served: RunningRegistry, tmp_path: Path) -> None:
    image = make_image(
        [{"a": b"a"}, {"b": b"b"}], architecture="arm64", labels={"org.example.team": "regtui"}
    )
    other = make_image([{"c": b"c"}])
    for tag in ("v1", "v1.1", "latest"):
        push_image(served.url, "inspect/me", tag, image)
    push_image(served.url, "inspect/me", "other", other)

    tags = json.loads(
        skopeo("list-tags", "--tls-verify=false", f"docker://{served.host}/inspect/me")
    )
    assert sorted(tags["Tags"]) == ["latest", "other", "v1", "v1.1"]

    details = json.loads(
        skopeo("inspect", "--tls-verify=false", f"docker://{served.host}/inspect/me:v1")
    )
    assert details["Digest"] == image.digest
    assert details["Architecture"] == "arm64"
    assert details["Labels"] == {"org.example.team": "regtui"}
    assert details["Layers"] == [layer.digest for layer in image.layers]
    assert sorted(details["RepoTags"]) == ["latest", "other", "v1", "v1.1"]
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{served.host}/inspect/me:v1")
    assert raw.encode() == image.manifest.data
    config = skopeo(
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        f"docker://{served.host}/inspect/me:v1",
    )
    assert config.encode() == image.config.data

    skopeo("delete", "--tls-verify=false", f"docker://{served.host}/inspect/me:v1")
    with httpx.Client(base_url=served.url) as client:
        gone = client.get(f"/v2/inspect/me/manifests/{image.digest}", headers={"Accept": ACCEPT})
        assert gone.status_code == 404
        left = client.get("/v2/inspect/me/tags/list").json()["tags"]
    # skopeo deletes the manifest by digest: every tag of it goes, the other image stays
    assert left == ["other"]
    _assert_served(served, "inspect/me", "other", other)


def test_copy_with_htpasswd_credentials(tmp_path: Path) -> None:
    """skopeo answers the Basic challenge with --creds; a wrong password is refused."""
    require_tool("skopeo")
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"robot:{hashed}\n")
    config = {
        "version": "0.1",
        "auth": {"htpasswd": {"realm": "skopeo-test", "path": str(htpasswd)}},
    }
    image = make_image([{"private": b"bytes"}])
    layout = write_oci_layout(tmp_path / "layout", image, tag="v1")
    with bundled_registry(tmp_path / "root", config=config) as secured:
        destination = f"docker://{secured.host}/private/app:v1"
        binary = require_tool("skopeo")
        refused = subprocess.run(
            [
                binary,
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds=robot:wrong",
                f"oci:{layout}:v1",
                destination,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert refused.returncode != 0
        assert "unauthorized" in refused.stderr.lower() or "401" in refused.stderr
        copy_in(f"oci:{layout}:v1", destination, "--dest-creds=robot:s3cret")
        copy_out(destination, f"dir:{tmp_path / 'out'}", "--src-creds=robot:s3cret")
        _assert_dir_holds_image(tmp_path / "out", image)
