"""Storage in CNCF Distribution's layout (see ``paths.py``).

The registry serves every storage through :class:`embedded_registry.storage.driven.
DriverStorage` on a :class:`~embedded_registry.storage.driver.base.StorageDriver` (the
filesystem driver or the s3 driver; :func:`embedded_registry.storage.factory.open_storage`).

``Storage`` is not served: it is the blocking toolkit of one filesystem root for offline
commands (``regtui prune --root`` reads and deletes tags and manifests of a stopped registry)
and for tests that lay out a directory before a server starts. Its stores (``BlobStore``,
``ManifestStore``, ``UploadStore``) write the same layout with the same atomic writes.
"""

from __future__ import annotations

from pathlib import Path

from embedded_registry.storage.blobs import BlobStore
from embedded_registry.storage.catalog import list_repositories
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


class Storage:
    """The blocking stores of one filesystem root (offline commands and test fixtures)."""

    kind = "filesystem"

    def __init__(self, root: Path | str) -> None:
        self.layout = Layout(root)
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
