"""The listings a local filesystem keeps in memory, chosen by
:mod:`embedded_registry.storage.factory` for a driver whose directory stamps tell whether a
listing changed (:class:`~embedded_registry.storage.driver.capabilities.DirectoryTimes`): each
repository's tags (one stamp of its ``tags`` directory per request,
:mod:`embedded_registry.storage.tagindex`), the catalog (a stamp per directory,
:mod:`embedded_registry.storage.catalog`), the referrers (a few stamps per request,
:mod:`embedded_registry.storage.referrers`) and the upload sessions (one pruned walk). Every
one reads keys of the layout through the driver: its core operations and its blocking
``directory_stamp`` and ``entries``."""

from __future__ import annotations

from embedded_registry import names
from embedded_registry.storage.catalog import RepositoryIndex, SharedRefresh
from embedded_registry.storage.driver.base import StorageDriver
from embedded_registry.storage.driver.capabilities import DirectoryTimes
from embedded_registry.storage.links import Links
from embedded_registry.storage.manifest_cache import ManifestCache
from embedded_registry.storage.paths import KEYS
from embedded_registry.storage.referrers import ReferrersIndex
from embedded_registry.storage.tagindex import TagIndex


class LocalListings:
    """Tags, catalog, referrers and uploads of a storage with directory times, kept in memory
    and checked against the directories' stamps."""

    def __init__(self, driver: StorageDriver, links: Links, cache: ManifestCache) -> None:
        if not isinstance(driver, DirectoryTimes):
            raise TypeError(f"the {driver.name} driver has no directory times")
        self._times: DirectoryTimes = driver
        self.tags = TagIndex(driver, driver)
        self.catalog = SharedRefresh(RepositoryIndex(driver))
        self.referrers = ReferrersIndex(driver, links, cache)

    @staticmethod
    def tags_dir(name: str) -> str:
        """The key of repository ``name``'s ``tags`` directory."""
        return KEYS.tags_dir(name)

    def uploads(self) -> list[tuple[str, str, str]]:
        """``(repository, upload id, startedat key)`` of every upload directory: a walk of the
        repositories that enters no ``_`` directory but ``_uploads`` (blocking: a worker
        thread's)."""
        found: list[tuple[str, str, str]] = []
        base = KEYS.repositories_dir
        pending = [base]
        while pending:
            directory = pending.pop()
            entries = self._times.entries(directory) or []
            subdirs = sorted(name for name, is_dir in entries if is_dir)
            if directory.rpartition("/")[2] == "_uploads":
                name = directory[len(base) + 1 : -len("/_uploads")]
                if names.is_valid_name(name):
                    found += [
                        (name, upload, KEYS.upload_startedat(name, upload))
                        for upload in subdirs
                        if names.is_valid_upload_id(upload)
                    ]
                continue
            entered = [d for d in subdirs if d == "_uploads" or not d.startswith("_")]
            pending += [f"{directory}/{d}" for d in reversed(entered)]
        return found
