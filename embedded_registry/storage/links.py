"""What every part of the store reads: the links of the layout, blob sizes and a manifest's
bytes, through the driver (the keys of :mod:`embedded_registry.storage.paths`)."""

from __future__ import annotations

from datetime import UTC, datetime

from embedded_registry import names
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver
from embedded_registry.storage.paths import KEYS

LINK_LIMIT = 1024
CONCURRENCY = 16
"""Requests to the storage one operation keeps in flight (referrers, manifest checks)."""
MAX_MANIFEST_READ = 16 << 20


def startedat_text() -> str:
    """Now, as Distribution writes an upload's ``startedat`` (and regtui its commit marker):
    RFC 3339 in UTC with nanoseconds."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


class Links:
    """Links and blobs on one driver: the reads every part of the store shares."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    async def read_link(self, path: str) -> str | None:
        """The digest the link at ``path`` holds; None when missing or malformed."""
        try:
            raw = await self.driver.get_content(path, limit=LINK_LIMIT)
        except PathNotFoundError:
            return None
        text = raw.decode("ascii", errors="replace").strip()
        return text if names.is_valid_digest(text) else None

    async def write_link(self, path: str, digest: str) -> None:
        """Make the link at ``path`` hold ``digest`` (no write when it already does)."""
        if await self.read_link(path) != digest:
            await self.driver.put_content(path, digest.encode())

    async def blob_size(self, digest: str) -> int | None:
        """The size of the blob ``digest``; None when it is not stored."""
        try:
            info = await self.driver.stat(KEYS.blob_data(digest))
        except PathNotFoundError:
            return None
        return None if info.is_dir else info.size

    async def linked_size(self, name: str, digest: str) -> int | None:
        """The blob's size if ``name`` links it and it is stored, else None."""
        if await self.read_link(KEYS.layer_link(name, digest)) != digest:
            return None
        return await self.blob_size(digest)

    async def has_revision(self, name: str, digest: str) -> bool:
        """Whether ``name`` holds the manifest revision ``digest``."""
        return await self.read_link(KEYS.revision_link(name, digest)) == digest

    async def tag_digest(self, name: str, tag: str) -> str | None:
        """The digest ``tag`` points at in ``name`` now (its ``current/link``), or None."""
        return await self.read_link(KEYS.tag_current_link(name, tag))

    async def read_manifest(self, digest: str) -> bytes | None:
        """A manifest's bytes; None when missing or larger than any manifest may be (a
        revision link naming a layer is not read whole into memory)."""
        try:
            data = await self.driver.get_content(
                KEYS.blob_data(digest), limit=MAX_MANIFEST_READ + 1
            )
        except PathNotFoundError:
            return None
        return data if len(data) <= MAX_MANIFEST_READ else None
