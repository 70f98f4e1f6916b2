"""Storage, in process: atomic blob commits, resumable uploads, concurrent identical pushes,
a process killed mid-upload, stale upload purging."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from embedded_registry import errors
from embedded_registry.storage import Storage


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks(data: bytes, size: int = 300_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


def visible_files(storage: Storage) -> set[str]:
    root = storage.layout.v2
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


async def push(storage: Storage, name: str, data: bytes) -> str:
    upload_id = storage.uploads.create(name)
    async with storage.uploads.lock(upload_id):
        await storage.uploads.append(name, upload_id, chunks(data))
        await storage.uploads.finish(name, upload_id, digest_of(data))
    return digest_of(data)


async def test_upload_becomes_a_linked_blob_and_leaves_no_upload(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    data = os.urandom(3_000_000)
    digest = await push(storage, "app", data)
    assert storage.layout.blob_data(digest).read_bytes() == data
    assert storage.blobs.linked_size("app", digest) == len(data)
    assert storage.blobs.linked_size("other", digest) is None
    assert storage.uploads.iter_uploads() == []
    assert not any(".tmp-" in path for path in visible_files(storage))


async def test_wrong_digest_leaves_nothing(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    upload_id = storage.uploads.create("app")
    await storage.uploads.append("app", upload_id, chunks(b"some bytes"))
    with pytest.raises(errors.RegistryError) as caught:
        await storage.uploads.finish("app", upload_id, digest_of(b"other bytes"))
    assert caught.value.code == "DIGEST_INVALID"
    assert not storage.layout.blobs_dir.exists() or not any(storage.layout.blobs_dir.rglob("*"))
    assert not storage.layout.upload_dir("app", upload_id).exists()


async def test_chunk_out_of_order_is_range_invalid_and_keeps_the_data(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    upload_id = storage.uploads.create("app")
    await storage.uploads.append("app", upload_id, chunks(b"01234"), start=0, length=5)
    with pytest.raises(errors.RegistryError) as caught:
        await storage.uploads.append("app", upload_id, chunks(b"789"), start=7, length=3)
    assert caught.value.status == 416
    assert storage.uploads.size("app", upload_id) == 5
    with pytest.raises(errors.RegistryError) as short:
        await storage.uploads.append("app", upload_id, chunks(b"56"), start=5, length=3)
    assert short.value.code == "SIZE_INVALID"


async def test_resume_after_restart_rehashes_the_data_on_disk(tmp_path: Path) -> None:
    data = os.urandom(2_500_000)
    first = Storage(tmp_path)
    upload_id = first.uploads.create("app")
    await first.uploads.append("app", upload_id, chunks(data[:1_000_000]))
    # A new process: no hash state in memory, only the files.
    second = Storage(tmp_path)
    assert second.uploads.size("app", upload_id) == 1_000_000
    await second.uploads.append("app", upload_id, chunks(data[1_000_000:]), start=1_000_000)
    await second.uploads.finish("app", upload_id, digest_of(data))
    assert second.layout.blob_data(digest_of(data)).read_bytes() == data


async def test_sha512_digests_are_verified(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    upload_id = storage.uploads.create("app")
    await storage.uploads.append("app", upload_id, chunks(data))
    await storage.uploads.finish("app", upload_id, digest)
    assert storage.blobs.linked_size("app", digest) == len(data)


async def test_concurrent_identical_pushes_both_succeed_with_one_copy(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    data = os.urandom(4_000_000)
    results = await asyncio.gather(*(push(storage, f"repo{i}", data) for i in range(4)))
    assert set(results) == {digest_of(data)}
    blob_files = [p for p in storage.layout.blobs_dir.rglob("*") if p.is_file()]
    assert blob_files == [storage.layout.blob_data(digest_of(data))]
    assert blob_files[0].read_bytes() == data
    for i in range(4):
        assert storage.blobs.is_linked(f"repo{i}", digest_of(data))
    assert storage.uploads.iter_uploads() == []


KILL_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from embedded_registry.storage import Storage

    async def endless():
        while True:
            yield b"x" * 65536
            await asyncio.sleep(0.001)

    async def main():
        storage = Storage(sys.argv[1])
        upload_id = storage.uploads.create("app")
        print(upload_id, flush=True)
        await storage.uploads.append("app", upload_id, endless())

    asyncio.run(main())
    """
)


async def test_kill_9_mid_upload_leaves_no_visible_blob(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    committed = await push(storage, "app", b"committed before the crash")
    before = visible_files(storage)
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, then only polled
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        upload_id = process.stdout.readline().decode().strip()
        data_file = storage.layout.upload_data("app", upload_id)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if data_file.exists() and data_file.stat().st_size > 2_000_000:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the upload never grew")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    after = visible_files(storage)
    new = after - before
    assert all(path.startswith("repositories/app/_uploads/") for path in new), new
    assert storage.layout.blob_data(committed).read_bytes() == b"committed before the crash"
    # The interrupted upload is still resumable from what reached the disk.
    size = storage.uploads.size("app", upload_id)
    assert size > 0
    fresh = Storage(tmp_path)
    prefix = data_file.read_bytes()
    await fresh.uploads.append("app", upload_id, chunks(b"tail"), start=size)
    await fresh.uploads.finish("app", upload_id, digest_of(prefix + b"tail"))
    assert fresh.blobs.linked_size("app", digest_of(prefix + b"tail")) == size + 4


async def test_purge_removes_only_stale_uploads(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    stale = storage.uploads.create("a/b")
    fresh = storage.uploads.create("c")
    storage.layout.upload_startedat("a/b", stale).write_text("2020-01-01T00:00:00.123456789Z")
    assert storage.uploads.purge(3600, dry_run=True) == [("a/b", stale)]
    assert storage.uploads.exists("a/b", stale)
    assert storage.uploads.purge(3600) == [("a/b", stale)]
    assert not storage.uploads.exists("a/b", stale)
    assert storage.uploads.exists("c", fresh)
