"""Manifests and tags: resolve a reference, read, commit (under the GC lease of other replicas)
and delete; the commit marker that records every delete."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator

from embedded_registry import errors, names
from embedded_registry.mediatypes import ManifestInfo, parse_manifest
from embedded_registry.storage.driver.base import (
    PathNotFoundError,
    StorageDriver,
    StorageDriverError,
)
from embedded_registry.storage.lease import CommitGuard, CommitTooSlow
from embedded_registry.storage.links import CONCURRENCY, Links, startedat_text
from embedded_registry.storage.listings import Listings
from embedded_registry.storage.manifest_cache import ManifestCache
from embedded_registry.storage.paths import KEYS


def compute_digest(body: bytes, algorithm: str = "sha256") -> str:
    """``<algorithm>:<hex>`` of ``body``."""
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


class Manifests:
    """The manifests and tags of every repository."""

    def __init__(
        self,
        driver: StorageDriver,
        links: Links,
        cache: ManifestCache,
        listings: Listings,
        *,
        coordinate: bool = False,
    ) -> None:
        self.driver = driver
        self.links = links
        self.cache = cache
        self.listings = listings
        self.coordinate = coordinate
        """Honour the GC lease of other replicas around commits (storage.lease)."""

    @contextlib.asynccontextmanager
    async def _commit(self) -> AsyncIterator[CommitGuard | None]:
        """Around a manifest commit: wait while another replica's GC holds the lease."""
        if not self.coordinate:
            yield None
            return
        guard = CommitGuard(self.driver)
        try:
            await guard.begin()
        except TimeoutError:
            raise errors.too_many_requests(
                "a garbage collection is running on this storage: retry later"
            ) from None
        try:
            yield guard
        except CommitTooSlow:
            raise errors.too_many_requests(
                "a garbage collection began while this commit ran: retry"
            ) from None

    async def resolve(self, name: str, reference: str) -> str:
        """The digest of the revision a tag or digest names in ``name``; MANIFEST_UNKNOWN
        when there is none."""
        if names.looks_like_digest(reference):
            if not await self.links.has_revision(name, reference):
                raise errors.manifest_unknown({"Name": name, "Revision": reference})
            return reference
        digest = await self.links.tag_digest(name, reference)
        if digest is None or not await self.links.has_revision(name, digest):
            raise errors.manifest_unknown({"Tag": reference})
        return digest

    async def get(self, name: str, reference: str) -> tuple[str, bytes, ManifestInfo]:
        """The manifest ``reference`` names in ``name``: digest, bytes, description."""
        digest = await self.resolve(name, reference)
        body = await self.links.read_manifest(digest)
        if body is None:
            raise errors.manifest_unknown({"Name": name, "Revision": digest})
        info = await self.cache.info(digest, body)
        assert info is not None
        return digest, body, info

    async def put(
        self,
        name: str,
        reference: str,
        body: bytes,
        content_type: str,
        *,
        verify_references: bool = True,
    ) -> tuple[str, ManifestInfo]:
        """Check and commit ``body`` under ``reference`` (see ``RegistryStorage.put_manifest``)."""
        is_digest = names.looks_like_digest(reference)
        algorithm = reference.split(":", 1)[0] if is_digest else "sha256"
        digest = compute_digest(body, algorithm)
        if is_digest and digest != reference:
            raise errors.digest_invalid()
        info = parse_manifest(body, content_type)
        async with self._commit() as guard:
            return await self._put(name, reference, body, digest, info, guard, verify_references)

    async def _put(
        self,
        name: str,
        reference: str,
        body: bytes,
        digest: str,
        info: ManifestInfo,
        guard: CommitGuard | None,
        verify_references: bool = True,
    ) -> tuple[str, ManifestInfo]:
        is_digest = names.looks_like_digest(reference)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def blob_missing(blob: str) -> bool:
            async with limit:
                return await self.links.linked_size(name, blob) is None

        async def child_missing(child: str) -> bool:
            async with limit:
                return not await self.links.has_revision(name, child) or (
                    await self.links.blob_size(child) is None
                )

        blobs = list(info.blobs) if verify_references else []
        children = list(info.children) if verify_references else []
        results = await asyncio.gather(
            *(blob_missing(b) for b in blobs), *(child_missing(c) for c in children)
        )
        missing = [
            errors.manifest_blob_unknown(d)
            for d, gone in zip(blobs + children, results, strict=True)
            if gone
        ]
        if missing:
            raise errors.RegistryError.combine(missing)
        if await self.links.blob_size(digest) is None:
            await self.driver.put_content(KEYS.blob_data(digest), body)
        if guard is not None:
            guard.before_last_write()
        revision = KEYS.revision_link(name, digest)
        new_revision = not is_digest and await self.links.read_link(revision) != digest
        await self.driver.put_content(revision, digest.encode())
        self.cache.remember(digest, info)
        if not is_digest:
            try:
                await self.tag(name, reference, digest)
            except StorageDriverError:
                # The disk filled up while tagging: the PUT fails, so leave no new revision a
                # client could find by digest (a tag without its current link is never listed).
                if new_revision:
                    with contextlib.suppress(PathNotFoundError):
                        await self.driver.delete(revision)
                raise
        return digest, info

    async def _record_commit(self, name: str) -> None:
        await self.driver.put_content(KEYS.commit_marker(name), startedat_text().encode())

    async def tag(self, name: str, tag: str, digest: str) -> None:
        """Point ``tag`` at ``digest`` and add it to the tag's history (no commit lock: the
        caller holds it)."""
        # The current link first (Distribution writes the index entry first): a tag listed
        # by its directory then always resolves, even after a crash between the two writes.
        await self.driver.put_content(KEYS.tag_current_link(name, tag), digest.encode())
        await self.links.write_link(KEYS.tag_index_link(name, tag, digest), digest)

    async def delete_tag(self, name: str, tag: str) -> None:
        """Remove ``tag`` from ``name`` under the commit lock; MANIFEST_UNKNOWN when absent."""
        async with self._commit():
            if await self.links.tag_digest(name, tag) is None:
                raise errors.manifest_unknown({"Tag": tag})
            with contextlib.suppress(PathNotFoundError):
                await self.driver.delete(KEYS.tag_dir(name, tag))
            await self._record_commit(name)

    async def delete(self, name: str, digest: str) -> list[str]:
        """Remove the revision and the tags pointing at it under the commit lock."""
        async with self._commit():
            link = KEYS.revision_link(name, digest)
            if await self.links.read_link(link) != digest:
                raise errors.manifest_unknown()
            removed = []
            for tag in await self.listings.tags(name) or []:
                if await self.links.tag_digest(name, tag) == digest:
                    removed.append(tag)
                    with contextlib.suppress(PathNotFoundError):
                        await self.driver.delete(KEYS.tag_dir(name, tag))
            with contextlib.suppress(PathNotFoundError):
                await self.driver.delete(link)
            await self._record_commit(name)
            return removed
