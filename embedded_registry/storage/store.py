"""Distribution's layout on any storage driver: what the bundled registry serves, from a
local directory (the filesystem driver) or from S3 (the s3 driver).

The keys are the ones of :mod:`embedded_registry.storage.paths` (Distribution's ``paths.go``),
so a directory or a bucket written by Distribution is served as it is, and the other way round.

:class:`DriverStorage` is composed of small parts, each a module with one job:

* :mod:`~embedded_registry.storage.links`: the links, blob sizes and manifest reads all share;
* :mod:`~embedded_registry.storage.blobs`: serving, refreshing, mounting, unlinking blobs;
* :mod:`~embedded_registry.storage.uploads`: upload sessions and their purging;
* :mod:`~embedded_registry.storage.manifests`: manifests and tags, their commits and deletes;
* :mod:`~embedded_registry.storage.listings`: tags, revisions, referrers, the catalog (with
  :mod:`~embedded_registry.storage.local_listings` when the factory gives them);
* :mod:`~embedded_registry.storage.ext_document`: the ``ext/tags`` document.

What only some drivers can do is a Protocol of
:mod:`embedded_registry.storage.driver.capabilities`, used where offered: a local path for
sendfile, a cheap ``touch`` (blobs refreshed when served or mounted, so GC's grace period
protects them), writes invisible until commit (a monolithic push streamed straight to the blob's
key: S3 multipart uploads; elsewhere the body goes to the upload and is moved into place once
verified), presigned URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from embedded_registry.mediatypes import ManifestInfo
from embedded_registry.storage.api import RegistryStorage, ServedBlob
from embedded_registry.storage.blobs import Blobs
from embedded_registry.storage.driver.base import (
    PathNotFoundError,
    StorageDriver,
    StorageDriverError,
)
from embedded_registry.storage.ext_document import describe_repository
from embedded_registry.storage.links import Links
from embedded_registry.storage.listings import Listings
from embedded_registry.storage.local_listings import LocalListings
from embedded_registry.storage.manifest_cache import ManifestCache
from embedded_registry.storage.manifests import Manifests
from embedded_registry.storage.pulls import PullTimes
from embedded_registry.storage.uploads import Uploads


class DriverStorage(RegistryStorage):
    """The registry's storage on one driver: its parts composed behind the methods of
    :class:`RegistryStorage`. ``local_listings`` (the factory's choice for a local root,
    :func:`embedded_registry.storage.factory.driver_storage`) makes the listings kept in
    memory, given the links and the manifest cache; ``coordinate`` honours the GC lease of
    other replicas around commits; ``redirect`` sends clients to the driver's presigned URLs."""

    def __init__(
        self,
        driver: StorageDriver,
        *,
        redirect: bool = False,
        coordinate: bool = False,
        local_listings: Callable[[Links, ManifestCache], LocalListings] | None = None,
    ) -> None:
        self.driver = driver
        self.kind = driver.name
        self.links = Links(driver)
        self.manifest_cache = ManifestCache(self.links)
        local = (
            local_listings(self.links, self.manifest_cache) if local_listings is not None else None
        )
        self.blobs = Blobs(driver, self.links, redirect=redirect)
        self.uploads = Uploads(driver, self.links, local)
        self.listings = Listings(driver, self.links, self.manifest_cache, local)
        self.manifests = Manifests(
            driver, self.links, self.manifest_cache, self.listings, coordinate=coordinate
        )
        self.pulls = PullTimes(driver)
        """When each manifest was last pulled: in memory, written in batches (storage.pulls)."""

    async def close(self) -> None:
        """Release the driver's connections."""
        await self.driver.close()

    async def health(self) -> str | None:
        """``None`` when the driver's check passes, else its one line."""
        try:
            await self.driver.check()
        except StorageDriverError as exc:
            return str(exc)
        return None

    # -- blobs --------------------------------------------------------------------------------
    async def blob_size(self, digest: str) -> int | None:
        """The size of the blob ``digest``; None when it is not stored."""
        return await self.links.blob_size(digest)

    async def linked_size(self, name: str, digest: str) -> int | None:
        """The blob's size if ``name`` links it and it is stored, else None."""
        return await self.links.linked_size(name, digest)

    async def served_blob(self, name: str, digest: str, grace_period: float) -> ServedBlob | None:
        """The blob if ``name`` may serve it (refreshed where a touch is cheap, so GC's grace
        period protects it), with its local path for sendfile where it has one; else None."""
        return await self.blobs.served_blob(name, digest, grace_period)

    def blob_reader(self, digest: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset`` (``length`` of them, or to the end)."""
        return self.blobs.reader(digest, offset, length)

    async def blob_redirect(self, digest: str) -> str | None:
        """A presigned URL of the blob when redirects are on and the driver offers one."""
        return await self.blobs.redirect_url(digest)

    async def unlink_blob(self, name: str, digest: str) -> bool:
        """Remove ``name``'s link to the blob (the blob stays for GC); whether it existed."""
        return await self.blobs.unlink(name, digest)

    async def mount(self, source: str, name: str, digest: str) -> bool:
        """Link a blob ``source`` serves into ``name`` (refreshed first where a touch is
        cheap); whether it could."""
        return await self.blobs.mount(source, name, digest)

    # -- uploads ------------------------------------------------------------------------------
    def upload_lock(self, upload_id: str) -> asyncio.Lock:
        """Serialises this process's requests of one upload."""
        return self.uploads.lock(upload_id)

    async def create_upload(self, name: str) -> str:
        """Start an upload session in ``name`` (``startedat`` and an empty ``data``); its id."""
        return await self.uploads.create(name)

    async def upload_size(self, name: str, upload_id: str) -> int:
        """Bytes received so far; BLOB_UPLOAD_UNKNOWN when there is no such upload."""
        return await self.uploads.size(name, upload_id)

    async def append_upload(
        self,
        name: str,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append ``chunks`` (written and hashed as they stream); the upload's size after.
        RANGE_INVALID, SIZE_INVALID, BLOB_UPLOAD_UNKNOWN as ``RegistryStorage`` says."""
        return await self.uploads.append(name, upload_id, chunks, start=start, length=length)

    async def finish_upload(self, name: str, upload_id: str, digest: str) -> int:
        """Verify the upload against ``digest``, move it into place as the blob, link it and
        end the session; the blob's size. DIGEST_INVALID (and nothing kept) on a mismatch."""
        return await self.uploads.finish(name, upload_id, digest)

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
        """The closing PUT with a body: on a driver of multipart uploads the body of an empty
        upload streams straight to the blob's key; elsewhere append, then finish."""
        return await self.uploads.finish_with(
            name, upload_id, digest, chunks, start=start, length=length
        )

    async def cancel_upload(self, name: str, upload_id: str) -> bool:
        """Drop the upload and what it received; False when there was no such upload."""
        return await self.uploads.cancel(name, upload_id)

    async def iter_uploads(self) -> list[tuple[str, str, str]]:
        """Every upload session: ``(repository, upload id, startedat key)``."""
        return await self.uploads.sessions()

    async def purge_uploads(
        self, older_than: float, *, dry_run: bool = False
    ) -> list[tuple[str, str]]:
        """Remove the upload sessions started more than ``older_than`` seconds ago, with their
        multipart uploads; ``(repository, upload id)`` of each (a dry run only lists them)."""
        return await self.uploads.purge(older_than, dry_run=dry_run)

    # -- manifests and tags -------------------------------------------------------------------
    async def has_revision(self, name: str, digest: str) -> bool:
        """Whether ``name`` holds the manifest revision ``digest``."""
        return await self.links.has_revision(name, digest)

    async def tag_digest(self, name: str, tag: str) -> str | None:
        """The digest ``tag`` points at in ``name`` now (its ``current/link``), or None."""
        return await self.links.tag_digest(name, tag)

    async def resolve(self, name: str, reference: str) -> str:
        """The digest of the revision a tag or digest names in ``name``; MANIFEST_UNKNOWN
        when there is none."""
        return await self.manifests.resolve(name, reference)

    async def info(self, digest: str, body: bytes | None = None) -> ManifestInfo | None:
        """What the stored manifest ``digest`` is (cached by digest); None when unreadable."""
        return await self.manifest_cache.info(digest, body)

    async def get_manifest(self, name: str, reference: str) -> tuple[str, bytes, ManifestInfo]:
        """The manifest a tag or digest names in ``name``: its digest, bytes and description;
        MANIFEST_UNKNOWN when there is none."""
        return await self.manifests.get(name, reference)

    async def put_manifest(
        self,
        name: str,
        reference: str,
        body: bytes,
        content_type: str,
        *,
        verify_references: bool = True,
    ) -> tuple[str, ManifestInfo]:
        """Parse ``body`` as ``content_type``, check that everything it references is in
        ``name`` (unless ``verify_references`` is false), then commit it (blob, revision link,
        the tag's links) under the commit lock; its digest and description (errors as
        ``RegistryStorage.put_manifest`` says)."""
        return await self.manifests.put(
            name, reference, body, content_type, verify_references=verify_references
        )

    async def tag(self, name: str, tag: str, digest: str) -> None:
        """Point ``tag`` at ``digest`` and add it to the tag's history (no commit lock: the
        caller holds it)."""
        await self.manifests.tag(name, tag, digest)

    async def delete_tag(self, name: str, tag: str) -> None:
        """Remove ``tag`` from ``name`` (its manifest stays) and record the delete in the
        commit marker; MANIFEST_UNKNOWN when absent."""
        await self.manifests.delete_tag(name, tag)

    async def delete_manifest(self, name: str, digest: str) -> list[str]:
        """Remove ``name``'s revision ``digest`` and every tag pointing at it (the blobs stay
        for GC) and record the delete; the tags removed. MANIFEST_UNKNOWN when absent."""
        removed = await self.manifests.delete(name, digest)
        self.pulls.forget(name, {digest})
        return removed

    def record_pull(self, name: str, digest: str) -> None:
        """Note that ``digest`` of ``name`` was pulled now (written later, in a batch)."""
        self.pulls.record(name, digest)

    async def flush_pulls(self) -> int:
        """Write the pull times noted since the last flush; how many."""
        return await self.pulls.flush()

    async def read_state(self, name: str) -> bytes | None:
        """The state document ``name`` kept in the storage (None: none yet)."""
        try:
            return await self.driver.get_content(f"/{name}")
        except PathNotFoundError:
            return None

    async def write_state(self, name: str, data: bytes) -> None:
        """Keep the state document ``name`` in the storage."""
        await self.driver.put_content(f"/{name}", data)

    # -- listings -----------------------------------------------------------------------------
    async def tags(self, name: str) -> list[str] | None:
        """``name``'s tags with a ``current/link``, sorted; ``None`` when there is no such
        repository (:meth:`Listings.tags`)."""
        return await self.listings.tags(name)

    async def revisions(self, name: str) -> list[str]:
        """The digests of ``name``'s revision links, sorted."""
        return await self.listings.revisions(name)

    async def referrers(self, name: str, subject: str) -> list[dict[str, object]]:
        """Descriptors of the manifests of ``name`` whose ``subject`` is ``subject``."""
        return await self.listings.referrers(name, subject)

    async def warm_up(self) -> None:
        """The first walk of the catalog, at start (with local listings)."""
        await self.listings.warm_up()

    async def catalog_page(self, last: str | None, count: int) -> tuple[list[str], bool]:
        """The ``count`` repositories after ``last`` in catalog order, and whether more
        follow."""
        return await self.listings.catalog_page(last, count)

    async def repositories(self) -> list[str]:
        """Every repository (a name with ``_layers`` or ``_manifests``), in catalog order."""
        return await self.listings.repositories()

    async def describe_repository(self, name: str) -> dict[str, Any] | None:
        """The ``ext/tags`` document of ``name`` (:mod:`embedded_registry.storage.ext_document`);
        ``None``: no such repository."""
        return await describe_repository(self.links, name, self.pulls)
