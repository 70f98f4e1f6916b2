"""The async storage API the HTTP handlers use, whatever keeps the bytes.

One implementation: :class:`embedded_registry.storage.store.DriverStorage`, Distribution's
layout on any :class:`~embedded_registry.storage.driver.base.StorageDriver` (the filesystem
driver and the s3 driver); what only one driver can do (sendfile, a cheap touch, directory
times, presigned URLs) it uses as that driver's optional capabilities.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

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
    async def create_upload(self, name: str) -> str:
        """Start an upload session in ``name`` (its ``startedat`` and an empty ``data``, kept
        in the storage so any replica continues it); its id."""

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
    ) -> int:
        """Append ``chunks`` to the upload; the upload's size after. RANGE_INVALID when
        ``start`` is not where the upload is, SIZE_INVALID when ``length`` bytes did not come
        (what came stays), BLOB_UPLOAD_UNKNOWN when there is no such upload."""

    @abc.abstractmethod
    async def finish_upload(self, name: str, upload_id: str, digest: str) -> int:
        """Verify the upload against ``digest``, make it the blob and link it into ``name``,
        end the session; the blob's size. DIGEST_INVALID (and nothing kept) on a mismatch."""

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
    async def cancel_upload(self, name: str, upload_id: str) -> bool:
        """Drop the upload and what it received; False when there was no such upload."""

    @abc.abstractmethod
    async def purge_uploads(
        self, older_than: float, *, dry_run: bool = False
    ) -> list[tuple[str, str]]:
        """Remove the upload sessions started more than ``older_than`` seconds ago, as
        Distribution's upload purging does; ``(repository, upload id)`` of each (a dry run
        only lists them)."""

    # -- manifests, tags, catalog -------------------------------------------------------------
    @abc.abstractmethod
    async def get_manifest(self, name: str, reference: str) -> tuple[str, bytes, ManifestInfo]:
        """The manifest a tag or digest names in ``name``: its digest, its bytes and what
        its media type says of it. MANIFEST_UNKNOWN when there is none."""

    @abc.abstractmethod
    async def put_manifest(
        self,
        name: str,
        reference: str,
        body: bytes,
        content_type: str,
        *,
        verify_references: bool = True,
    ) -> tuple[str, ManifestInfo]:
        """Store ``body`` as a manifest of ``name`` under ``reference`` (a tag, or the digest
        it must have) and commit it: blob, revision link, then the tag's links. The body is
        parsed as ``content_type`` says (MANIFEST_INVALID when its fields contradict it);
        every blob it references must be linked in ``name`` and every child manifest
        present (MANIFEST_BLOB_UNKNOWN) unless ``verify_references`` is false (a pull-through
        cache stores a manifest before the blobs a client fetches next, as Distribution's
        proxy does with ``SkipLayerVerification``); DIGEST_INVALID when a digest reference
        does not match. Waits while GC holds the commit lock. Its digest and description."""

    @abc.abstractmethod
    async def delete_manifest(self, name: str, digest: str) -> list[str]:
        """Remove ``name``'s revision ``digest`` and every tag pointing at it (the blobs stay
        for GC); the tags removed. MANIFEST_UNKNOWN when ``name`` has no such revision."""

    @abc.abstractmethod
    async def delete_tag(self, name: str, tag: str) -> None:
        """Remove ``tag`` from ``name`` (its manifest stays); MANIFEST_UNKNOWN when absent."""

    @abc.abstractmethod
    async def tags(self, name: str) -> list[str] | None:
        """``name``'s tags, sorted; ``None`` when there is no such repository."""

    @abc.abstractmethod
    async def referrers(self, name: str, subject: str) -> list[dict[str, object]]:
        """Descriptors of the manifests of ``name`` whose ``subject`` is ``subject`` (the
        referrers API's index entries)."""

    @abc.abstractmethod
    async def repositories(self) -> list[str]:
        """Every repository, in catalog order."""

    @abc.abstractmethod
    async def describe_repository(self, name: str) -> dict[str, Any] | None:
        """The ``ext/tags`` document of ``name`` (push times, targets, manifests with their
        blobs, :mod:`embedded_registry.routes.ext_tags`); ``None``: no such repository."""

    async def catalog_page(self, last: str | None, count: int) -> tuple[list[str], bool]:
        """The ``count`` repositories after ``last`` in catalog order, and whether more
        follow."""
        return page(await self.repositories(), last, count)

    async def read_state(self, name: str) -> bytes | None:
        """A small document of the server's own stored beside the layout (``name`` at the
        storage root, as Distribution keeps its proxy's ``scheduler-state.json``); ``None``
        when absent."""
        raise NotImplementedError

    async def write_state(self, name: str, data: bytes) -> None:
        """Replace the document ``name`` of :meth:`read_state` (atomically)."""
        raise NotImplementedError

    def record_pull(self, name: str, digest: str) -> None:
        """A GET of ``name``'s manifest ``digest`` (by tag or digest): remembered in memory,
        never written on the request path (:mod:`embedded_registry.storage.pulls`)."""
        return None

    async def flush_pulls(self) -> int:
        """Write the pulls recorded since the last flush; the repositories written."""
        return 0

    async def warm_up(self) -> None:
        """Work worth doing when the server starts rather than at the first request (the
        first walk of the catalog)."""
        return None

    async def close(self) -> None:
        """Release the driver's connections."""
        return None
