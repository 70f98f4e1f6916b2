"""The stores on the filesystem driver, in process: atomic blob commits, resumable uploads,
concurrent identical pushes, a process killed mid-upload, a writer cut off mid-way, stale upload
purging. What the server serves (``driver_storage(FilesystemDriver(root))``), without HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from embedded_registry import errors, heap
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.factory import driver_storage
from embedded_registry.storage.paths import Layout
from embedded_registry.storage.store import DriverStorage


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks(data: bytes, size: int = 300_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


def served(root: Path) -> DriverStorage:
    return driver_storage(FilesystemDriver(root), coordinate=True)


def visible_files(root: Path) -> set[str]:
    top = Layout(root).v2
    return {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()}


async def push(storage: DriverStorage, name: str, data: bytes) -> str:
    upload_id = await storage.create_upload(name)
    async with storage.upload_lock(upload_id):
        await storage.append_upload(name, upload_id, chunks(data))
        await storage.finish_upload(name, upload_id, digest_of(data))
    return digest_of(data)


async def test_upload_becomes_a_linked_blob_and_leaves_no_upload(tmp_path: Path) -> None:
    storage = served(tmp_path)
    data = os.urandom(3_000_000)
    digest = await push(storage, "app", data)
    assert Layout(tmp_path).blob_data(digest).read_bytes() == data
    assert await storage.linked_size("app", digest) == len(data)
    assert await storage.linked_size("other", digest) is None
    assert await storage.iter_uploads() == []
    assert not any(".tmp-" in path for path in visible_files(tmp_path))


async def test_wrong_digest_leaves_nothing(tmp_path: Path) -> None:
    storage = served(tmp_path)
    layout = Layout(tmp_path)
    upload_id = await storage.create_upload("app")
    await storage.append_upload("app", upload_id, chunks(b"some bytes"))
    with pytest.raises(errors.RegistryError) as caught:
        await storage.finish_upload("app", upload_id, digest_of(b"other bytes"))
    assert caught.value.code == "DIGEST_INVALID"
    assert not layout.blobs_dir.exists() or not any(layout.blobs_dir.rglob("*"))
    assert not layout.upload_dir("app", upload_id).exists()


async def test_chunk_out_of_order_is_range_invalid_and_keeps_the_data(tmp_path: Path) -> None:
    storage = served(tmp_path)
    upload_id = await storage.create_upload("app")
    await storage.append_upload("app", upload_id, chunks(b"01234"), start=0, length=5)
    with pytest.raises(errors.RegistryError) as caught:
        await storage.append_upload("app", upload_id, chunks(b"789"), start=7, length=3)
    assert caught.value.status == 416
    assert await storage.upload_size("app", upload_id) == 5
    with pytest.raises(errors.RegistryError) as short:
        await storage.append_upload("app", upload_id, chunks(b"56"), start=5, length=3)
    assert short.value.code == "SIZE_INVALID"


async def test_resume_after_restart_rehashes_the_data_on_disk(tmp_path: Path) -> None:
    data = os.urandom(2_500_000)
    first = served(tmp_path)
    upload_id = await first.create_upload("app")
    await first.append_upload("app", upload_id, chunks(data[:1_000_000]))
    # A new process: no hash state in memory, only the files.
    second = served(tmp_path)
    assert await second.upload_size("app", upload_id) == 1_000_000
    await second.append_upload("app", upload_id, chunks(data[1_000_000:]), start=1_000_000)
    await second.finish_upload("app", upload_id, digest_of(data))
    assert Layout(tmp_path).blob_data(digest_of(data)).read_bytes() == data


async def test_sha512_digests_are_verified(tmp_path: Path) -> None:
    storage = served(tmp_path)
    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    upload_id = await storage.create_upload("app")
    await storage.append_upload("app", upload_id, chunks(data))
    await storage.finish_upload("app", upload_id, digest)
    assert await storage.linked_size("app", digest) == len(data)


async def test_concurrent_identical_pushes_both_succeed_with_one_copy(tmp_path: Path) -> None:
    storage = served(tmp_path)
    layout = Layout(tmp_path)
    data = os.urandom(4_000_000)
    results = await asyncio.gather(*(push(storage, f"repo{i}", data) for i in range(4)))
    assert set(results) == {digest_of(data)}
    blob_files = [p for p in layout.blobs_dir.rglob("*") if p.is_file()]
    assert blob_files == [layout.blob_data(digest_of(data))]
    assert blob_files[0].read_bytes() == data
    for i in range(4):
        assert await storage.linked_size(f"repo{i}", digest_of(data)) == len(data)
    assert await storage.iter_uploads() == []


KILL_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from embedded_registry.storage.factory import driver_storage
    from embedded_registry.storage.store import DriverStorage
    from embedded_registry.storage.driver.filesystem import FilesystemDriver

    async def endless():
        while True:
            yield b"x" * 65536
            await asyncio.sleep(0.001)

    async def main():
        storage = driver_storage(FilesystemDriver(sys.argv[1]))
        upload_id = await storage.create_upload("app")
        print(upload_id, flush=True)
        await storage.append_upload("app", upload_id, endless())

    asyncio.run(main())
    """
)


async def test_kill_9_mid_upload_leaves_no_visible_blob(tmp_path: Path) -> None:
    storage = served(tmp_path)
    layout = Layout(tmp_path)
    committed = await push(storage, "app", b"committed before the crash")
    before = visible_files(tmp_path)
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, then only polled
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        upload_id = process.stdout.readline().decode().strip()
        data_file = layout.upload_data("app", upload_id)
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
    after = visible_files(tmp_path)
    new = after - before
    assert all(path.startswith("repositories/app/_uploads/") for path in new), new
    assert layout.blob_data(committed).read_bytes() == b"committed before the crash"
    # The interrupted upload is still resumable from what reached the disk.
    size = await storage.upload_size("app", upload_id)
    assert size > 0
    fresh = served(tmp_path)
    prefix = data_file.read_bytes()
    await fresh.append_upload("app", upload_id, chunks(b"tail"), start=size)
    await fresh.finish_upload("app", upload_id, digest_of(prefix + b"tail"))
    assert await fresh.linked_size("app", digest_of(prefix + b"tail")) == size + 4


async def test_purge_removes_only_stale_uploads(tmp_path: Path) -> None:
    storage = served(tmp_path)
    layout = Layout(tmp_path)
    stale = await storage.create_upload("a/b")
    fresh = await storage.create_upload("c")
    layout.upload_startedat("a/b", stale).write_text("2020-01-01T00:00:00.123456789Z")
    assert await storage.purge_uploads(3600, dry_run=True) == [("a/b", stale)]
    assert layout.upload_data("a/b", stale).is_file()
    assert await storage.purge_uploads(3600) == [("a/b", stale)]
    assert not layout.upload_dir("a/b", stale).exists()
    assert layout.upload_data("c", fresh).is_file()


class _CutOff(Exception):
    """The client went away mid-body."""


async def _cut_off_after(data: bytes, pieces: int) -> AsyncIterator[bytes]:
    for n, start in enumerate(range(0, len(data), 300_000)):
        if n == pieces:
            raise _CutOff
        yield data[start : start + 300_000]
        await asyncio.sleep(0)


@pytest.mark.parametrize("cut", ["exception", "cancelled"])
async def test_a_monolithic_push_cut_off_mid_way_is_never_visible(tmp_path: Path, cut: str) -> None:
    """A PUT with a body on an empty upload (the monolithic push) on the filesystem driver:
    until its digest is verified, no byte of it is at the blob's key, whether the body ends
    mid-way (client gone) or the request task is cancelled (server shutting down); the blob's
    directory is never created, and a later push of the same bytes succeeds."""
    storage = served(tmp_path)
    layout = Layout(tmp_path)
    data = os.urandom(6_000_000)
    digest = digest_of(data)
    upload_id = await storage.create_upload("app")
    seen_at_key: list[bool] = []

    async def watched() -> AsyncIterator[bytes]:
        async for piece in _cut_off_after(data, 12):
            seen_at_key.append(layout.blob_data(digest).exists())
            yield piece

    async def hang_after_half() -> AsyncIterator[bytes]:
        for start in range(0, 3_000_000, 300_000):
            seen_at_key.append(layout.blob_data(digest).exists())
            yield data[start : start + 300_000]
            await asyncio.sleep(0)
        await asyncio.Event().wait()  # the client stalls: the server's task gets cancelled
        yield b""

    if cut == "exception":
        with pytest.raises(_CutOff):
            await storage.finish_upload_with("app", upload_id, digest, watched())
    else:
        task = asyncio.ensure_future(
            storage.finish_upload_with("app", upload_id, digest, hang_after_half())
        )
        deadline = time.monotonic() + 20
        while await storage.upload_size("app", upload_id) < 2_000_000:
            seen_at_key.append(layout.blob_data(digest).exists())
            assert time.monotonic() < deadline and not task.done(), "the body never arrived"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen_at_key and not any(seen_at_key)
    assert not layout.blob_dir(digest).exists()
    assert await storage.linked_size("app", digest) is None
    assert not [p for p in visible_files(tmp_path) if p.startswith("blobs/")]
    await storage.cancel_upload("app", upload_id)

    again = await storage.create_upload("app")
    async with storage.upload_lock(again):
        await storage.finish_upload_with("app", again, digest, chunks(data))
    assert layout.blob_data(digest).read_bytes() == data
    assert await storage.linked_size("app", digest) == len(data)


async def test_purge_dates_an_upload_without_startedat_by_its_directory(tmp_path: Path) -> None:
    """A writer killed before ``startedat`` was written leaves an upload directory without one:
    on the filesystem it is dated by the directory's time (as before), not kept forever. Layer
    links and manifests are never taken for uploads."""
    storage = served(tmp_path)
    layout = Layout(tmp_path)
    digest = await push(storage, "app", b"a layer")
    orphan = await storage.create_upload("app")
    layout.upload_startedat("app", orphan).unlink()
    young = await storage.create_upload("app")
    layout.upload_startedat("app", young).unlink()
    then = time.time() - 7200
    os.utime(layout.upload_dir("app", orphan), (then, then))
    assert await storage.purge_uploads(3600) == [("app", orphan)]
    assert not layout.upload_dir("app", orphan).exists()
    assert layout.upload_dir("app", young).is_dir()
    assert await storage.linked_size("app", digest) == len(b"a layer")


async def test_a_new_file_writer_shows_nothing_at_its_key_until_it_ends(tmp_path: Path) -> None:
    """The filesystem driver's writer of a new file writes beside its key: abandoned mid-way
    (a crash) or cancelled, nothing is at the key; committed, the whole content is."""
    driver = FilesystemDriver(tmp_path)
    target = "/docker/registry/v2/blobs/sha256/ab/" + "ab" * 32 + "/data"
    local = tmp_path / target.lstrip("/")

    abandoned = await driver.writer(target)
    await abandoned.write(b"half of a blob")
    assert not local.exists()
    await abandoned.cancel()
    assert not local.exists() and list(local.parent.iterdir()) == []

    writer = await driver.writer(target)
    await writer.write(b"the whole ")
    await writer.write(b"content")
    assert not local.exists()
    leftovers = [p.name for p in local.parent.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-")
    await writer.commit()
    assert local.read_bytes() == b"the whole content"
    assert [p.name for p in local.parent.iterdir()] == ["data"]


async def test_a_writer_writes_the_pieces_it_is_given_in_order(tmp_path: Path) -> None:
    """An upload's block is the pieces aiohttp received, handed over unjoined: the writer
    stores them one after another, more of them than one ``writev`` takes, empty ones too,
    and an append continues after them."""
    driver = FilesystemDriver(tmp_path)
    key = "/docker/registry/v2/repositories/app/_uploads/u/data"
    pieces = [os.urandom(n % 3001) for n in range(2_500)]  # > IOV_MAX (1024), some empty
    writer = await driver.writer(key)
    await writer.write(*pieces)
    assert writer.size == sum(map(len, pieces))
    await writer.close()
    more = [os.urandom(70_000), b"", os.urandom(5)]
    appending = await driver.writer(key, append=True)
    await appending.write(*more)
    await appending.commit()
    assert (tmp_path / key.lstrip("/")).read_bytes() == b"".join(pieces + more)


async def failing_after(data: bytes, size: int = 300_000) -> AsyncIterator[bytes]:
    """``data`` in pieces, then the client is gone."""
    async for piece in chunks(data, size):
        yield piece
    raise ConnectionResetError("client gone")


@pytest.mark.parametrize("right", [True, False], ids=["right-digest", "wrong-digest"])
async def test_a_patch_cut_off_then_resumed_is_verified_against_the_data(
    tmp_path: Path, right: bool
) -> None:
    """The running hash is carried from PATCH to PATCH; a PATCH cut off mid-way keeps what it
    received (the client resumes from the upload's size) and the blob is still verified
    against every byte on disk: the right digest makes the blob, a wrong one is refused."""
    storage = served(tmp_path)
    data = os.urandom(7_000_000)
    upload_id = await storage.create_upload("app")
    async with storage.upload_lock(upload_id):
        assert await storage.append_upload("app", upload_id, chunks(data[:3_000_000])) == 3_000_000
        with pytest.raises(ConnectionResetError):
            await storage.append_upload(
                "app", upload_id, failing_after(data[3_000_000:5_500_000]), start=3_000_000
            )
    received = await storage.upload_size("app", upload_id)
    assert 3_000_000 < received <= 5_500_000  # whole blocks of what came (written and hashed)
    async with storage.upload_lock(upload_id):
        await storage.append_upload("app", upload_id, chunks(data[received:]), start=received)
        digest = digest_of(data) if right else digest_of(data[::-1])
        if right:
            await storage.finish_upload("app", upload_id, digest)
        else:
            with pytest.raises(errors.RegistryError) as refused:
                await storage.finish_upload("app", upload_id, digest)
            assert refused.value.code == "DIGEST_INVALID"
    blob = Layout(tmp_path).blob_data(digest_of(data))
    assert blob.read_bytes() == data if right else not blob.exists()
    assert await storage.linked_size("app", digest_of(data)) == (len(data) if right else None)


async def test_the_closing_request_does_not_wait_for_the_heap_to_be_given_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a blob is finished its heap goes back to the kernel (``malloc_trim``, which walks
    the whole heap: milliseconds to tens of them): in a thread of its own, so the blob's
    closing request answers without waiting for it. Here the release waits until the push has
    returned; it still runs, once."""
    returned, released = threading.Event(), threading.Event()
    calls: list[str] = []

    def release() -> None:
        calls.append(threading.current_thread().name)
        returned.wait(5)
        released.set()

    monkeypatch.setattr(heap, "release", release)
    storage = served(tmp_path)
    data = os.urandom(3_000_000)
    digest = await push(storage, "app", data)
    pushed_before_release = not released.is_set()
    returned.set()
    assert pushed_before_release
    assert await asyncio.to_thread(released.wait, 5)
    assert calls and calls[0] != threading.main_thread().name and len(calls) == 1
    assert Layout(tmp_path).blob_data(digest).read_bytes() == data
