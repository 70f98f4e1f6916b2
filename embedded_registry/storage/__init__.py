"""Storage in CNCF Distribution's layout (see ``paths.py``), behind the async API of
:mod:`embedded_registry.storage.facade`.

``Storage`` is the filesystem implementation: the blob, upload and manifest stores of one root,
plain blocking functions (GC, usage and the tests use them directly), and the async methods the
HTTP handlers call, which run the stores inline where they touch a file or two and in worker
threads otherwise. ``DriverStorage`` (``driven.py``) keeps the same layout on any storage
driver (s3).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from embedded_registry.mediatypes import ManifestInfo
from embedded_registry.storage.blobs import BlobStore
from embedded_registry.storage.catalog import list_repositories
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.facade import RegistryStorage, ServedBlob
from embedded_registry.storage.manifests import ManifestStore, compute_digest
from embedded_registry.storage.paths import Layout
from embedded_registry.storage.uploads import UploadStore

__all__ = [
    "BlobStore",
    "Layout",
    "ManifestStore",
    "RegistryStorage",
    "ServedBlob",
    "Storage",
    "UploadStore",
    "compute_digest",
]


class Storage(RegistryStorage):
    kind = "filesystem"

    def __init__(self, root: Path | str) -> None:
        self.layout = Layout(root)
        self.driver = FilesystemDriver(self.layout.root)
        self.blobs = BlobStore(self.layout)
        self.uploads = UploadStore(self.layout, self.blobs)
        self.manifests = ManifestStore(self.layout, self.blobs)

    @property
    def root(self) -> Path:
        return self.layout.root

    def list_repositories(self) -> list[str]:
        return list_repositories(self.layout.repositories_dir)

    def ensure_layout(self) -> None:
        """Create ``docker/registry/v2/{blobs,repositories}`` if they are missing."""
        self.layout.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.layout.repositories_dir.mkdir(parents=True, exist_ok=True)

    # -- the async API (facade.RegistryStorage) -----------------------------------------------
    async def health(self) -> str | None:
        root = self.layout.v2
        if os.access(root, os.R_OK | os.X_OK):
            return None
        return f"storage root {root} is not readable"

    async def served_blob(self, name: str, digest: str, grace_period: float) -> ServedBlob | None:
        # A read and a stat of hot metadata (and rarely a utime): cheaper inline than a round
        # trip through a worker thread.
        st = self.blobs.linked_stat(name, digest)
        if st is None or not self.blobs.refresh(digest, st, grace_period):
            return None
        return ServedBlob(digest, st.st_size, self.blobs.data_path(digest))

    def blob_reader(self, digest: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        return self.driver.reader(str(Layout("/").blob_data(digest)), offset, length)

    async def unlink_blob(self, name: str, digest: str) -> bool:
        return await asyncio.to_thread(self.blobs.unlink, name, digest)

    def _mount(self, source: str, name: str, digest: str) -> bool:
        # Touched before linking: a blob GC takes away meanwhile is not mounted (the client
        # uploads it).
        if self.blobs.linked_size(source, digest) is None or not self.blobs.touch(digest):
            return False
        self.blobs.link(name, digest)
        return True

    async def mount(self, source: str, name: str, digest: str) -> bool:
        return await asyncio.to_thread(self._mount, source, name, digest)

    async def create_upload(self, name: str) -> str:
        return await asyncio.to_thread(self.uploads.create, name)

    def upload_lock(self, upload_id: str) -> asyncio.Lock:
        return self.uploads.lock(upload_id)

    async def upload_size(self, name: str, upload_id: str) -> int:
        return self.uploads.size(name, upload_id)

    async def append_upload(
        self,
        name: str,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        return await self.uploads.append(name, upload_id, chunks, start=start, length=length)

    async def finish_upload(self, name: str, upload_id: str, digest: str) -> int:
        return await self.uploads.finish(name, upload_id, digest)

    async def cancel_upload(self, name: str, upload_id: str) -> bool:
        return await asyncio.to_thread(self.uploads.cancel, name, upload_id)

    async def purge_uploads(
        self, older_than: float, *, dry_run: bool = False
    ) -> list[tuple[str, str]]:
        return await asyncio.to_thread(self.uploads.purge, older_than, dry_run=dry_run)

    async def get_manifest(self, name: str, reference: str) -> tuple[str, bytes, ManifestInfo]:
        # A manifest and its links are a few small files: read inline, cached by digest.
        return self.manifests.get(name, reference)

    async def put_manifest(
        self, name: str, reference: str, body: bytes, content_type: str
    ) -> tuple[str, ManifestInfo]:
        return await asyncio.to_thread(self.manifests.put, name, reference, body, content_type)

    async def delete_manifest(self, name: str, digest: str) -> list[str]:
        return await asyncio.to_thread(self.manifests.delete, name, digest)

    async def delete_tag(self, name: str, tag: str) -> None:
        await asyncio.to_thread(self.manifests.delete_tag, name, tag)

    async def tags(self, name: str) -> list[str] | None:
        # One directory listing: kept inline, it is cheaper than a worker-thread round trip.
        return self.manifests.tags(name)

    async def referrers(self, name: str, subject: str) -> list[dict[str, object]]:
        return await asyncio.to_thread(self.manifests.referrers, name, subject)

    async def repositories(self) -> list[str]:
        return await asyncio.to_thread(self.list_repositories)
