"""The tags of each repository, kept in memory and checked with one ``stat`` per request (the
driver's :class:`~embedded_registry.storage.driver.capabilities.DirectoryTimes`).

A tag is listed only when its ``current/link`` can hold a digest: a registry killed while it
wrote a tag leaves its directory without one. Checking that costs a ``stat`` per tag, on every
``tags/list``; Distribution lists the directory only. Here the listing and the checks are kept
per repository with the ``tags`` directory's stamp (its inode and modification time):

* creating or removing a tag (Distribution and regtui both remove a tag's whole directory)
  changes the time of the ``tags`` directory, and the repository is listed again;
* a tag directory seen without its link yet (a push in the middle of writing it, or one killed
  there) is checked again on every request until its link appears;
* a time too close to the moment of the listing is not trusted (the clock of a file system
  ticks coarsely), and that repository is listed again at the next request.

What it does not see: a ``current/link`` removed by hand from a directory left in place (no
registry does that) stays listed until the ``tags`` directory changes; a GET of that tag answers
MANIFEST_UNKNOWN meanwhile.

Entries are replaced, never changed in place: concurrent requests (on the event loop) may list
a changed repository at once, and the last listing is kept.
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from dataclasses import dataclass

from embedded_registry import names
from embedded_registry.storage.catalog import settled
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver
from embedded_registry.storage.driver.capabilities import DirectoryTimes, Stamp

SHORTEST_LINK = len("sha256:") + 64
"""Bytes of the shortest link file that holds a digest."""

CACHED_REPOSITORIES = 4096
"""Repositories whose tags are kept (least recently listed first out)."""


@dataclass(frozen=True)
class _Listing:
    stamp: Stamp
    settled: bool
    tags: tuple[str, ...]
    """Sorted tags whose link was there."""
    pending: tuple[str, ...]
    """Tag directories without a usable link when last looked at."""


class TagIndex:
    """Sorted tag names per ``tags`` directory key of ``driver`` (``times`` is the same driver,
    as :class:`DirectoryTimes`), brought up to date on every call."""

    def __init__(
        self, driver: StorageDriver, times: DirectoryTimes, limit: int = CACHED_REPOSITORIES
    ) -> None:
        self._driver = driver
        self._times = times
        self._limit = limit
        self._listings: OrderedDict[str, _Listing] = OrderedDict()
        self.listings = 0
        """Directories listed so far: for tests and benchmarks."""

    async def tags(self, tags_dir: str) -> list[str] | None:
        """The tags under the key ``tags_dir`` that resolve, sorted; ``None`` without the
        directory."""
        stamp = self._times.directory_stamp(tags_dir)
        if stamp is None:
            self._listings.pop(tags_dir, None)
            return None
        listing = self._listings.get(tags_dir)
        if listing is None or listing.stamp != stamp or not listing.settled:
            listing = await self._list(tags_dir, stamp)
        elif listing.pending:
            listing = await self._recheck(tags_dir, listing)
        self._remember(tags_dir, listing)
        return list(listing.tags)

    async def has_link(self, tags_dir: str, tag: str) -> bool:
        """Whether ``tag``'s ``current/link`` is a file long enough to hold a digest."""
        try:
            info = await self._driver.stat(f"{tags_dir}/{tag}/current/link")
        except PathNotFoundError:
            return False
        return not info.is_dir and info.size >= SHORTEST_LINK

    async def _list(self, tags_dir: str, stamp: Stamp) -> _Listing:
        # The stamp came first: a change made while listing leaves a newer one, seen next time.
        self.listings += 1
        now = time.time_ns()
        tags: list[str] = []
        pending: list[str] = []
        for entry, _is_dir in self._times.entries(tags_dir) or ():
            if not names.is_valid_tag(entry):
                continue
            (tags if await self.has_link(tags_dir, entry) else pending).append(entry)
        tags.sort()
        return _Listing(stamp, settled(stamp, now), tuple(tags), tuple(pending))

    async def _recheck(self, tags_dir: str, listing: _Listing) -> _Listing:
        arrived = [tag for tag in listing.pending if await self.has_link(tags_dir, tag)]
        if not arrived:
            return listing
        tags = list(listing.tags)
        for tag in arrived:
            bisect.insort(tags, tag)
        pending = tuple(tag for tag in listing.pending if tag not in arrived)
        return _Listing(listing.stamp, listing.settled, tuple(tags), pending)

    def _remember(self, tags_dir: str, listing: _Listing) -> None:
        self._listings[tags_dir] = listing
        self._listings.move_to_end(tags_dir)
        while len(self._listings) > self._limit:
            self._listings.popitem(last=False)
