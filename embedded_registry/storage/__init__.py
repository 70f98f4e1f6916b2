"""Storage in CNCF Distribution's filesystem layout (see ``paths.py``).

``Storage`` bundles the blob, upload and manifest stores of one root. Its methods are plain
blocking functions; the HTTP handlers run the ones that touch more than a file or two in worker
threads.
"""

from __future__ import annotations

from pathlib import Path

from embedded_registry.storage.blobs import BlobStore
from embedded_registry.storage.catalog import list_repositories
from embedded_registry.storage.manifests import ManifestStore, compute_digest
from embedded_registry.storage.paths import Layout
from embedded_registry.storage.uploads import UploadStore

__all__ = ["BlobStore", "Layout", "ManifestStore", "Storage", "UploadStore", "compute_digest"]


class Storage:
    def __init__(self, root: Path | str) -> None:
        self.layout = Layout(root)
        self.blobs = BlobStore(self.layout)
        self.uploads = UploadStore(self.layout, self.blobs)
        self.manifests = ManifestStore(self.layout, self.blobs)

    @property
    def root(self) -> Path:
        return self.layout.root

    def repositories(self) -> list[str]:
        return list_repositories(self.layout.repositories_dir)

    def ensure_layout(self) -> None:
        """Create ``docker/registry/v2/{blobs,repositories}`` if they are missing."""
        self.layout.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.layout.repositories_dir.mkdir(parents=True, exist_ok=True)
