"""One data directory, two registries: Distribution's layout is read and written both ways.

A directory written by Debian's ``docker-registry`` (CNCF Distribution 2.8) is served by the
bundled registry with the same digests and bytes, and a directory written by the bundled registry
is served by ``docker-registry`` the same way.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import (
    RunningRegistry,
    bundled_registry,
    distribution_registry,
    require_tool,
)
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
DELETE_ON = {"version": "0.1", "storage": {"delete": {"enabled": True}}}


@dataclass
class Content:
    """What was pushed: (repo, tag or None, item), to check against any registry."""

    pushed: list[tuple[str, str | None, Pushable]] = field(default_factory=list)

    def repositories(self) -> list[str]:
        return sorted({repo for repo, _, _ in self.pushed})

    def tags(self, repo: str) -> list[str]:
        return sorted({tag for name, tag, _ in self.pushed if name == repo and tag is not None})


def _images() -> tuple[Image, Index, Image, Image]:
    single = make_image(
        [{"etc/motd": b"hello from the interop test\n"}, {"bin/app": bytes(range(256)) * 300}]
    )
    index = make_index(
        [
            make_image([{"arch": b"amd64"}], architecture="amd64"),
            make_image([{"arch": b"arm64"}], architecture="arm64"),
        ]
    )
    docker = make_image([{"docker": b"schema2"}], oci=False)
    return single, index, docker, make_artifact(single)


def skopeo_copy(source: str, destination: str, *extra: str) -> None:
    binary = require_tool("skopeo")
    result = subprocess.run(
        [
            binary,
            "copy",
            "--dest-tls-verify=false",
            "--src-tls-verify=false",
            *extra,
            source,
            destination,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _populate(registry: RunningRegistry, tmp_path: Path) -> Content:
    """Push through skopeo (chunked PATCH uploads, cross-repo mounts) and plain HTTP."""
    single, index, docker, artifact = _images()
    content = Content()
    layout = write_oci_layout(tmp_path / "single-layout", single, tag="v1")
    skopeo_copy(f"oci:{layout}:v1", f"docker://{registry.host}/interop/single:v1")
    content.pushed.append(("interop/single", "v1", single))
    skopeo_copy(
        f"docker://{registry.host}/interop/single:v1", f"docker://{registry.host}/mounted:copy"
    )
    content.pushed.append(("mounted", "copy", single))
    layout = write_oci_layout(tmp_path / "index-layout", index, tag="multi")
    skopeo_copy(f"oci:{layout}:multi", f"docker://{registry.host}/interop/multi:multi", "--all")
    content.pushed.append(("interop/multi", "multi", index))
    push_image(registry.url, "docker/schema2", "latest", docker)
    push_image(registry.url, "docker/schema2", "1.0", docker)
    content.pushed += [("docker/schema2", "latest", docker), ("docker/schema2", "1.0", docker)]
    push_image(registry.url, "interop/single", None, artifact)
    content.pushed.append(("interop/single", None, artifact))
    return content


def _assert_serves(registry: RunningRegistry, content: Content, tmp_path: Path) -> None:
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        catalog = client.get("/v2/_catalog").json()["repositories"]
        assert sorted(catalog) == content.repositories()
        for repo in content.repositories():
            tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
            assert sorted(tags) == content.tags(repo)
        for repo, tag, item in content.pushed:
            children = item.images if isinstance(item, Index) else ()
            for manifest_owner in (item, *children):
                for reference in [manifest_owner.digest] + (
                    [tag] if tag and manifest_owner is item else []
                ):
                    response = client.get(
                        f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT}
                    )
                    assert response.status_code == 200, (repo, reference, response.text)
                    assert response.content == manifest_owner.manifest.data
                    assert response.headers["Docker-Content-Digest"] == manifest_owner.digest
                    assert response.headers["Content-Type"] == manifest_owner.manifest.media_type
            for blob in item.blobs():
                response = client.get(f"/v2/{repo}/blobs/{blob.digest}")
                assert response.status_code == 200, (repo, blob.digest)
                assert response.content == blob.data
                head = client.head(f"/v2/{repo}/blobs/{blob.digest}")
                assert int(head.headers["Content-Length"]) == blob.size
    # and an outside client agrees
    out = tmp_path / f"out-{registry.url.rsplit(':', 1)[1]}"
    skopeo_copy(f"docker://{registry.host}/interop/multi:multi", f"dir:{out}", "--all")
    index = next(item for _, _, item in content.pushed if isinstance(item, Index))
    assert (out / "manifest.json").read_bytes() == index.manifest.data


def _blob_paths(root: Path) -> set[str]:
    blobs = root / "docker" / "registry" / "v2" / "blobs"
    return {str(path.relative_to(root)) for path in blobs.rglob("data")}


def test_directory_written_by_distribution_is_served_by_the_bundled_registry(
    tmp_path: Path,
) -> None:
    root = tmp_path / "shared"
    with distribution_registry(root) as distribution:
        content = _populate(distribution, tmp_path)
        _assert_serves(distribution, content, tmp_path)
    blobs_before = _blob_paths(root)
    with bundled_registry(root, config=DELETE_ON) as ours:
        _assert_serves(ours, content, tmp_path)
        # and it can keep writing into that directory: delete a tag, push another image
        with httpx.Client(base_url=ours.url) as client:
            assert client.delete("/v2/docker/schema2/manifests/1.0").status_code == 202
        extra = make_image([{"added": b"by regtui"}])
        push_image(ours.url, "interop/single", "v2", extra)
    assert _blob_paths(root) >= blobs_before
    with (
        distribution_registry(root) as distribution,
        httpx.Client(base_url=distribution.url) as client,
    ):
        assert client.get("/v2/docker/schema2/tags/list").json()["tags"] == ["latest"]
        served = client.get("/v2/interop/single/manifests/v2", headers={"Accept": ACCEPT})
        assert served.content == extra.manifest.data


def test_directory_written_by_the_bundled_registry_is_served_by_distribution(
    tmp_path: Path,
) -> None:
    root = tmp_path / "shared"
    with bundled_registry(root, config=DELETE_ON) as ours:
        content = _populate(ours, tmp_path)
        _assert_serves(ours, content, tmp_path)
    with distribution_registry(root) as distribution:
        _assert_serves(distribution, content, tmp_path)
        with httpx.Client(base_url=distribution.url) as client:
            single = next(item for repo, tag, item in content.pushed if tag == "v1")
            deleted = client.delete(f"/v2/mounted/manifests/{single.digest}")
            assert deleted.status_code == 202
    with (
        bundled_registry(root, config=DELETE_ON) as ours,
        httpx.Client(base_url=ours.url) as client,
    ):
        assert client.get(f"/v2/mounted/manifests/{single.digest}").status_code == 404
        assert client.get("/v2/mounted/manifests/copy").status_code == 404
        assert client.get(f"/v2/interop/single/manifests/{single.digest}").status_code == 200


def test_distribution_garbage_collect_accepts_our_directory(tmp_path: Path) -> None:
    """``registry garbage-collect`` reads every link we wrote and finds nothing to remove."""
    binary = require_tool("docker-registry")
    root = tmp_path / "shared"
    with bundled_registry(root, config=DELETE_ON) as ours:
        _populate(ours, tmp_path)
    config = tmp_path / "gc.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n"
        "http:\n  addr: 127.0.0.1:0\n"
    )
    before = _blob_paths(root)
    result = subprocess.run(
        [binary, "garbage-collect", str(config)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _blob_paths(root) == before, result.stdout
