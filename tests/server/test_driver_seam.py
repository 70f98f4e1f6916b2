"""The storage driver seam: Distribution's core operations, what only some drivers can do as
Protocols, and no HTTP nor GC inside a driver."""

from __future__ import annotations

import asyncio
import inspect
import os
from pathlib import Path

import pytest

from embedded_registry import errors
from embedded_registry.storage.driver.base import (
    StorageDriver,
    StorageDriverError,
    StorageFull,
)
from embedded_registry.storage.driver.capabilities import (
    BatchReads,
    BlockingReads,
    CheapTouch,
    ConditionalWrites,
    DirectoryTimes,
    LocalFiles,
    LocalRoot,
    MultipartUploads,
    NameListing,
    RenameAside,
    TimedListing,
)
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from tests.server.test_storage_disk_full import small_disk  # noqa: F401  (a fixture)

CORE = {"get_content", "put_content", "reader", "writer", "stat", "list", "move", "delete"}
GC_HOOKS = {
    "remove_if_older",
    "remove_unless",
    "remove_empty_dirs",
    "before_gc",
    "sweep_started",
    "sweep_finished",
}
FLAGS = {"invisible_until_commit", "cheap_touch", "directory_times"}


def test_the_driver_interface_is_the_core_operations() -> None:
    assert set(StorageDriver.__abstractmethods__) == CORE
    public = {name for name, _ in inspect.getmembers(StorageDriver) if not name.startswith("_")}
    assert public == CORE | {"walk", "redirect_url", "check", "close", "name", "shared"}
    for driver in (StorageDriver, FilesystemDriver):
        assert not (GC_HOOKS | FLAGS) & set(dir(driver)), driver


def test_what_only_some_drivers_can_do_is_a_protocol_checked_with_isinstance(
    tmp_path: Path,
) -> None:
    driver = FilesystemDriver(tmp_path)
    local: tuple[type, ...] = (
        LocalFiles,
        CheapTouch,
        TimedListing,
        DirectoryTimes,
        BatchReads,
        ConditionalWrites,
        NameListing,
        RenameAside,
        LocalRoot,
        BlockingReads,
    )
    assert all(isinstance(driver, capability) for capability in local)
    assert not isinstance(driver, MultipartUploads)
    s3 = pytest.importorskip("embedded_registry.storage.driver.s3").S3Driver
    assert not (GC_HOOKS | FLAGS) & set(dir(s3))
    offered: tuple[type, ...] = (TimedListing, ConditionalWrites, MultipartUploads)
    assert all(issubclass(s3, capability) for capability in offered)
    assert not any(issubclass(s3, c) for c in (LocalFiles, CheapTouch, DirectoryTimes, BatchReads))
    assert not any(hasattr(s3, m) for m in ("entries", "rename_now", "open_now"))


def test_a_full_disk_is_a_storage_error_of_the_driver_not_an_http_one(
    small_disk: Path,  # noqa: F811
) -> None:
    driver = FilesystemDriver(small_disk)
    too_big = b"x" * (8 << 20)

    async def run() -> None:
        with pytest.raises(StorageFull) as put:
            await driver.put_content("/docker/registry/v2/big", too_big)
        assert not isinstance(put.value, errors.RegistryError)
        writer = await driver.writer("/docker/registry/v2/upload")
        with pytest.raises(StorageFull) as written:
            await writer.write(too_big)
        await writer.cancel()
        assert isinstance(written.value, StorageDriverError)
        assert str(small_disk) not in str(written.value)

    asyncio.run(run())


def test_directory_times_through_keys(tmp_path: Path) -> None:
    """``DirectoryTimes`` takes keys, like every call of the driver: a directory's stamp
    changes when an entry comes or goes, and its entries come with their kinds."""
    driver = FilesystemDriver(tmp_path)
    base = "/docker/registry/v2/repositories/app"

    async def run() -> None:
        assert driver.directory_stamp(base) is None and driver.entries(base) is None
        await driver.put_content(f"{base}/_layers/link", b"x")
        os.utime(tmp_path / base.lstrip("/"), ns=(10**18, 10**18))  # an old time
        stamp = driver.directory_stamp(base)
        assert stamp is not None and stamp[1] == 10**18
        assert driver.entries(base) == [("_layers", True)]
        assert driver.directory_stamp(base) == stamp  # nothing changed
        await driver.put_content(f"{base}/file", b"y")
        assert sorted(driver.entries(base) or []) == [("_layers", True), ("file", False)]
        changed = driver.directory_stamp(base)
        assert changed is not None and changed != stamp and changed[0] == stamp[0]

    asyncio.run(run())
