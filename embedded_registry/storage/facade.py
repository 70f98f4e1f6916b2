"""The async storage API the HTTP handlers use, whatever keeps the bytes.

One implementation: :class:`embedded_registry.storage.driven.DriverStorage`, Distribution's
layout on any :class:`~embedded_registry.storage.driver.base.StorageDriver` (the filesystem
driver and the s3 driver); what only one driver can do (sendfile, a cheap touch, directory
times, presigned URLs) it uses as that driver's optional capabilities.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from embedded_registry.mediatypes import ManifestInfo
from embedded_registry.storage.catalog import page


@dataclass(frozen=True, slots=True)
class ServedBlob:
    """A blob a repository may serve: its size, and where sendfile finds it (or ``None``)."""

    digest: str
    size: int
    local_path: str | None = None


class RegistryStorage(abc.ABC):
    """What the routes need from the storage: blobs, uploads, manifests, tags, catalog."""

    kind: str = "filesystem"

    # -- health -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def health(self) -> str | None:
        """``None`` when the storage is usable, else one line saying why not."""

    # -- blobs --------------------------------------------------------------------------------
    @abc.abstractmethod
    async def served_blob(self, name: str, digest: str, grace_period: float) -> ServedBlob | None:
        """The blob if ``name`` may serve it (and keep it out of GC's reach a while), else None."""

    @abc.abstractmethod
    def blob_reader(self, digest: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset``."""

    async def blob_redirect(self, digest: str) -> str | None:
        """A URL the client may fetch the blob from directly, or ``None``."""
        return None

    @abc.abstractmethod
    async def unlink_blob(self, name: str, digest: str) -> bool:
        """Remove ``name``'s link to the blob; whether it existed."""

    @abc.abstractmethod
    async def mount(self, source: str, name: str, digest: str) -> bool:
        """Link a blob ``source`` serves into ``name``; whether it could."""

    # -- uploads ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_upload(self, name: str) -> str: ...

    @abc.abstractmethod
    def upload_lock(self, upload_id: str) -> asyncio.Lock:
        """Serialises this process's requests of one upload."""

    @abc.abstractmethod
    async def upload_size(self, name: str, upload_id: str) -> int:
        """Bytes received so far; BLOB_UPLOAD_UNKNOWN when there is no such upload."""

    @abc.abstractmethod
    async def append_upload(
        self,
        name: str,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> int: ...

    @abc.abstractmethod
    async def finish_upload(self, name: str, upload_id: str, digest: str) -> int: ...

    async def finish_upload_with(
        self,
        name: str,
        upload_id: str,
        digest: str,
        chunks: AsyncIterator[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """The closing PUT with a body: append ``chunks``, then finish. A storage may do
        better (the s3 one streams the body of an empty upload straight to the blob)."""
        await self.append_upload(name, upload_id, chunks, start=start, length=length)
        return await self.finish_upload(name, upload_id, digest)

    @abc.abstractmethod
    async def cancel_upload(self, name: str, upload_id: str) -> bool: ...

    @abc.abstractmethod
    async def purge_uploads(
        self, older_than: float, *, dry_run: bool = False
    ) -> list[tuple[str, str]]: ...

    # -- manifests, tags, catalog -------------------------------------------------------------
    @abc.abstractmethod
    async def get_manifest(self, name: str, reference: str) -> tuple[str, bytes, ManifestInfo]: ...

    @abc.abstractmethod
    async def put_manifest(
        self, name: str, reference: str, body: bytes, content_type: str
    ) -> tuple[str, ManifestInfo]: ...

    @abc.abstractmethod
    async def delete_manifest(self, name: str, digest: str) -> list[str]: ...

    @abc.abstractmethod
    async def delete_tag(self, name: str, tag: str) -> None: ...

    @abc.abstractmethod
    async def tags(self, name: str) -> list[str] | None: ...

    @abc.abstractmethod
    async def referrers(self, name: str, subject: str) -> list[dict[str, object]]: ...

    @abc.abstractmethod
    async def repositories(self) -> list[str]: ...

    async def catalog_page(self, last: str | None, count: int) -> tuple[list[str], bool]:
        """The ``count`` repositories after ``last`` in catalog order, and whether more
        follow."""
        return page(await self.repositories(), last, count)

    async def warm_up(self) -> None:
        """Work worth doing when the server starts rather than at the first request (the
        first walk of the catalog)."""
        return None

    async def close(self) -> None:
        """Release the driver's connections."""
        return None
