"""Parsed manifests kept by digest: content is immutable, so an entry never goes stale."""

from __future__ import annotations

from collections import OrderedDict

from embedded_registry.mediatypes import ManifestInfo, describe_stored
from embedded_registry.storage.links import Links

INFO_CACHE_SIZE = 4096
"""Parsed manifests kept by digest (the least recently used go first)."""


class ManifestCache:
    """What each stored manifest is (:class:`ManifestInfo`), read once through ``links``."""

    def __init__(self, links: Links) -> None:
        self._links = links
        self._info: OrderedDict[str, ManifestInfo] = OrderedDict()

    def cached(self, digest: str) -> ManifestInfo | None:
        """The description of ``digest`` when it is kept (no I/O: any thread may ask)."""
        return self._info.get(digest)

    def remember(self, digest: str, info: ManifestInfo) -> None:
        """Keep ``info`` as the description of ``digest``."""
        self._info[digest] = info
        if len(self._info) > INFO_CACHE_SIZE:
            self._info.popitem(last=False)

    async def info(self, digest: str, body: bytes | None = None) -> ManifestInfo | None:
        """What the stored manifest ``digest`` is (cached by digest); None when unreadable."""
        cached = self._info.get(digest)
        if cached is not None:
            self._info.move_to_end(digest)
            return cached
        if body is None:
            body = await self._links.read_manifest(digest)
            if body is None:
                return None
        info = describe_stored(body)
        self.remember(digest, info)
        return info
