"""Blobs as a repository serves them: the checks before serving, sendfile or a redirect, the
refresh that keeps a served blob out of GC's reach, mounts and unlinks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from embedded_registry.storage.api import ServedBlob
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver
from embedded_registry.storage.driver.capabilities import CheapTouch, LocalFiles
from embedded_registry.storage.links import Links
from embedded_registry.storage.paths import KEYS

REFRESH_FRACTION = 0.1
REFRESH_MAX_INTERVAL = 1.0
"""A blob served or mounted is refreshed (its mtime set to now, on drivers with a cheap
``touch``) once its mtime is older than this fraction of GC's grace period, or than
``REFRESH_MAX_INTERVAL`` seconds, whichever is less: GC then keeps it for a whole grace period,
and tells it from the blobs of a deleted image (GC frees a young blob at once unless it was
written or refreshed since the last commit of its repository,
:mod:`embedded_registry.gc.activity`). A hot blob costs one ``utime`` a second."""


async def _refresh(driver: CheapTouch, data: str, mtime: float, grace_period: float) -> bool:
    """Keep a blob a client has just been told about out of GC's reach; whether it is
    still there (drivers with a :class:`CheapTouch` only: on object storage a touch is a
    rewrite, and GC's lease and grace period protect what is served).

    A client that HEADs a blob and sees 200 skips its upload and pushes a manifest next;
    GC must not sweep the blob in between. Its time is set to now when older than
    ``REFRESH_FRACTION`` of ``grace_period`` or ``REFRESH_MAX_INTERVAL`` seconds (never
    with a grace period of 0: then nothing is protected); GC checks the time again right
    before removing a blob.
    """
    interval = min(grace_period * REFRESH_FRACTION, REFRESH_MAX_INTERVAL)
    if grace_period <= 0 or time.time() - mtime < interval:
        return True
    return await driver.touch(data)


class Blobs:
    """The blobs of the storage, as repositories link them."""

    def __init__(self, driver: StorageDriver, links: Links, *, redirect: bool = False) -> None:
        self.driver = driver
        self.links = links
        self.redirect = redirect
        # The capabilities, asked once: an isinstance of a runtime-checkable Protocol checks
        # every member (about 5 us each, a tenth of a HEAD).
        self._touch = driver if isinstance(driver, CheapTouch) else None
        self._local = driver if isinstance(driver, LocalFiles) else None

    async def served_blob(self, name: str, digest: str, grace_period: float) -> ServedBlob | None:
        """The blob if ``name`` links it and it is stored (refreshed where a touch is
        cheap); None otherwise."""
        if await self.links.read_link(KEYS.layer_link(name, digest)) != digest:
            return None
        data = KEYS.blob_data(digest)
        try:
            info = await self.driver.stat(data)
        except PathNotFoundError:
            return None
        if info.is_dir:
            return None
        touch = self._touch
        if touch is not None and not await _refresh(touch, data, info.mtime, grace_period):
            return None
        local = self._local.local_path(data) if self._local is not None else None
        return ServedBlob(digest, info.size, local)

    def reader(self, digest: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset``."""
        return self.driver.reader(KEYS.blob_data(digest), offset, length)

    async def redirect_url(self, digest: str) -> str | None:
        """Where the client may fetch the blob directly (when redirects are on)."""
        if not self.redirect:
            return None
        return await self.driver.redirect_url(KEYS.blob_data(digest))

    async def unlink(self, name: str, digest: str) -> bool:
        """Remove ``name``'s link to the blob; whether it existed."""
        path = KEYS.layer_link(name, digest)
        if await self.links.read_link(path) is None:
            return False
        with contextlib.suppress(PathNotFoundError):
            await self.driver.delete(path)
        return True

    async def mount(self, source: str, name: str, digest: str) -> bool:
        """Link a blob ``source`` serves into ``name``; whether it could."""
        if await self.links.linked_size(source, digest) is None:
            return False
        # Touched before linking (where a touch is cheap): a blob GC takes away meanwhile is
        # not mounted (the client uploads it), and a mounted one is young again.
        touch = self._touch
        if touch is not None and not await touch.touch(KEYS.blob_data(digest)):
            return False
        await self.links.write_link(KEYS.layer_link(name, digest), digest)
        return True
