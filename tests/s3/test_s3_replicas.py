"""Several bundled registries on one bucket share every upload: a chunked upload started on one
replica goes on and finishes on another (its state is the S3 multipart upload, never one
process's memory), also after the first replica is killed with SIGKILL mid-upload."""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.server.spec_support import digest_of, start_upload, upload_offset, with_query
from tui.imagegen import make_image, push_image

pytestmark = pytest.mark.slow
MIB = 1 << 20


def _patch(client: httpx.Client, location: str, data: bytes, offset: int) -> httpx.Response:
    return client.patch(
        location,
        content=data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(data) - 1}",
        },
    )


def _path_of(location: str) -> str:
    """The upload URL without the replica's origin: the same path works on any replica."""
    return "/" + location.split("://", 1)[1].split("/", 1)[1] if "://" in location else location


def test_upload_started_on_one_replica_finishes_on_another(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    data = os.urandom(13 * MIB + 5)
    cut = [0, 3 * MIB, 9 * MIB, 11 * MIB, len(data)]
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
        httpx.Client(base_url=one.url, timeout=60) as first,
        httpx.Client(base_url=two.url, timeout=60) as second,
    ):
        path = _path_of(start_upload(first, "shared"))
        # Alternate replicas chunk by chunk: each sees the bytes the other one wrote.
        for index, (start, end) in enumerate(itertools.pairwise(cut)):
            client = (first, second)[index % 2]
            other = (first, second)[(index + 1) % 2]
            response = _patch(client, path, data[start:end], start)
            assert response.status_code == 202, response.text
            status = other.get(path)
            assert status.status_code == 204 and upload_offset(status) == end - 1
        digest = digest_of(data)
        done = second.put(with_query(path, digest=digest))
        assert done.status_code == 201, done.text
        assert first.get(f"/v2/shared/blobs/{digest}").content == data

        image = make_image([{"x": b"y"}])
        push_image(first, "shared", "latest", image)
        got = second.get(
            "/v2/shared/manifests/latest", headers={"Accept": image.manifest.media_type}
        )
        assert got.content == image.manifest.data
        assert second.get("/v2/_catalog").json() == {"repositories": ["shared"]}


def test_upload_survives_the_kill_of_its_replica(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    data = os.urandom(7 * MIB)
    with bundled_on_s3(tmp_path, config, name="survivor") as survivor:
        with (
            bundled_on_s3(tmp_path, config, name="victim") as victim,
            httpx.Client(base_url=victim.url, timeout=60) as client,
        ):
            path = _path_of(start_upload(client, "crash"))
            assert _patch(client, path, data[: 6 * MIB], 0).status_code == 202
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait(timeout=10)
        with httpx.Client(base_url=survivor.url, timeout=60) as client:
            status = client.get(path)
            assert status.status_code == 204 and upload_offset(status) == 6 * MIB - 1
            assert _patch(client, path, data[6 * MIB :], 6 * MIB).status_code == 202
            digest = digest_of(data)
            assert client.put(with_query(path, digest=digest)).status_code == 201
            assert client.get(f"/v2/crash/blobs/{digest}").content == data
