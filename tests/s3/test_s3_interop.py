"""Interop on one bucket: what the bundled registry writes to S3, Debian's docker-registry
(CNCF Distribution 2.8, its s3-aws driver) serves, and the other way round; skopeo copies images
into the S3-backed bundled registry and back unchanged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, distribution_on_s3, registry_config
from tests.helpers.servers import require_tool
from tests.helpers.spec import digest_of, start_upload, with_query
from tui.imagegen import Image, make_image, push_image

pytestmark = [pytest.mark.slow, pytest.mark.interop]
MIB = 1 << 20


def _assert_serves(url: str, repo: str, tag: str, image: Image) -> None:
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as client:
        manifest = client.get(
            f"/v2/{repo}/manifests/{tag}", headers={"Accept": image.manifest.media_type}
        )
        assert manifest.status_code == 200, manifest.text
        assert manifest.content == image.manifest.data
        assert manifest.headers["Docker-Content-Digest"] == image.digest
        for blob in image.blobs():
            got = client.get(f"/v2/{repo}/blobs/{blob.digest}")
            assert got.status_code == 200, (blob.digest, got.text)
            assert got.content == blob.data
        assert client.get(f"/v2/{repo}/tags/list").json() == {"name": repo, "tags": [tag]}


def _chunked_push(client: httpx.Client, repo: str, data: bytes, chunk: int) -> str:
    location = start_upload(client, repo)
    for offset in range(0, len(data), chunk):
        piece = data[offset : offset + chunk]
        response = client.patch(
            location,
            content=piece,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(piece) - 1}",
            },
        )
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
    digest = digest_of(data)
    response = client.put(with_query(location, digest=digest))
    assert response.status_code == 201, response.text
    return digest


def test_both_registries_serve_each_others_pushes(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    s3 = s3_engine.s3_config(bucket)
    ours = make_image([{"ours": b"written by regtui\n"}, {"big": os.urandom(6 * MIB)}])
    theirs = make_image([{"theirs": b"written by distribution\n"}, {"big": os.urandom(7 * MIB)}])
    with (
        bundled_on_s3(tmp_path, registry_config(s3, redirect={"disable": True})) as regtui,
        distribution_on_s3(tmp_path, s3) as distribution,
        httpx.Client(base_url=regtui.url, timeout=60) as to_regtui,
        httpx.Client(base_url=distribution.url, timeout=60) as to_distribution,
    ):
        push_image(to_regtui, "from/regtui", "v1", ours)
        push_image(to_distribution, "from/distribution", "v1", theirs)
        # Chunked blobs across the 5 MiB minimum part, each way.
        data = os.urandom(12 * MIB + 3)
        digest = _chunked_push(to_regtui, "chunked", data, 4 * MIB)
        other = os.urandom(11 * MIB + 1)
        other_digest = _chunked_push(to_distribution, "chunked", other, 6 * MIB)

        _assert_serves(distribution.url, "from/regtui", "v1", ours)
        _assert_serves(regtui.url, "from/distribution", "v1", theirs)
        assert to_distribution.get(f"/v2/chunked/blobs/{digest}").content == data
        assert to_regtui.get(f"/v2/chunked/blobs/{other_digest}").content == other
        expected = ["chunked", "from/distribution", "from/regtui"]
        assert to_regtui.get("/v2/_catalog").json()["repositories"] == expected
        assert to_distribution.get("/v2/_catalog").json()["repositories"] == expected

        # A delete through one is seen by the other.
        assert (
            to_regtui.delete(f"/v2/from/distribution/manifests/{theirs.digest}").status_code == 202
        )
        gone = to_distribution.get(
            f"/v2/from/distribution/manifests/{theirs.digest}",
            headers={"Accept": theirs.manifest.media_type},
        )
        assert gone.status_code == 404


def test_skopeo_copies_into_the_s3_backed_registry_and_back(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    image = make_image([{"etc/os-release": b"ID=regtui\n"}, {"blob": os.urandom(9 * MIB)}])
    source = tmp_path / "source"
    source.mkdir()
    (source / "version").write_text("Directory Transport Version: 1.1\n")
    (source / "manifest.json").write_bytes(image.manifest.data)
    for blob in image.blobs():
        (source / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
    config = registry_config(s3_engine.s3_config(bucket))  # redirects on: skopeo follows them
    with bundled_on_s3(tmp_path, config) as regtui:
        host = regtui.host

        def run(*args: str) -> None:
            result = subprocess.run(
                [skopeo, *args], capture_output=True, text=True, timeout=180, check=False
            )
            assert result.returncode == 0, result.stderr

        run("copy", "--dest-tls-verify=false", f"dir:{source}", f"docker://{host}/copied:v1")
        back = tmp_path / "back"
        run("copy", "--src-tls-verify=false", f"docker://{host}/copied:v1", f"dir:{back}")
    assert (back / "manifest.json").read_bytes() == image.manifest.data
    for blob in image.blobs():
        assert (back / blob.digest.split(":", 1)[1]).read_bytes() == blob.data
