"""The configured storage: the filesystem root, or a storage driver (s3), and the parts the
store keeps for it (the listings a local root keeps in memory)."""

from __future__ import annotations

import functools

from embedded_registry.config import Config
from embedded_registry.storage.api import RegistryStorage
from embedded_registry.storage.driver.base import StorageDriver, StorageDriverError
from embedded_registry.storage.driver.capabilities import DirectoryTimes
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.local_listings import LocalListings
from embedded_registry.storage.store import DriverStorage

S3_EXTRA_MISSING = "storage.s3 needs the s3 extra: pip install 'regtui[s3]'"


def driver_storage(
    driver: StorageDriver, *, redirect: bool = False, coordinate: bool = False
) -> DriverStorage:
    """The store on ``driver``. Where a directory's stamp tells whether its listing changed
    (:class:`~embedded_registry.storage.driver.capabilities.DirectoryTimes`: the filesystem
    driver), the listings (tags, catalog, referrers, uploads) are kept in memory and checked
    with a ``stat`` per directory
    (:class:`~embedded_registry.storage.local_listings.LocalListings`); elsewhere each call
    lists."""
    local = None
    if isinstance(driver, DirectoryTimes):
        local = functools.partial(LocalListings, driver)
    return DriverStorage(driver, redirect=redirect, coordinate=coordinate, local_listings=local)


def filesystem_storage(config: Config) -> DriverStorage:
    """The storage of ``storage.filesystem.rootdirectory``: the filesystem driver, never
    redirecting (sendfile serves blobs), honouring the GC lease like any other replica."""
    driver = metered(config, FilesystemDriver(config.storage.root))
    return driver_storage(driver, coordinate=True)


def metered(config: Config, driver: StorageDriver) -> StorageDriver:
    """``driver`` counted and timed when ``http.debug.prometheus.enabled`` (the metrics
    extra), else ``driver`` itself: without metrics nothing stands between store and driver."""
    if not config.http.debug.prometheus_enabled:
        return driver
    try:  # the optional metrics extra; the app refuses to start without it
        from embedded_registry.storage.metered import metered_driver
    except ImportError:
        return driver
    return metered_driver(driver)


class StorageUnavailable(Exception):
    """The configured storage cannot be used; the message is one line for the operator."""


async def open_storage(config: Config) -> RegistryStorage:
    """The storage ``config`` names, checked (a bucket that is missing, denied or out of
    reach is a :class:`StorageUnavailable`). The filesystem root is checked by the server
    (``server.check_root``)."""
    settings = config.storage.s3
    if settings is None:
        return filesystem_storage(config)
    try:
        from embedded_registry.storage.driver.s3 import S3Driver
    except ImportError:
        raise StorageUnavailable(S3_EXTRA_MISSING) from None
    driver = S3Driver(settings)
    try:
        await driver.open()
        await driver.check()
    except StorageDriverError as exc:
        await driver.close()
        raise StorageUnavailable(" ".join(str(exc).split())) from None  # one line
    except BaseException:
        await driver.close()
        raise
    return driver_storage(
        metered(config, driver), redirect=not config.storage.redirect_disabled, coordinate=True
    )
