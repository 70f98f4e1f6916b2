"""The fast paths of the s3 storage, on a real engine (SeaweedFS, signatures checked):

- the tags list from one delimited listing and the commit marker never names a deleted tag,
  though SeaweedFS keeps the deleted tag's empty directory, on the replica that deleted it and
  on another one that had listed it before; it pages past S3's 1,000 keys per listing;
- a monolithic push goes straight to the blob's key: a wrong digest or a SIGKILL mid-body
  leaves nothing visible, the upload stays resumable on another replica, and upload purging
  aborts what the killed replica left;
- parts uploaded in parallel and cut short with a gap resume from the unbroken run of parts.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from embedded_registry.config import load_config
from embedded_registry.storage.factory import open_storage
from embedded_registry.storage.store import DriverStorage
from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.helpers.spec import digest_of, push_blob_bytes, start_upload, with_query
from tests.s3.test_s3_registry import bucket_keys, pending_multipart_uploads
from tui.imagegen import make_image, push_image

pytestmark = pytest.mark.slow
MIB = 1 << 20
TAGS = "registry/docker/registry/v2/repositories/{name}/_manifests/tags/"


def _tags(client: httpx.Client, name: str) -> list[str]:
    response = client.get(f"/v2/{name}/tags/list")
    assert response.status_code == 200, response.text
    tags: list[str] = response.json()["tags"]
    return tags


def _tag_directories(engine: SeaweedS3, bucket: str, name: str) -> list[str]:
    """The common prefixes of a delimited listing of the tags directory (what Distribution
    lists as the tags)."""
    from aiobotocore.session import get_session

    prefix = TAGS.format(name=name)

    async def listing() -> list[str]:
        async with get_session().create_client("s3", **engine.boto_kwargs()) as client:
            response = await client.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
            return [p["Prefix"][len(prefix) :] for p in response.get("CommonPrefixes", [])]

    return asyncio.run(listing())


def test_a_deleted_tag_is_never_listed_on_any_replica(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    image = make_image([{"a": b"tags\n"}])
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
        httpx.Client(base_url=one.url, timeout=60) as first,
        httpx.Client(base_url=two.url, timeout=60) as second,
    ):
        for tag in ("old", "keep", "next"):
            push_image(first, "team/tags", tag, image)
        assert _tags(first, "team/tags") == ["keep", "next", "old"]
        assert _tags(second, "team/tags") == ["keep", "next", "old"]  # both know them now

        assert first.delete("/v2/team/tags/manifests/old").status_code == 202
        # The engine keeps the deleted tag's directory: a listing by directories names it.
        assert "old/" in _tag_directories(s3_engine, bucket, "team/tags")
        assert _tags(first, "team/tags") == ["keep", "next"]
        assert _tags(second, "team/tags") == ["keep", "next"]

        # Pushed again on one replica, the tag is back on the other.
        push_image(first, "team/tags", "old", image)
        assert _tags(second, "team/tags") == ["keep", "next", "old"]
        # A tag pushed on the second replica shows on the first, which knew the others.
        push_image(second, "team/tags", "newest", image)
        assert _tags(first, "team/tags") == ["keep", "newest", "next", "old"]
        # Deleted on the second (the marker changes), gone from the first at once.
        assert second.delete("/v2/team/tags/manifests/keep").status_code == 202
        assert _tags(first, "team/tags") == ["newest", "next", "old"]
        # Many clients at once share the listing, and all get the same answer.
        with httpx.Client(base_url=one.url, timeout=60) as third:
            answers = {tuple(_tags(third, "team/tags")) for _ in range(5)}
        assert answers == {("newest", "next", "old")}


def test_tags_list_pages_past_1000_keys(s3_engine: SeaweedS3, bucket: str) -> None:
    """1,100 tags: the first list (a recursive listing, 2,200 keys) and the next ones (a
    delimited listing, 1,100 names) both page through S3's 1,000 keys per response."""
    config = load_config(data=registry_config(s3_engine.s3_config(bucket)), env={})
    image = make_image([{"p": b"pages\n"}])
    tags = [f"t{n:04d}" for n in range(1100)]
    calls: collections.Counter[str] = collections.Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    async def scenario() -> tuple[list[str] | None, list[str] | None, list[str] | None]:
        storage = await open_storage(config)
        try:
            assert isinstance(storage, DriverStorage)
            driver = storage.driver
            from embedded_registry.storage.driver.s3 import S3Driver

            assert isinstance(driver, S3Driver)
            for blob in image.blobs():
                upload = await storage.create_upload("many")

                async def body(data: bytes = blob.data) -> AsyncIterator[bytes]:
                    yield data

                await storage.finish_upload_with("many", upload, blob.digest, body())
            await storage.put_manifest(
                "many", tags[0], image.manifest.data, image.manifest.media_type
            )
            limit = asyncio.Semaphore(16)

            async def tag(name: str) -> None:
                async with limit:
                    await storage.tag("many", name, image.digest)

            await asyncio.gather(*(tag(t) for t in tags[1:]))
            driver.client.meta.events.register("before-call.s3.ListObjectsV2", count)
            fast = driver._fast

            async def counted(
                method: str, operation: str, params: dict[str, Any], limit: int | None = None
            ) -> Any:
                if operation == "list_objects_v2":
                    calls["ListObjectsV2"] += 1
                return await fast(method, operation, params, limit)

            driver._fast = counted  # type: ignore[method-assign]
            whole = await storage.tags("many")
            recursive = calls["ListObjectsV2"]
            again = await storage.tags("many")
            delimited = calls["ListObjectsV2"] - recursive
            await storage.delete_tag("many", tags[500])
            after = await storage.tags("many")
            assert recursive >= 3, recursive  # a delimited listing, then 3 pages of 2,200 keys
            assert delimited >= 2, delimited  # 2 pages of 1,100 names
            return whole, again, after
        finally:
            await storage.close()

    whole, again, after = asyncio.run(scenario())
    assert whole == tags and again == tags
    assert after == tags[:500] + tags[501:]


def test_a_monolithic_push_is_written_at_the_blob_key_and_a_bad_digest_leaves_nothing(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    config = registry_config(s3_engine.s3_config(bucket, chunksize=5 * MIB))
    data = os.urandom(23 * MIB)
    with (
        bundled_on_s3(tmp_path, config) as registry,
        httpx.Client(base_url=registry.url, timeout=60) as client,
    ):
        wrong = digest_of(b"something else")
        location = start_upload(client, "mono/app")
        response = client.put(with_query(location, digest=wrong), content=data)
        assert response.status_code == 400 and "DIGEST_INVALID" in response.text
        assert [k for k in bucket_keys(s3_engine, bucket) if "/blobs/" in k] == []
        assert pending_multipart_uploads(s3_engine, bucket) == []

        digest = push_blob_bytes(client, "mono/app", data)
        pulled = client.get(f"/v2/mono/app/blobs/{digest}", follow_redirects=True)
        assert pulled.content == data
        hex_digest = digest.split(":", 1)[1]
        keys = bucket_keys(s3_engine, bucket)
        assert f"registry/docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data" in (
            keys
        )
        assert [k for k in keys if "/_uploads/" in k] == []
        assert pending_multipart_uploads(s3_engine, bucket) == []


def test_kill_mid_monolithic_put_leaves_nothing_visible_and_the_upload_resumable(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    config = registry_config(
        s3_engine.s3_config(bucket, chunksize=5 * MIB), redirect={"disable": True}
    )
    data = os.urandom(40 * MIB)
    digest = digest_of(data)
    hex_digest = digest.split(":", 1)[1]
    with bundled_on_s3(tmp_path, config, name="steady") as steady:
        with (
            bundled_on_s3(tmp_path, config, name="doomed") as doomed,
            httpx.Client(base_url=steady.url, timeout=60) as survivor,
        ):
            location = start_upload(survivor, "killed/mono")
            path = "/" + location.split("://", 1)[1].split("/", 1)[1]
            path = with_query(path, digest=digest)
            host, port = doomed.host.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)))
            try:
                sock.sendall(
                    f"PUT {path} HTTP/1.1\r\nHost: {doomed.host}\r\n"
                    f"Content-Type: application/octet-stream\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                )
                sock.sendall(data[: 30 * MIB])  # several parts in flight at the blob's key
                deadline = time.monotonic() + 60
                while (
                    not any(
                        hex_digest in key for key in pending_multipart_uploads(s3_engine, bucket)
                    )
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)
                time.sleep(1.0)  # parts on their way
                doomed.process.send_signal(signal.SIGKILL)
                doomed.process.wait(timeout=10)
            finally:
                sock.close()
        # Nothing of the blob is visible; its unfinished multipart upload is all there is.
        assert [k for k in bucket_keys(s3_engine, bucket) if "/blobs/" in k] == []
        assert any(hex_digest in k for k in pending_multipart_uploads(s3_engine, bucket))
        with httpx.Client(base_url=steady.url, timeout=60) as client:
            assert client.head(f"/v2/killed/mono/blobs/{digest}").status_code == 404
            status = client.get(location)
            assert status.status_code == 204 and status.headers["Range"] == "0-0"
            pushed = client.put(with_query(location, digest=digest), content=data)
            assert pushed.status_code == 201, pushed.text
            assert client.get(f"/v2/killed/mono/blobs/{digest}").content == data

    async def purge() -> None:
        storage = await open_storage(load_config(data=config, env={}))
        try:
            await storage.purge_uploads(-60.0)
        finally:
            await storage.close()

    asyncio.run(purge())
    assert pending_multipart_uploads(s3_engine, bucket) == []


def test_parts_cut_short_with_a_gap_resume_from_the_unbroken_run(
    s3_engine: SeaweedS3, bucket: str
) -> None:
    """Parts 1, 2 and 4 uploaded, part 3 lost (a writer killed with parts in flight): the
    upload continues after part 2, and a later part 4 of the old upload never comes back."""
    config = load_config(
        data=registry_config(s3_engine.s3_config(bucket, chunksize=5 * MIB)), env={}
    )
    blocks = [os.urandom(5 * MIB) for _ in range(4)]
    rest = os.urandom(2 * MIB)

    async def scenario() -> tuple[int, int, bytes]:
        storage = await open_storage(config)
        try:
            assert isinstance(storage, DriverStorage)
            driver = storage.driver
            from embedded_registry.storage.driver.s3 import S3Driver

            assert isinstance(driver, S3Driver)
            writer = await driver.writer("/gap/data")
            await writer.close()
            client = driver.client
            key = driver.key("/gap/data")
            listed = await client.list_multipart_uploads(Bucket=driver.bucket, Prefix=key)
            upload_id = listed["Uploads"][0]["UploadId"]
            for number in (1, 2, 4):
                await client.upload_part(
                    Bucket=driver.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=blocks[number - 1],
                )
            resumed = await driver.writer("/gap/data", append=True)
            first = resumed.size
            await resumed.write(rest)
            await resumed.close()
            again = await driver.writer("/gap/data", append=True)
            second = again.size
            await again.commit()
            content = b"".join([block async for block in driver.reader("/gap/data")])
            return first, second, content
        finally:
            await storage.close()

    first, second, content = asyncio.run(scenario())
    assert first == 10 * MIB
    assert second == 12 * MIB
    assert content == blocks[0] + blocks[1] + rest
    assert pending_multipart_uploads(s3_engine, bucket) == []


def test_a_tag_distribution_deletes_goes_from_the_list_within_the_recheck_time(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    """Distribution does not rewrite regtui's commit marker: the known tags are listed again
    from the bucket after ``TAG_RECHECK_SECONDS``, so its delete shows within that time."""
    from embedded_registry.storage.listings import TAG_RECHECK_SECONDS
    from tests.helpers.s3 import distribution_on_s3

    s3 = s3_engine.s3_config(bucket)
    config = registry_config(s3, redirect={"disable": True})
    kept = make_image([{"a": b"kept\n"}])
    dropped = make_image([{"a": b"dropped\n"}])
    with (
        bundled_on_s3(tmp_path, config) as ours,
        distribution_on_s3(tmp_path, s3) as theirs,
        httpx.Client(base_url=ours.url, timeout=60) as client,
        httpx.Client(base_url=theirs.url, timeout=60) as distribution,
    ):
        push_image(client, "mixed", "kept", kept)
        push_image(client, "mixed", "dropped", dropped)
        assert _tags(client, "mixed") == ["dropped", "kept"]
        deleted = distribution.delete(f"/v2/mixed/manifests/{dropped.digest}")
        assert deleted.status_code == 202, deleted.text
        deadline = time.monotonic() + TAG_RECHECK_SECONDS + 5
        while _tags(client, "mixed") != ["kept"]:
            assert time.monotonic() < deadline, "a tag Distribution deleted is still listed"
            time.sleep(0.5)
        assert client.get("/v2/mixed/manifests/kept").status_code == 200
