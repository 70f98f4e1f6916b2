"""The tags of each repository, kept in memory and checked with one ``stat`` per request.

A tag is listed only when its ``current/link`` can hold a digest: a registry killed while it
wrote a tag leaves its directory without one. Checking that costs a ``stat`` per tag, on every
``tags/list``; Distribution lists the directory only. Here the listing and the checks are kept
per repository with the ``tags`` directory's inode and modification time:

* creating or removing a tag (Distribution and regtui both remove a tag's whole directory)
  changes the time of the ``tags`` directory, and the repository is listed again;
* a tag directory seen without its link yet (a push in the middle of writing it, or one killed
  there) is checked again on every request until its link appears;
* a time too close to the moment of the listing is not trusted (the clock of a file system
  ticks coarsely), and that repository is listed again at the next request.

What it does not see: a ``current/link`` removed by hand from a directory left in place (no
registry does that) stays listed until the ``tags`` directory changes; a GET of that tag answers
MANIFEST_UNKNOWN meanwhile.

Entries are replaced, never changed in place, and the table is locked while it changes, so the
index may be used from the event loop and from worker threads at once.
"""

from __future__ import annotations

import bisect
import os
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from embedded_registry import names
from embedded_registry.storage.catalog import UNSETTLED_NS, Stamp, directory_stamp

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


def has_link(tags_dir: str, tag: str) -> bool:
    """Whether ``tag``'s ``current/link`` is a regular file long enough to hold a digest."""
    try:
        st = os.stat(f"{tags_dir}/{tag}/current/link")
    except (FileNotFoundError, NotADirectoryError):
        return False
    return st.st_size >= SHORTEST_LINK and stat.S_ISREG(st.st_mode)


class TagIndex:
    """Sorted tag names per ``tags`` directory, brought up to date on every call."""

    def __init__(self, limit: int = CACHED_REPOSITORIES) -> None:
        self._limit = limit
        self._listings: OrderedDict[str, _Listing] = OrderedDict()
        self._lock = threading.Lock()
        self.listings = 0
        """Directories listed so far: for tests and benchmarks."""

    def tags(self, tags_dir: str) -> list[str] | None:
        """The tags under ``tags_dir`` that resolve, sorted; ``None`` without the directory."""
        stamp = directory_stamp(tags_dir)
        if stamp is None:
            self.forget(tags_dir)
            return None
        listing = self._listings.get(tags_dir)
        if listing is None or listing.stamp != stamp or not listing.settled:
            listing = self._list(tags_dir, stamp)
        elif listing.pending:
            listing = self._recheck(tags_dir, listing)
        self._remember(tags_dir, listing)
        return list(listing.tags)

    def forget(self, tags_dir: str) -> None:
        with self._lock:
            self._listings.pop(tags_dir, None)

    def _list(self, tags_dir: str, stamp: Stamp) -> _Listing:
        # The stat came first: a change made while listing leaves a newer time, seen next time.
        self.listings += 1
        now = time.time_ns()
        try:
            entries = os.listdir(tags_dir)
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        tags: list[str] = []
        pending: list[str] = []
        for entry in entries:
            if not names.is_valid_tag(entry):
                continue
            (tags if has_link(tags_dir, entry) else pending).append(entry)
        tags.sort()
        return _Listing(stamp, now - stamp[1] > UNSETTLED_NS, tuple(tags), tuple(pending))

    def _recheck(self, tags_dir: str, listing: _Listing) -> _Listing:
        arrived = [tag for tag in listing.pending if has_link(tags_dir, tag)]
        if not arrived:
            return listing
        tags = list(listing.tags)
        for tag in arrived:
            bisect.insort(tags, tag)
        pending = tuple(tag for tag in listing.pending if tag not in arrived)
        return _Listing(listing.stamp, listing.settled, tuple(tags), pending)

    def _remember(self, tags_dir: str, listing: _Listing) -> None:
        with self._lock:
            self._listings[tags_dir] = listing
            self._listings.move_to_end(tags_dir)
            while len(self._listings) > self._limit:
                self._listings.popitem(last=False)
