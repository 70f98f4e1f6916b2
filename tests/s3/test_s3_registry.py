"""The bundled registry on a real S3 engine (SeaweedFS, signatures checked): the OCI push and
pull flow, chunked uploads across S3's 5 MiB minimum part size, mount, delete, tags, catalog,
the redirect to a presigned URL, and the key layout of Distribution's s3 driver."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.helpers.servers import RunningRegistry
from tests.helpers.spec import (
    digest_of,
    push_blob_bytes,
    start_upload,
    upload_offset,
    with_query,
)
from tui.imagegen import make_image, push_image

pytestmark = pytest.mark.slow
MIB = 1 << 20


def bucket_keys(engine: SeaweedS3, bucket: str) -> list[str]:
    """Every object key in the bucket (a signed listing, as any S3 client makes it)."""
    from aiobotocore.session import get_session

    async def keys() -> list[str]:
        found: list[str] = []
        async with get_session().create_client("s3", **engine.boto_kwargs()) as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=bucket):
                found += [item["Key"] for item in page.get("Contents", [])]
        return found

    return asyncio.run(keys())


def pending_multipart_uploads(engine: SeaweedS3, bucket: str) -> list[str]:
    from aiobotocore.session import get_session

    async def uploads() -> list[str]:
        async with get_session().create_client("s3", **engine.boto_kwargs()) as client:
            response = await client.list_multipart_uploads(Bucket=bucket)
            return [u["Key"] for u in response.get("Uploads", [])]

    return asyncio.run(uploads())


@pytest.fixture
def registry(s3_engine: SeaweedS3, bucket: str, tmp_path: Path) -> Iterator[RunningRegistry]:
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    with bundled_on_s3(tmp_path, config) as running:
        yield running


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=60.0) as client:
        yield client


def test_image_push_pull_round_trip_with_distribution_keys(
    client: httpx.Client, s3_engine: SeaweedS3, bucket: str
) -> None:
    image = make_image([{"etc/hello": b"hello from s3\n"}, {"bin/tool": os.urandom(200_000)}])
    push_image(client, "team/app", "v1", image)

    manifest = client.get(
        "/v2/team/app/manifests/v1", headers={"Accept": image.manifest.media_type}
    )
    assert manifest.status_code == 200, manifest.text
    assert manifest.content == image.manifest.data
    assert manifest.headers["Docker-Content-Digest"] == image.digest
    for blob in image.blobs():
        got = client.get(f"/v2/team/app/blobs/{blob.digest}")
        assert got.status_code == 200, got.text
        assert got.content == blob.data
        head = client.head(f"/v2/team/app/blobs/{blob.digest}")
        assert int(head.headers["Content-Length"]) == len(blob.data)
    ranged = client.get(
        f"/v2/team/app/blobs/{image.layers[1].digest}", headers={"Range": "bytes=10-19"}
    )
    assert ranged.status_code == 206
    assert ranged.content == image.layers[1].data[10:20]

    keys = set(bucket_keys(s3_engine, bucket))
    v2 = "registry/docker/registry/v2"
    for blob in [image.manifest, *image.blobs()]:
        hex_part = blob.digest.split(":", 1)[1]
        assert f"{v2}/blobs/sha256/{hex_part[:2]}/{hex_part}/data" in keys
    layer_hex = image.layers[0].digest.split(":", 1)[1]
    manifest_hex = image.digest.split(":", 1)[1]
    assert f"{v2}/repositories/team/app/_layers/sha256/{layer_hex}/link" in keys
    assert f"{v2}/repositories/team/app/_manifests/revisions/sha256/{manifest_hex}/link" in keys
    assert f"{v2}/repositories/team/app/_manifests/tags/v1/current/link" in keys
    assert f"{v2}/repositories/team/app/_manifests/tags/v1/index/sha256/{manifest_hex}/link" in keys
    assert not [k for k in keys if "/_uploads/" in k], "finished uploads leave nothing behind"
    assert pending_multipart_uploads(s3_engine, bucket) == []

    assert client.get("/v2/team/app/tags/list").json() == {"name": "team/app", "tags": ["v1"]}
    assert client.get("/v2/_catalog").json() == {"repositories": ["team/app"]}


@pytest.mark.parametrize(
    "chunk_sizes",
    [
        pytest.param([1000, 2000, 3000], id="small-chunks"),
        pytest.param([6 * MIB, 100, 7 * MIB, 3 * MIB], id="over-5MiB-after-a-small-part"),
        pytest.param([2 * MIB, 2 * MIB, 2 * MIB, 11 * MIB], id="small-parts-then-large"),
    ],
)
def test_chunked_upload_across_the_minimum_part_size(
    client: httpx.Client, s3_engine: SeaweedS3, bucket: str, chunk_sizes: list[int]
) -> None:
    data = os.urandom(sum(chunk_sizes))
    location = start_upload(client, "chunks")
    offset = 0
    for size in chunk_sizes:
        response = client.patch(
            location,
            content=data[offset : offset + size],
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + size - 1}",
            },
        )
        assert response.status_code == 202, response.text
        offset += size
        assert upload_offset(response) == offset - 1
        location = response.headers["Location"]
        status = client.get(location)
        assert status.status_code == 204 and upload_offset(status) == offset - 1
    # A chunk that does not start where the upload is: 416, nothing changes.
    wrong = client.patch(
        location, content=b"xx", headers={"Content-Range": f"{offset + 5}-{offset + 6}"}
    )
    assert wrong.status_code == 416
    digest = digest_of(data)
    done = client.put(with_query(location, digest=digest))
    assert done.status_code == 201, done.text
    got = client.get(f"/v2/chunks/blobs/{digest}")
    assert got.status_code == 200 and got.content == data
    assert pending_multipart_uploads(s3_engine, bucket) == []


def test_monolithic_push_streams_a_large_blob(client: httpx.Client) -> None:
    data = os.urandom(23 * MIB + 17)
    digest = digest_of(data)
    response = client.post(
        f"/v2/big/blobs/uploads/?digest={digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    assert client.get(f"/v2/big/blobs/{digest}").content == data


def test_wrong_digest_removes_the_upload_and_its_multipart_upload(
    client: httpx.Client, s3_engine: SeaweedS3, bucket: str
) -> None:
    location = start_upload(client, "bad")
    response = client.put(
        with_query(location, digest=digest_of(b"something else")),
        content=b"these bytes",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert [k for k in bucket_keys(s3_engine, bucket) if "/_uploads/" in k] == []
    assert pending_multipart_uploads(s3_engine, bucket) == []


def test_mount_delete_and_cancel(client: httpx.Client) -> None:
    digest = push_blob_bytes(client, "source", b"shared layer bytes")
    mounted = client.post(f"/v2/target/blobs/uploads/?mount={digest}&from=source")
    assert mounted.status_code == 201
    assert client.get(f"/v2/target/blobs/{digest}").content == b"shared layer bytes"
    # Not linked in the source: no mount, an upload session instead.
    unknown = digest_of(b"never pushed")
    session = client.post(f"/v2/target/blobs/uploads/?mount={unknown}&from=source")
    assert session.status_code == 202
    assert client.delete(session.headers["Location"]).status_code == 204
    assert client.get(session.headers["Location"]).status_code == 404

    assert client.delete(f"/v2/target/blobs/{digest}").status_code == 202
    assert client.head(f"/v2/target/blobs/{digest}").status_code == 404
    assert client.head(f"/v2/source/blobs/{digest}").status_code == 200

    image = make_image([{"a": b"1"}])
    push_image(client, "del", "one", image)
    push_image(client, "del", "two", image)
    assert client.get("/v2/del/tags/list").json()["tags"] == ["one", "two"]
    assert client.delete("/v2/del/manifests/one").status_code == 202
    assert client.get("/v2/del/tags/list").json()["tags"] == ["two"]
    assert client.delete(f"/v2/del/manifests/{image.digest}").status_code == 202
    assert client.get(f"/v2/del/manifests/{image.digest}").status_code == 404
    assert client.get("/v2/del/tags/list").json()["tags"] == []


def test_blob_get_redirects_to_a_presigned_url(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    config = registry_config(s3_engine.s3_config(bucket))
    with (
        bundled_on_s3(tmp_path, config) as registry,
        httpx.Client(base_url=registry.url, timeout=60.0) as client,
    ):
        data = os.urandom(300_000)
        digest = push_blob_bytes(client, "redirected", data)
        response = client.get(f"/v2/redirected/blobs/{digest}")
        assert response.status_code == 307
        location = response.headers["Location"]
        assert location.startswith(s3_engine.endpoint) and "X-Amz-Signature=" in location
        # The engine checks signatures: the presigned URL works, the bare key does not.
        assert httpx.get(location, timeout=30).content == data
        assert httpx.get(location.split("?", 1)[0], timeout=30).status_code == 403
        assert client.head(f"/v2/redirected/blobs/{digest}").status_code == 200


def test_push_times_on_s3_come_from_the_listing_and_prune_plans_with_them(
    registry: RunningRegistry,
    client: httpx.Client,
    s3_engine: SeaweedS3,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The ``ext/tags`` document on S3: each tag's push time is the LastModified of its
    ``current/link`` (one listing), each manifest's blobs have their exact sizes, and
    ``regtui prune`` plans from it (exact bytes, not an estimate)."""
    import json
    from datetime import UTC, datetime

    from aiobotocore.session import get_session

    from tui.cli import main

    images = [make_image([{f"f{n}": b"x" * (n + 1) * 1000}]) for n in range(3)]
    for n, image in enumerate(images):
        push_image(registry.url, "team/app", f"v{n}", image)
    assert client.delete("/v2/team/app/manifests/v0").status_code == 202  # an untagged one
    answer = client.get("/v2/team/app/_regtui/tags")
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert [(t["tag"], t["digest"]) for t in document["tags"]] == [
        ("v1", images[1].digest),
        ("v2", images[2].digest),
    ]
    prefix = "registry/docker/registry/v2/repositories/team/app/_manifests/tags/"

    async def modified() -> dict[str, datetime]:
        async with get_session().create_client("s3", **s3_engine.boto_kwargs()) as s3:
            listed = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
            return {
                item["Key"][len(prefix) :].split("/")[0]: item["LastModified"]
                for item in listed.get("Contents", [])
                if item["Key"].endswith("/current/link")
            }

    times = asyncio.run(modified())
    for entry in document["tags"]:
        pushed = datetime.fromisoformat(entry["pushed"].replace("Z", "+00:00"))
        assert pushed == times[entry["tag"]].astimezone(UTC)
    manifests = {m["digest"]: m for m in document["manifests"]}
    assert set(manifests) == {image.digest for image in images}  # v0's revision stays
    for image in images:
        sizes = {b["digest"]: b["size"] for b in manifests[image.digest]["blobs"]}
        assert sizes == {blob.digest: len(blob.data) for blob in image.blobs()} | {
            image.digest: len(image.manifest.data)
        }
    assert client.get("/v2/nobody/here/_regtui/tags").status_code == 404

    host = registry.url.removeprefix("http://")
    assert main(["prune", host, "--keep-newest", "1", "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["plan"]["bytes_exact"] is True
    (app,) = report["plan"]["repositories"]
    assert [t["tag"] for t in app["tags_staying"]] == ["v2"]
    assert [t["tag"] for t in app["tags_going"]] == ["v1"]
