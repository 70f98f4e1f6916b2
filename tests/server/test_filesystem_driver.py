"""The filesystem driver's share of GC: conditional writes for the lease, the sweep's last
checks, batched reads and the listing GC scans, on real files."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from embedded_registry.gc.removal import remove_if_older, remove_unless
from embedded_registry.gc.scan import layout_leaf
from embedded_registry.storage.driver.base import (
    PathNotFoundError,
    PreconditionFailedError,
    StorageDriver,
    StorageDriverError,
)
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.lease import GcBusy, acquire, lease_holder

V2 = "/docker/registry/v2"
HEX = "ab" * 32


def test_conditional_writes_let_one_writer_win(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)

    async def run() -> None:
        first = await driver.put_conditional("/regtui/lease", b"one", version=None)
        with pytest.raises(PreconditionFailedError):
            await driver.put_conditional("/regtui/lease", b"two", version=None)
        second = await driver.put_conditional("/regtui/lease", b"two", version=first)
        assert second != first
        with pytest.raises(PreconditionFailedError):
            await driver.put_conditional("/regtui/lease", b"three", version=first)
        assert await driver.get_versioned("/regtui/lease") == (b"two", second)
        with pytest.raises(PathNotFoundError):
            await driver.get_versioned("/regtui/other")

    asyncio.run(run())
    # No lock file or temporary file is left beside it.
    assert sorted(os.listdir(tmp_path / "regtui")) == ["lease"]


def _take_lease(root: str, results: multiprocessing.Queue[str]) -> None:
    async def run() -> str:
        try:
            await acquire(FilesystemDriver(root))
        except GcBusy:
            return "busy"
        return "held"

    results.put(asyncio.run(run()))


def test_two_processes_racing_for_the_gc_lease_one_gets_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    workers = [context.Process(target=_take_lease, args=(str(tmp_path), results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes == ["busy", "busy", "busy", "held"]
    assert asyncio.run(lease_holder(FilesystemDriver(tmp_path))) is not None


def _blob(root: Path, content: bytes = b"data") -> Path:
    data = root / f"docker/registry/v2/blobs/sha256/ab/{HEX}/data"
    data.parent.mkdir(parents=True)
    data.write_bytes(content)
    return data


def test_remove_if_older_keeps_a_touched_blob_and_removes_an_old_one(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    data = _blob(tmp_path)
    key = f"{V2}/blobs/sha256/ab/{HEX}/data"
    cutoff = time.time() - 60
    assert asyncio.run(remove_if_older(driver, key, cutoff)) is False  # written just now
    assert data.read_bytes() == b"data"
    os.utime(data, (cutoff - 10, cutoff - 10))
    assert asyncio.run(remove_if_older(driver, key, cutoff)) is True
    assert not data.parent.exists()  # the blob's directory went with it
    assert data.parent.parent.is_dir()  # its parents stay (a push may be creating them)
    assert asyncio.run(remove_if_older(driver, key, cutoff)) is True  # already gone


def test_remove_unless_keeps_a_link_whose_blob_is_back(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    link = tmp_path / f"docker/registry/v2/repositories/app/_layers/sha256/{HEX}/link"
    link.parent.mkdir(parents=True)
    link.write_text(f"sha256:{HEX}")
    link_key = f"{V2}/repositories/app/_layers/sha256/{HEX}/link"
    blob_key = f"{V2}/blobs/sha256/ab/{HEX}/data"
    _blob(tmp_path)
    assert asyncio.run(remove_unless(driver, link_key, blob_key)) is False
    assert link.read_text() == f"sha256:{HEX}"
    assert not list(link.parent.glob("*.sweeping"))
    (tmp_path / blob_key.lstrip("/")).unlink()
    assert asyncio.run(remove_unless(driver, link_key, blob_key)) is True
    assert not link.parent.exists()


def test_get_many_reads_what_is_there(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path)
    (tmp_path / "a").write_bytes(b"A" * 3000)
    (tmp_path / "dir").mkdir()
    paths = ["/a", "/missing", "/dir"] * 700  # more than one batch
    got = asyncio.run(driver.get_many(paths, limit=2000))
    assert got[:2] == [b"A" * 2000, None] and got[3:5] == got[:2] and len(got) == 2100
    # A directory where a file should be is a damaged store: an error, never "not there".
    assert all(isinstance(g, StorageDriverError) for g in got[2::3])
    assert "Is a directory" in str(got[2])
    assert asyncio.run(driver.get_many(["/a"])) == [b"A" * 3000]
    with pytest.raises(StorageDriverError):
        asyncio.run(driver.get_many(["/../etc/passwd"]))


async def _files(driver: StorageDriver, **options: object) -> set[tuple[str, int]]:
    return {
        (info.path, info.size)
        async for info in driver.list_files(V2, **options)  # type: ignore[attr-defined]
        if not info.is_dir
    }


def test_the_leaf_listing_finds_every_file_gc_reads(tmp_path: Path) -> None:
    """A stat of each one-file directory instead of a listing: the same links and data as a
    full walk; a directory missing its file is listed (what else is in it is seen)."""
    driver = FilesystemDriver(tmp_path)
    repo = tmp_path / "docker/registry/v2/repositories/team/current"
    files = {
        f"blobs/sha256/ab/{HEX}/data": b"blob",
        f"repositories/team/current/_layers/sha256/{HEX}/link": b"sha256:" + HEX.encode(),
        f"repositories/team/current/_manifests/revisions/sha256/{HEX}/link": b"x",
        "repositories/team/current/_manifests/tags/current/current/link": b"y",
        f"repositories/team/current/_manifests/tags/current/index/sha256/{HEX}/link": b"z",
        "repositories/team/current/_uploads/u1/startedat": b"t",
    }
    for relative, content in files.items():
        path = tmp_path / "docker/registry/v2" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    # A revision whose link is gone: its directory is still seen, with what it holds.
    unlinked = repo / "_manifests/revisions/sha256" / ("cd" * 32)
    unlinked.mkdir(parents=True)
    (unlinked / "stray").write_bytes(b"s")

    full = asyncio.run(_files(driver))
    leafy = asyncio.run(_files(driver, directories=True, leaf=layout_leaf))
    assert full == leafy
    assert (f"{V2}/blobs/sha256/ab/{HEX}/data", 4) in leafy

    async def directories() -> set[str]:
        listing = driver.list_files(V2, directories=True, leaf=layout_leaf)
        return {info.path async for info in listing if info.is_dir}

    assert f"{V2}/repositories/team/current/_manifests/revisions/sha256/{'cd' * 32}" in (
        asyncio.run(directories())
    )
