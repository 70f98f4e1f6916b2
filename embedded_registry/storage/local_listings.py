"""The listings a local filesystem keeps in memory, chosen by
:mod:`embedded_registry.storage.factory` for a driver of local files whose directory times
record changes (:class:`~embedded_registry.storage.driver.capabilities.LocalFiles` and
:class:`~embedded_registry.storage.driver.capabilities.DirectoryTimes`): each repository's tags
(a ``stat`` of its ``tags`` directory per request, :mod:`embedded_registry.storage.tagindex`),
the catalog (a ``stat`` per directory, :mod:`embedded_registry.storage.catalog`), the referrers
(a few ``stat`` calls per request, :mod:`embedded_registry.storage.referrers`) and the upload
sessions (one pruned walk). Every path is the driver's file of a layout key."""

from __future__ import annotations

import os

from embedded_registry import names
from embedded_registry.mediatypes import ManifestInfo, describe_stored
from embedded_registry.storage.catalog import RepositoryIndex, SharedRefresh
from embedded_registry.storage.driver.capabilities import LocalFiles
from embedded_registry.storage.links import MAX_MANIFEST_READ
from embedded_registry.storage.manifest_cache import ManifestCache
from embedded_registry.storage.paths import KEYS
from embedded_registry.storage.referrers import ReferrersIndex
from embedded_registry.storage.tagindex import TagIndex


class LocalListings:
    """Tags, catalog, referrers and uploads of a local root, kept in memory and checked
    against directory times."""

    def __init__(self, driver: LocalFiles, cache: ManifestCache) -> None:
        self._driver = driver
        self._cache = cache
        self.repositories = driver.local_path(KEYS.repositories_dir)
        self.tags = TagIndex()
        self.catalog = SharedRefresh(RepositoryIndex(self.repositories))
        self.referrers = ReferrersIndex(self.repositories, self._read_manifest_now)

    def tags_dir(self, name: str) -> str:
        """The local ``tags`` directory of repository ``name``."""
        return self._driver.local_path(KEYS.tags_dir(name))

    def _read_manifest_now(self, digest: str) -> ManifestInfo | None:
        """A manifest's description read from its file (a worker thread's call of the
        referrers index)."""
        cached = self._cache.cached(digest)
        if cached is not None:
            return cached
        try:
            with open(self._driver.local_path(KEYS.blob_data(digest)), "rb") as handle:
                body = handle.read(MAX_MANIFEST_READ + 1)
        except OSError:
            return None
        if len(body) > MAX_MANIFEST_READ:
            return None
        return describe_stored(body)

    def uploads(self) -> list[tuple[str, str, str]]:
        """``(repository, upload id, startedat key)`` of every upload directory (blocking)."""
        found: list[tuple[str, str, str]] = []
        for directory, subdirs, _files in os.walk(self.repositories):
            if os.path.basename(directory) == "_uploads":
                name = os.path.relpath(os.path.dirname(directory), self.repositories)
                name = name.replace(os.sep, "/")
                if names.is_valid_name(name):
                    found += [
                        (name, upload, KEYS.upload_startedat(name, upload))
                        for upload in sorted(subdirs)
                        if names.is_valid_upload_id(upload)
                    ]
                subdirs.clear()
            else:
                subdirs[:] = sorted(d for d in subdirs if d == "_uploads" or not d.startswith("_"))
        return found
