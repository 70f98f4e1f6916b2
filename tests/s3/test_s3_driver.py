"""The storage layer on its own, on both drivers: DriverStorage over the filesystem driver keeps
Distribution's directory layout (plain file reads find what it wrote), and on S3 stale uploads are
purged with their multipart uploads, orphaned multipart uploads included."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from embedded_registry.config import load_config
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.factory import driver_storage, open_storage
from embedded_registry.storage.paths import Layout
from embedded_registry.storage.store import DriverStorage
from tests.helpers.layout import walk_repositories, walk_tags, walk_uploads
from tests.helpers.s3 import SeaweedS3, registry_config
from tests.s3.test_s3_registry import bucket_keys, pending_multipart_uploads
from tui.imagegen import make_image

MIB = 1 << 20


async def _chunks(data: bytes, size: int = MIB) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def test_driver_storage_on_the_filesystem_driver_keeps_distributions_layout(
    tmp_path: Path,
) -> None:
    driven = driver_storage(FilesystemDriver(tmp_path))
    image = make_image([{"f": os.urandom(3 * MIB)}])
    for blob in image.blobs():
        upload = await driven.create_upload("fs/app")
        half = len(blob.data) // 2
        assert await driven.append_upload("fs/app", upload, _chunks(blob.data[:half])) == half
        # A fresh store (another process) resumes the upload from what is on disk.
        resumed = driver_storage(FilesystemDriver(tmp_path))
        assert await resumed.upload_size("fs/app", upload) == half
        await resumed.append_upload("fs/app", upload, _chunks(blob.data[half:]), start=half)
        assert await resumed.finish_upload("fs/app", upload, blob.digest) == len(blob.data)
    await driven.put_manifest("fs/app", "v1", image.manifest.data, image.manifest.media_type)

    layout = Layout(tmp_path)  # Distribution's directories, read as plain files
    digest = layout.tag_current_link("fs/app", "v1").read_text()
    assert digest == image.digest
    assert layout.tag_index_link("fs/app", "v1", digest).read_text() == digest
    assert layout.revision_link("fs/app", digest).read_text() == digest
    assert layout.blob_data(digest).read_bytes() == image.manifest.data
    for blob in image.blobs():
        assert layout.blob_data(blob.digest).read_bytes() == blob.data
        assert layout.layer_link("fs/app", blob.digest).read_text() == blob.digest
    assert walk_uploads(layout) == []
    assert walk_repositories(layout.repositories_dir) == ["fs/app"]
    assert walk_tags(layout, "fs/app") == ["v1"]
    assert await driven.repositories() == ["fs/app"]
    assert await driven.tags("fs/app") == ["v1"]


def test_stale_uploads_are_purged_with_their_multipart_uploads(
    s3_engine: SeaweedS3, bucket: str
) -> None:
    config = load_config(data=registry_config(s3_engine.s3_config(bucket)), env={})
    loop = asyncio.new_event_loop()  # run step by step: the bucket checks run their own loops
    run = loop.run_until_complete
    storage = run(open_storage(config))
    try:
        assert isinstance(storage, DriverStorage)
        upload = run(storage.create_upload("purge/me"))
        run(storage.append_upload("purge/me", upload, _chunks(os.urandom(6 * MIB))))

        async def orphan() -> None:
            # A multipart upload whose startedat is gone (a crash between the two writes).
            writer = await storage.driver.writer(
                "/docker/registry/v2/repositories/purge/me/_uploads/"
                "00000000-0000-4000-8000-000000000000/data"
            )
            await writer.write(b"partial")
            await writer.close()

        run(orphan())
        assert len(pending_multipart_uploads(s3_engine, bucket)) == 2

        assert run(storage.purge_uploads(3600.0)) == []  # nothing is an hour old
        assert len(pending_multipart_uploads(s3_engine, bucket)) == 2

        planned = run(storage.purge_uploads(-60.0, dry_run=True))  # all "older" than that
        assert len(planned) == 2 and len(pending_multipart_uploads(s3_engine, bucket)) == 2
        purged = run(storage.purge_uploads(-60.0))
        assert {name for name, _ in purged} == {"purge/me"} and len(purged) == 2
        assert pending_multipart_uploads(s3_engine, bucket) == []
        assert [k for k in bucket_keys(s3_engine, bucket) if "/_uploads/" in k] == []
    finally:
        run(storage.close())
        loop.close()


def test_a_writer_continues_from_an_object_left_without_its_multipart_upload(
    s3_engine: SeaweedS3, bucket: str
) -> None:
    """A replica killed between completing an upload and starting the next one (or between a
    commit and the move) leaves the object alone: the next writer continues from it."""
    config = load_config(data=registry_config(s3_engine.s3_config(bucket)), env={})
    first, second = os.urandom(6 * MIB), os.urandom(3 * MIB)

    async def scenario() -> bytes:
        storage = await open_storage(config)
        try:
            assert isinstance(storage, DriverStorage)
            driver = storage.driver
            writer = await driver.writer("/leftover/data")
            await writer.write(first)
            await writer.commit()  # the object, no multipart upload any more
            resumed = await driver.writer("/leftover/data", append=True)
            assert resumed.size == len(first)
            await resumed.write(second)
            await resumed.commit()
            return b"".join([block async for block in driver.reader("/leftover/data")])
        finally:
            await storage.close()

    assert asyncio.run(scenario()) == first + second
    assert pending_multipart_uploads(s3_engine, bucket) == []


def test_a_writer_writes_the_pieces_it_is_given_in_order(s3_engine: SeaweedS3, bucket: str) -> None:
    """An upload's block is the pieces aiohttp received, handed over unjoined: the S3 writer
    sends them as parts in order (pieces straddle its part size), empty ones skipped."""
    config = load_config(data=registry_config(s3_engine.s3_config(bucket)), env={})
    pieces = [os.urandom(700_000 + n) for n in range(12)] + [b""] + [os.urandom(3)]

    async def scenario() -> bytes:
        storage = await open_storage(config)
        try:
            assert isinstance(storage, DriverStorage)
            writer = await storage.driver.writer("/pieces/data")
            await writer.write(*pieces)
            assert writer.size == sum(map(len, pieces))
            await writer.commit()
            return b"".join([block async for block in storage.driver.reader("/pieces/data")])
        finally:
            await storage.close()

    assert asyncio.run(scenario()) == b"".join(pieces)
